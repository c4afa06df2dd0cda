// pnl_accuracy: realized P&L per symbol recomputed from the internal fills (average cost,
// fees subtracted) against the sum the internal positions record.
import type { Discrepancy } from '../schemas/reconcile.js';
import type { Run } from './context.js';
import { formatUnits, fractionDigits, rescale, ScaleTooSmall, toUnits } from './decimal.js';
import {
  AVG_EXTRA_DIGITS,
  compareTradeIds,
  ExactUnits,
  type Lifecycle,
  MIN_SCALE,
  RunningPosition,
  replay,
  sortFills,
  splitSymbol,
} from './replay.js';

const CHECK = 'pnl_accuracy';

export interface FillGroup {
  symbol: string;
  account: string;
  base: string;
  quote: string;
  count: number;
}

/** The internal fills by account and symbol. */
export interface FillGroups {
  groups: FillGroup[];
  /** The group of each fill. */
  groupOf: number[];
  /** symbol → account → group. */
  bySymbol: Map<string, Map<string, number>>;
  /**
   * 1 when the fills of every group are listed in time order (trade id breaking ties), -1 when
   * every group's are in reverse, 0 otherwise. Other groups' fills may sit between them.
   */
  direction: 1 | -1 | 0;
}

export function groupFills(run: Run, fillMs: readonly number[]): FillGroups {
  const fills = run.books.fills;
  const groups: FillGroup[] = [];
  const groupOf = new Array<number>(fills.length);
  const bySymbol = new Map<string, Map<string, number>>();
  let rising = true;
  let falling = true;
  const lastOfGroup: number[] = [];
  let cid: string | undefined;
  let account = '';
  let symbol = '';
  let groupAccount = '';
  let g = -1;
  for (let i = 0; i < fills.length; i++) {
    const f = fills[i]!;
    // Fills of one order usually sit together, so the last lookup is often the answer.
    if (f.client_order_id !== cid) {
      cid = f.client_order_id;
      account = run.accountOf(cid);
    }
    if (g === -1 || f.symbol !== symbol || account !== groupAccount) {
      symbol = f.symbol;
      groupAccount = account;
      let accounts = bySymbol.get(symbol);
      if (!accounts) {
        accounts = new Map();
        bySymbol.set(symbol, accounts);
      }
      const known = accounts.get(account);
      if (known === undefined) {
        g = groups.length;
        const [base, quote] = splitSymbol(symbol);
        groups.push({ symbol, account, base, quote, count: 0 });
        accounts.set(account, g);
      } else {
        g = known;
      }
    }
    groupOf[i] = g;
    groups[g]!.count++;
    const before = lastOfGroup[g];
    if ((rising || falling) && before !== undefined) {
      const order = fillMs[before]! - fillMs[i]! || compareTradeIds(fills[before]!.trade_id, f.trade_id);
      if (order > 0) rising = false;
      else if (order < 0) falling = false;
    }
    lastOfGroup[g] = i;
  }
  return { groups, groupOf, bySymbol, direction: rising ? 1 : falling ? -1 : 0 };
}

/** The fills of some groups, each list in time order. */
export function membersOf(
  run: Run,
  groups: FillGroups,
  wanted: Iterable<number>,
  fillMs: readonly number[],
): Map<number, number[]> {
  const lists: Array<number[] | undefined> = new Array(groups.groups.length);
  const out = new Map<number, number[]>();
  for (const g of wanted) {
    const list: number[] = [];
    lists[g] = list;
    out.set(g, list);
  }
  if (out.size === 0) return out;
  const groupOf = groups.groupOf;
  if (groups.direction === -1) for (let i = groupOf.length - 1; i >= 0; i--) lists[groupOf[i]!]?.push(i);
  else for (let i = 0; i < groupOf.length; i++) lists[groupOf[i]!]?.push(i);
  if (groups.direction === 0) for (const list of out.values()) sortFills(list, fillMs, run.books.fills);
  return out;
}

