// The exchange as a target sees it: its `/exchange/orders?status=all`, `/exchange/trades`,
// `/exchange/positions` and `/exchange/balances` routes (the paper-trader's, or any target's
// that answers in the snapshot's record shapes, docs/FORMAT.md).
import { redactUrl } from '@lifeboat/adapters';
import {
  type CollectedSnapshot,
  EXCHANGE_SNAPSHOT_FORMAT,
  type ExchangeSnapshot,
  type ExchangeSource,
  type SnapshotPart,
} from '@lifeboat/domain';

const ROUTES: Record<SnapshotPart, string> = {
  orders: '/exchange/orders?status=all',
  trades: '/exchange/trades',
  positions: '/exchange/positions',
  balances: '/exchange/balances',
};

export class HttpExchangeSource implements ExchangeSource {
  readonly location: string;

  constructor(
    private readonly baseUrl: string,
    private readonly timeoutMs = 30_000,
    private readonly fetchImpl: typeof fetch = fetch,
  ) {
    this.location = redactUrl(baseUrl).replace(/\/+$/, '');
  }

  async collect(): Promise<CollectedSnapshot> {
    const collectedAt = new Date().toISOString();
    const errors: CollectedSnapshot['errors'] = {};
    const complete = { orders: true, trades: true, positions: true, balances: true };
    const fetchPart = async (part: SnapshotPart) => {
      const url = `${this.baseUrl.replace(/\/+$/, '')}${ROUTES[part]}`;
      try {
        const res = await this.fetchImpl(url, { signal: AbortSignal.timeout(this.timeoutMs) });
        if (!res.ok) throw new Error(`HTTP ${res.status} ${(await res.text()).slice(0, 200)}`);
        const body = (await res.json()) as Record<string, unknown>;
        const rows = body[part];
        if (!Array.isArray(rows)) throw new Error(`the answer has no "${part}" array`);
        // A target that pages or truncates says so; anything but an explicit false is complete.
        if (body.complete === false) throw new Error('the target says its answer is incomplete');
        return [part, rows] as const;
      } catch (err) {
        complete[part] = false;
        const reason =
          err instanceof Error
            ? err.name === 'TimeoutError'
              ? `timed out after ${this.timeoutMs} ms`
              : err.message
            : String(err);
        errors[part] = `GET ${this.location}${ROUTES[part]}: ${reason}`;
        return [part, []] as const;
      }
    };
    // Positions first, then the trades: every trade made before the positions were read is in
    // the list, so the reconciler can compare positions as of one instant (positions_at).
    const positionsFrom = new Date().toISOString();
    const holdings = await Promise.all((['positions', 'balances'] as const).map(fetchPart));
    const positionsAt = new Date().toISOString();
    const history = await Promise.all((['orders', 'trades'] as const).map(fetchPart));
    const data = Object.fromEntries([...holdings, ...history]) as Record<SnapshotPart, unknown[]>;
    const snapshot = {
      format: EXCHANGE_SNAPSHOT_FORMAT,
      venue: this.location,
      collected_at: collectedAt,
      positions_from: positionsFrom,
      positions_at: positionsAt,
      complete,
      ...data,
    } as unknown as ExchangeSnapshot;
    return { snapshot, errors };
  }
}
