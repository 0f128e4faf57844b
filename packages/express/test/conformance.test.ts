/** The adapter conformance suite on Express 5 and 4: `app.get('/events', sse(options))`. */
import { sse } from '@ssekit/express';
import type { Request } from 'express';
import { adapterSuite } from '../../core/test/support/adapter-suite.js';
import { serve, versions } from './helpers.js';

for (const { name, express } of versions) {
  adapterSuite({
    name,
    async serve(options) {
      const app = express();
      app.get('/events', sse(options));
      return (await serve(app)).url;
    },
    async create(options) {
      sse(options);
    },
    param: (req, name) => {
      const value = (req as Request).query[name];
      return typeof value === 'string' ? value : undefined;
    },
    // The shared clients' closeAll() closes the servers.
    close: async () => {},
  });
}