/**
 * Replays every group. When each group's fills are in time order (or in reverse) the replay
 * is one pass in the books' own order, which keeps memory reads close together; otherwise
 * each group is sorted and replayed on its own.
 */
export function replayGroups(run: Run, groups: FillGroups, fillMs: readonly number[]): Lifecycle[] {
  const fills = run.books.fills;
  if (groups.direction === 0) {
    const members = membersOf(run, groups, groups.groups.keys(), fillMs);
    return groups.groups.map((g, k) => replay(fills, members.get(k)!, g.base, g.quote));
  }
  const units = new ExactUnits(MIN_SCALE);
  const positions = groups.groups.map((g) => new RunningPosition(MIN_SCALE, g.base, g.quote, units));
  const finer = new Set<number>();
  const groupOf = groups.groupOf;
  const step = groups.direction;
  for (let i = step === 1 ? 0 : fills.length - 1; i >= 0 && i < fills.length; i += step) {
    const g = groupOf[i]!;
    if (finer.size > 0 && finer.has(g)) continue;
    try {
      positions[g]!.apply(fills[i]!);
    } catch (err) {
      if (!(err instanceof ScaleTooSmall)) throw err;
      finer.add(g);
    }
  }
  const out: Lifecycle[] = positions;
  for (const [g, list] of membersOf(run, groups, finer, fillMs)) {
    const group = groups.groups[g]!;
    out[g] = replay(fills, list, group.base, group.quote);
  }
  return out;
}

export interface PnlResult {
  /** The replay of each group (see FillGroups). */
  lifecycles: Lifecycle[];
  /** The coarsest scale that holds every fill of a symbol exactly. */
  scales: Map<string, number>;
  /** Symbols whose P&L broke, with the discrepancy. */
  breaks: Map<string, Discrepancy>;
}

export function checkPnl(run: Run, groups: FillGroups, fillMs: readonly number[]): PnlResult {
  const lifecycles = replayGroups(run, groups, fillMs);
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
    const [, quote] = splitSymbol(symbol);
    const mine = [...(groups.bySymbol.get(symbol)?.values() ?? [])];
    let scale = MIN_SCALE;
    let fillCount = 0;
    let notValued = 0;
    for (const g of mine) {
      scale = Math.max(scale, lifecycles[g]!.scale);
      fillCount += groups.groups[g]!.count;
      notValued += lifecycles[g]!.feesNotValued;
    }
    scales.set(symbol, scale);
    run.counters.fees_not_valued += notValued;
    const pnlScale = 2 * scale + AVG_EXTRA_DIGITS;
    let recomputed = 0n;
    for (const g of mine) {
      const l = lifecycles[g]!;
      recomputed += rescale(l.realized, 2 * l.scale + AVG_EXTRA_DIGITS, pnlScale);
    }

    const texts = recorded.get(symbol) ?? [];
    let recordedSum = 0n;
    let digits = texts.length ? 0 : scale;
    for (const t of texts) {
      recordedSum += toUnits(t, pnlScale);
      digits = Math.max(digits, fractionDigits(t));
    }
    const diff = recordedSum - recomputed;
    const shown = Math.max(digits, scale);
    const internal = formatUnits(recordedSum, pnlScale, digits);
    const exchange = formatUnits(recomputed, pnlScale, shown);
    const difference = formatUnits(diff, pnlScale, shown);
    // Within the tolerance and equal at the books' own precision is MATCHED: they store P&L
    // rounded, the replay does not.
    const status =
      (diff < 0n ? -diff : diff) > toUnits(run.settings.pnlTolerance, pnlScale)
        ? 'BREAK'
        : rescale(rescale(recomputed, pnlScale, digits), digits, pnlScale) === recordedSum
          ? 'MATCHED'
          : 'WITHIN_TOLERANCE';
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
