// Corrections as data: which fills to backfill from the exchange, which orders take the
// exchange's state, which positions to rebuild from the corrected fills; and their
// application to a Books value (a database applies the same plan through its own writer).
import type {
  ActionTaken,
  BookFill,
  BookOrder,
  BookPosition,
  Books,
  CorrectionPlan,
  OrderUpdate,
} from '../schemas/reconcile.js';
import type { Backfill, Run } from './context.js';
import { timeMs } from './context.js';
import { formatUnits, isZeroDecimal, judgeAbsolute, sameDecimal } from './decimal.js';
import { type FillGroups, membersOf, type PnlResult } from './pnl.js';
import {
  AVG_EXTRA_DIGITS,
  type Lifecycle,
  MIN_SCALE,
  type ReplayFill,
  replay,
  sortFills,
  splitSymbol,
} from './replay.js';

export function positionFromLifecycle(account: string, symbol: string, lifecycle: Lifecycle): BookPosition {
  const scale = lifecycle.scale;
  return {
    account,
    symbol,
    quantity: formatUnits(lifecycle.quantity, scale, scale),
    avg_entry_price: formatUnits(lifecycle.avg, scale + AVG_EXTRA_DIGITS, scale),
    realized_pnl: formatUnits(lifecycle.realized, 2 * scale + AVG_EXTRA_DIGITS, scale),
  };
}

