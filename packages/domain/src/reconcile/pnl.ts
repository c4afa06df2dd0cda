// pnl_accuracy: realized P&L per symbol recomputed from the internal fills (average cost,
// fees subtracted) against the sum the internal positions record.
import type { Discrepancy } from '../schemas/reconcile.js';
import type { Run } from './context.js';
import { formatUnits, fractionDigits, rescale, toUnits } from './decimal.js';
import { AVG_EXTRA_DIGITS, type Lifecycle, MIN_SCALE, replay, sortFills, splitSymbol } from './replay.js';

const CHECK = 'pnl_accuracy';

/** The internal fills by symbol and account, as indices into books.fills in time order. */
export interface FillGroups {
  bySymbol: Map<string, Map<string, number[]>>;
}

export function groupFills(run: Run, fillMs: Float64Array): FillGroups {
  const fills = run.books.fills;
  const bySymbol = new Map<string, Map<string, number[]>>();
  let cid: string | undefined;
  let account = '';
  let symbol = '';
  let groupAccount = '';
  let group: number[] | undefined;
  for (let i = 0; i < fills.length; i++) {
    const f = fills[i]!;
    // Fills of one order usually sit together, so the last lookup is often the answer.
    if (f.client_order_id !== cid) {
      cid = f.client_order_id;
      account = run.accountOf(cid);
    }
    if (group === undefined || f.symbol !== symbol || account !== groupAccount) {
      symbol = f.symbol;
      groupAccount = account;
      let accounts = bySymbol.get(symbol);
      if (!accounts) {
        accounts = new Map();
        bySymbol.set(symbol, accounts);
      }
      group = accounts.get(account);
      if (!group) {
        group = [];
        accounts.set(account, group);
      }
    }
    group.push(i);
  }
  for (const accounts of bySymbol.values()) for (const order of accounts.values()) sortFills(order, fillMs, fills);
  return { bySymbol };
}

export interface PnlResult {
  /** The replay of each account and symbol with fills: key `account:symbol`. */
  lifecycles: Map<string, { scale: number; lifecycle: Lifecycle }>;
  /** The replay scale of each symbol with fills. */
  scales: Map<string, number>;
  /** Symbols whose P&L broke, with the discrepancy. */
  breaks: Map<string, Discrepancy>;
}

export function checkPnl(run: Run, groups: FillGroups): PnlResult {
  const fills = run.books.fills;
  const lifecycles = new Map<string, { scale: number; lifecycle: Lifecycle }>();
  const breaks = new Map<string, Discrepancy>();
  const scales = new Map<string, number>();

  const recorded = new Map<string, string[]>();
  for (const p of run.books.positions) {
    const list = recorded.get(p.symbol);
    if (list) list.push(p.realized_pnl);
    else recorded.set(p.symbol, [p.realized_pnl]);
  }
  const symbols = [...new Set([...groups.bySymbol.keys(), ...recorded.keys()])].sort();

  for (const symbol of symbols) {
    const accounts = groups.bySymbol.get(symbol);
    const texts = recorded.get(symbol) ?? [];
    const [base, quote] = splitSymbol(symbol);
    const replays: Array<{ scale: number; lifecycle: Lifecycle }> = [];
    let scale = MIN_SCALE;
    let fillCount = 0;
    let notValued = 0;
    for (const [account, order] of accounts ?? []) {
      const r = replay(fills, order, base, quote);
      lifecycles.set(`${account}:${symbol}`, r);
      replays.push(r);
      scale = Math.max(scale, r.scale);
      fillCount += order.length;
      notValued += r.lifecycle.feesNotValued;
    }
    scales.set(symbol, scale);
    const pnlScale = 2 * scale + AVG_EXTRA_DIGITS;
    let recomputed = 0n;
    for (const r of replays) recomputed += rescale(r.lifecycle.realized, 2 * r.scale + AVG_EXTRA_DIGITS, pnlScale);
    run.counters.fees_not_valued += notValued;

    let recordedSum = 0n;
    let digits = 0;
    for (const t of texts) {
      recordedSum += toUnits(t, pnlScale);
      digits = Math.max(digits, fractionDigits(t));
    }
    if (texts.length === 0) digits = scale;
    // Equal at the books' own precision is MATCHED: they store P&L rounded, the replay does not.
    const recomputedRounded = rescale(rescale(recomputed, pnlScale, digits), digits, pnlScale);
    const diff = recordedSum - recomputed;
    const shownDigits = Math.max(digits, scale);
    const internal = formatUnits(recordedSum, pnlScale, digits);
    const exchange = formatUnits(recomputed, pnlScale, digits);
    const difference = formatUnits(diff, pnlScale, shownDigits);
    const abs = diff < 0n ? -diff : diff;
    const status =
      recomputedRounded === recordedSum
        ? 'MATCHED'
        : abs <= toUnits(run.settings.pnlTolerance, pnlScale)
          ? 'WITHIN_TOLERANCE'
          : 'BREAK';
    run.counters.pnl_symbols_compared++;

    const found: Discrepancy[] = [];
    if (status === 'BREAK') {
      const unvalued = notValued ? `; ${notValued} fee(s) in other assets not valued` : '';
      const d: Discrepancy = {
        check: CHECK,
        kind: 'pnl_mismatch',
        symbol,
        internal,
        exchange,
        difference,
        detail: `${symbol}: realized P&L recorded ${internal} ${quote}, recomputed from ${fillCount} internal fill(s) ${exchange} (difference ${difference}, tolerance ${run.settings.pnlTolerance})${unvalued}`,
      };
      breaks.set(symbol, d);
      found.push(d);
    }
    run.add(
      {
        check: CHECK,
        key: symbol,
        status,
        internal,
        exchange,
        difference,
        rule: `|recorded − recomputed| <= ${run.settings.pnlTolerance} ${quote}`,
      },
      found,
    );
  }
  return { lifecycles, scales, breaks };
}
