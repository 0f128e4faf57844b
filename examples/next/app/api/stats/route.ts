// GET /api/stats  →  { started, finished, stopped }: how many token generators ran, and how many
// were stopped because their client left (the browser test watches it).
import { stats } from '../../../lib/tokens';

export const dynamic = 'force-dynamic';

export function GET(): Response {
  return Response.json(stats, { headers: { 'cache-control': 'no-store' } });
}
