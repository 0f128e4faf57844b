/**
 * The client's last event id: the `Last-Event-ID` header, else the `lastEventId` query parameter (what
 * polyfills that cannot set headers send). Empty, too long, or holding NUL/CR/LF or invalid UTF-8: ignored.
 */
import { text } from './runtime.js';

const INVALID_ID = /[\0\r\n\uFFFD]/;
const NON_ASCII = /[^\x00-\x7f]/;

/** The default longest `Last-Event-ID` accepted. */
export const MAX_LAST_EVENT_ID_LENGTH = 512;

/**
 * Reads the last event id from a request's `Last-Event-ID` header value and its URL (path and query,
 * or a full URL). Both Node and fetch runtimes hand header bytes over as latin1; browsers send the id
 * as UTF-8, so a non-ASCII header is decoded again as UTF-8.
 */
export function lastEventIdOf(
  header: string | null | undefined,
  url: string | undefined,
  maxLength = MAX_LAST_EVENT_ID_LENGTH,
): string | undefined {
  let value: string | undefined;
  if (typeof header === 'string' && header !== '') {
    value = NON_ASCII.test(header) ? latin1AsUtf8(header) : header;
  } else if (url !== undefined) {
    const q = url.indexOf('?');
    if (q !== -1 && url.includes('lastEventId', q)) {
      const hash = url.indexOf('#', q);
      try {
        value = new URLSearchParams(url.slice(q + 1, hash === -1 ? undefined : hash)).get('lastEventId') ?? undefined;
      } catch {
        value = undefined;
      }
    }
  }
  if (value === undefined || value === '' || value.length > maxLength || INVALID_ID.test(value)) return undefined;
  return value;
}

function latin1AsUtf8(header: string): string {
  const bytes = new Uint8Array(header.length);
  for (let i = 0; i < header.length; i++) {
    const code = header.charCodeAt(i);
    // Not latin1 at all: the runtime already decoded the header as UTF-8.
    if (code > 0xff) return header;
    bytes[i] = code;
  }
  return text(bytes);
}