export function buildPlan(run: Run, groups: FillGroups, fillMs: readonly number[], pnl: PnlResult): CorrectionPlan {
  const fills = run.books.fills;
  const backfills = new Map<string, Backfill[]>();
  const pairs = new Map<string, { account: string; symbol: string }>();
  const want = (account: string, symbol: string): string => {
    const key = `${account}:${symbol}`;
    if (!pairs.has(key)) pairs.set(key, { account, symbol });
    return key;
  };
  for (const b of run.backfills) {
    const key = want(b.account, b.fill.symbol);
    const list = backfills.get(key);
    if (list) list.push(b);
    else backfills.set(key, [b]);
  }
  const groupOf = (account: string, symbol: string): number | undefined => groups.bySymbol.get(symbol)?.get(account);
  // A broken position is rebuilt from its fills; one with no fills has nothing to rebuild from.
  for (const b of run.positionBreaks) {
    if (groupOf(b.account, b.symbol) !== undefined || backfills.has(`${b.account}:${b.symbol}`)) {
      want(b.account, b.symbol);
    }
  }
  for (const symbol of pnl.breaks.keys()) {
    for (const account of groups.bySymbol.get(symbol)?.keys() ?? []) want(account, symbol);
  }

  const replayed: number[] = [];
  for (const [key, { account, symbol }] of pairs) {
    const g = groupOf(account, symbol);
    if (g !== undefined && backfills.has(key)) replayed.push(g);
  }
  const members = membersOf(run, groups, replayed, fillMs);

  const current = new Map(run.books.positions.map((p) => [`${p.account}:${p.symbol}`, p]));
  const breaks = new Map(run.positionBreaks.map((b) => [`${b.account}:${b.symbol}`, b]));
  const rebuilt = new Map<string, BookPosition>();
  for (const [key, { account, symbol }] of [...pairs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const g = groupOf(account, symbol);
    const added = backfills.get(key);
    let lifecycle: Lifecycle;
    if (!added && g !== undefined) {
      lifecycle = pnl.lifecycles[g]!;
    } else {
      const list: ReplayFill[] = [];
      const ms: number[] = [];
      for (const i of (g === undefined ? undefined : members.get(g)) ?? []) {
        list.push(fills[i]!);
        ms.push(fillMs[i]!);
      }
      for (const b of added ?? []) {
        list.push(b.fill);
        ms.push(timeMs(b.fill.timestamp));
      }
      const order = list.map((_, k) => k);
      sortFills(order, ms, list);
      const [base, quote] = splitSymbol(symbol);
      // The symbol's scale at least, so every account of a symbol prints its numbers alike.
      lifecycle = replay(list, order, base, quote, pnl.scales.get(symbol) ?? MIN_SCALE);
    }
    const position = positionFromLifecycle(account, symbol, lifecycle);
    // A rebuild must not undo what was right: without new fills, it is taken only when its
    // quantity is the exchange's (a broken position) or the books' own (a broken P&L).
    if (!added) {
      const tolerance = run.quantityTolerance(symbol).value;
      const broken = breaks.get(key);
      const target = broken ? (broken.exchange ?? '0') : (current.get(key)?.quantity ?? '0');
      if (judgeAbsolute(position.quantity, target, tolerance).status === 'BREAK') continue;
    }
    rebuilt.set(key, position);
  }

  // Which breaks the rebuilt positions mend.
  for (const b of run.positionBreaks) {
    const p = rebuilt.get(`${b.account}:${b.symbol}`);
    if (!p) continue;
    const tolerance = run.quantityTolerance(b.symbol).value;
    if (judgeAbsolute(p.quantity, b.exchange ?? '0', tolerance).status !== 'BREAK') run.fixable.add(b.discrepancy);
  }
  for (const [symbol, d] of pnl.breaks) {
    const accounts = [...(groups.bySymbol.get(symbol)?.keys() ?? [])];
    const covered =
      accounts.every((account) => rebuilt.has(`${account}:${symbol}`)) &&
      run.books.positions.every(
        (p) => p.symbol !== symbol || isZeroDecimal(p.realized_pnl) || rebuilt.has(`${p.account}:${p.symbol}`),
      );
    if (covered) run.fixable.add(d);
  }

  return {
    backfillOrders: [...run.orderBackfills.values()],
    backfillFills: run.backfills.map((b) => b.fill),
    orderUpdates: run.orderUpdates,
    positions: [...rebuilt.values()],
    unmatched: run.discrepancies.filter((d) => !run.fixable.has(d)),
  };
}

/** How a backfilled order is told in the actions taken and the audit log. */
export function describeOrder(o: BookOrder): string {
  return `${o.symbol} ${o.side} ${o.type} ${o.quantity}${o.price === null ? '' : ` @ ${o.price}`}, ${o.status} with ${o.filled_quantity} filled (exchange order ${o.exchange_order_id}), from the exchange's order history`;
}

function describeFill(f: BookFill): string {
  return `${f.side} ${f.quantity} ${f.symbol} at ${f.price} (fee ${f.fee} ${f.fee_asset}) for ${f.client_order_id}`;
}

function orderChanged(o: BookOrder, u: OrderUpdate): boolean {
  return (
    o.status !== u.status ||
    !sameDecimal(o.filled_quantity, u.filled_quantity) ||
    o.exchange_order_id !== u.exchange_order_id
  );
}

function positionChanged(a: BookPosition, b: BookPosition): boolean {
  return (
    !sameDecimal(a.quantity, b.quantity) ||
    !sameDecimal(a.avg_entry_price, b.avg_entry_price) ||
    !sameDecimal(a.realized_pnl, b.realized_pnl)
  );
}

/**
 * Applies a plan to a Books value, without changing the one given. Running it twice changes
 * nothing more: fills are added once per trade id, orders and positions only when they differ.
 */
export function applyCorrections(books: Books, plan: CorrectionPlan): { books: Books; actions: ActionTaken[] } {
  const actions: ActionTaken[] = [];

  let orders = books.orders;
  if (plan.backfillOrders.length) {
    const known = new Set(books.orders.map((o) => o.client_order_id));
    const added = plan.backfillOrders.filter((o) => !known.has(o.client_order_id));
    if (added.length) {
      orders = [...books.orders, ...added];
      for (const o of added) actions.push({ kind: 'backfill_order', key: o.client_order_id, detail: describeOrder(o) });
    }
  }

  let fills = books.fills;
  if (plan.backfillFills.length) {
    const wanted = new Map(plan.backfillFills.map((f) => [f.trade_id, f]));
    for (const f of books.fills) wanted.delete(f.trade_id);
    if (wanted.size) {
      fills = [...books.fills, ...wanted.values()];
      for (const f of wanted.values()) {
        actions.push({
          kind: 'backfill_fill',
          key: f.trade_id,
          detail: `${describeFill(f)}, from the exchange's trade history`,
        });
      }
    }
  }

  if (plan.orderUpdates.length) {
    const updates = new Map(plan.orderUpdates.map((u) => [u.client_order_id, u]));
    orders = orders.map((o) => {
      const u = updates.get(o.client_order_id);
      if (!u || (o.exchange_order_id !== null && o.exchange_order_id !== u.exchange_order_id) || !orderChanged(o, u)) {
        return o;
      }
      actions.push({
        kind: 'update_order',
        key: o.client_order_id,
        detail: `${o.status} filled ${o.filled_quantity} → ${u.status} filled ${u.filled_quantity} (${u.reason})`,
      });
      return { ...o, status: u.status, filled_quantity: u.filled_quantity, exchange_order_id: u.exchange_order_id };
    });
  }

  let positions = books.positions;
  if (plan.positions.length) {
    const target = new Map(plan.positions.map((p) => [`${p.account}:${p.symbol}`, p]));
    const seen = new Set<string>();
    const describe = (p: BookPosition) =>
      `quantity ${p.quantity}, avg ${p.avg_entry_price}, realized ${p.realized_pnl}`;
    const next = books.positions.map((p) => {
      const key = `${p.account}:${p.symbol}`;
      const q = target.get(key);
      seen.add(key);
      if (!q || !positionChanged(p, q)) return p;
      actions.push({ kind: 'rebuild_position', key, detail: `${describe(p)} → ${describe(q)}, from the fills` });
      return q;
    });
    for (const [key, q] of target) {
      if (seen.has(key) || (isZeroDecimal(q.quantity) && isZeroDecimal(q.realized_pnl))) continue;
      actions.push({ kind: 'rebuild_position', key, detail: `none → ${describe(q)}, from the fills` });
      next.push(q);
    }
    if (actions.some((a) => a.kind === 'rebuild_position')) positions = next;
  }

  return { books: { ...books, orders, fills, positions }, actions };
}
