// One measured reconciliation, run as its own process by `npm run bench -- reconcile` over
// the built packages (dist, as deployed): the books read from a SQLite trading database
// through the default schema profile (its integrity check on a worker thread meanwhile),
// the exchange snapshot built from the same rows (as a venue export would give them; timed
// apart, it is not the reconciler's work), then validation, the four checks and the report.
import { SqliteBooksStore } from '@lifeboat/adapters';
import { buildReport, EXCHANGE_SNAPSHOT_FORMAT, parseExchangeSnapshot, reconcile } from '@lifeboat/domain';

const file = process.argv[2] as string;
const phases: Record<string, number> = {};
const time = async <T>(name: string, fn: () => Promise<T> | T): Promise<T> => {
  const t = performance.now();
  const out = await fn();
  phases[name] = (performance.now() - t) / 1000;
  return out;
};

const store = new SqliteBooksStore(file);
// As the reconciler does it: the integrity check on a thread of its own beside the read.
const checking = store.integrity();
const books = await time('read books (SQL + validation), integrity check beside', () => store.read());
const integrity = await time('integrity check: wait past the read', () => checking);
const raw = await time('build the exchange snapshot (not measured work)', () => {
  const status = { NEW: 'OPEN', PARTIAL: 'PARTIALLY_FILLED' } as Record<string, string>;
  const eid = new Map(books.orders.map((o) => [o.client_order_id, o.exchange_order_id as string]));
  return {
    format: EXCHANGE_SNAPSHOT_FORMAT,
    venue: 'bench',
    collected_at: new Date().toISOString(),
    complete: { orders: true, trades: true, positions: true, balances: true },
    orders: books.orders.map((o) => ({
      exchange_order_id: o.exchange_order_id,
      client_order_id: o.client_order_id,
      symbol: o.symbol,
      side: o.side,
      type: o.type,
      quantity: o.quantity,
      price: o.price,
      status: status[o.status] ?? o.status,
      filled_quantity: o.filled_quantity,
      updated_at: o.updated_at,
    })),
    // Field by field, as the venue sources build their trades (apps/reconciler/src/exchange)
    // and JSON.parse an export's: rows of one shape. A spread of each fill gave rows whose
    // shapes V8 did not share, which no source gives (validating them took five times as long).
    trades: books.fills.map((f) => ({
      trade_id: f.trade_id,
      exchange_order_id: eid.get(f.client_order_id),
      client_order_id: f.client_order_id,
      symbol: f.symbol,
      side: f.side,
      quantity: f.quantity,
      price: f.price,
      fee: f.fee,
      fee_asset: f.fee_asset,
      timestamp: f.timestamp,
    })),
    positions: books.positions.map((p) => ({ account: p.account, symbol: p.symbol, quantity: p.quantity })),
    balances: books.balances,
  };
});
const snapshot = await time('validate the snapshot', () => parseExchangeSnapshot(raw, 'bench snapshot'));
const outcome = await time('reconcile (four checks)', () => reconcile({ books, exchange: snapshot, integrity }));
const report = await time('build the report', () =>
  buildReport(outcome, { timestamp: new Date(), recoveryType: 'bench', actionsTaken: [], corrected: false }),
);
process.stdout.write(
  `${JSON.stringify({
    phases,
    verdict: report.verdict,
    discrepancies: report.discrepancies.length,
    orders: books.orders.length,
    fills: books.fills.length,
    symbols: new Set(books.orders.map((o) => o.symbol)).size,
    maxRssMiB: process.resourceUsage().maxRSS / 1024,
  })}\n`,
);
