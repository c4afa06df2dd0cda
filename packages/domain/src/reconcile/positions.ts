// position_match: per account and symbol, the internal position against the exchange's.
import type { BookPosition, Discrepancy, ExchangePosition } from '../schemas/reconcile.js';
import { compact, type Run, timeMs } from './context.js';
import { Dec, isZeroDecimal, judgeAbsolute } from './decimal.js';

/**
 * Trading does not stop for a reconciliation: fills land between the moment the venue gives
 * its positions and the moment the books are read. Both sides are compared as of one instant
 * before the positions were read and before the in-flight line (the threshold before either):
 * the internal fills after it, and the venue's trades between it and the positions, are
 * taken back out of each side.
 */
interface AsOf {
  at: string;
  internal: Map<string, Dec>;
  exchange: Map<string, Dec>;
  /**
   * Trades made while the venue was being asked for its positions (between positions_from
   * and positions_at), in order: each may or may not be in them, so the first k are.
   */
  reading: Map<string, Dec[]>;
}

function recentMoves(run: Run): AsOf {
  const positionsAt = run.exchange.positions_at === undefined ? run.collectedAt : timeMs(run.exchange.positions_at);
  const positionsFrom =
    run.exchange.positions_from === undefined
      ? positionsAt
      : Math.min(positionsAt, timeMs(run.exchange.positions_from));
  // Never later than the in-flight line: a trade before it is judged (and backfilled when
  // missing), so it must count on both sides; one after it is taken out of both.
  const cutoff = Math.min(run.inFlightAfter, positionsFrom - run.settings.inFlightThresholdMs);
  const signed = (side: string, quantity: string) => (side === 'buy' ? new Dec(quantity) : new Dec(quantity).negated());
  const add = (map: Map<string, Dec>, key: string, side: string, quantity: string) => {
    map.set(key, (map.get(key) ?? new Dec(0)).plus(signed(side, quantity)));
  };
  const internal = new Map<string, Dec>();
  const fills = run.books.fills;
  const fillMs = run.fillMs;
  for (let i = 0; i < fills.length; i++) {
    if ((fillMs[i] as number) <= cutoff) continue;
    const f = fills[i] as (typeof fills)[number];
    add(internal, `${run.accountOf(f.client_order_id)}:${f.symbol}`, f.side, f.quantity);
  }
  const exchange = new Map<string, Dec>();
  const reading = new Map<string, Dec[]>();
  // Without every trade the venue's side cannot be moved back: compared as it is.
  if (run.exchange.complete.trades) {
    const seen = new Set<string>();
    const during: Array<{ key: string; at: number; id: string; q: Dec }> = [];
    const trades = run.exchange.trades;
    const tradeMs = run.tradeMs;
    for (let i = 0; i < trades.length; i++) {
      const t = trades[i] as (typeof trades)[number];
      const at = tradeMs[i] as number;
      if (at <= cutoff || at > positionsAt || seen.has(t.trade_id)) continue;
      seen.add(t.trade_id);
      const key = `${run.accountOf(t.client_order_id)}:${t.symbol}`;
      if (at <= positionsFrom) add(exchange, key, t.side, t.quantity);
      else during.push({ key, at, id: t.trade_id, q: signed(t.side, t.quantity) });
    }
    during.sort((a, b) => a.at - b.at || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    for (const d of during) {
      const list = reading.get(d.key);
      if (list) list.push(d.q);
      else reading.set(d.key, [d.q]);
    }
  }
  return { at: new Date(cutoff).toISOString(), internal, exchange, reading };
}

/** A quantity with recent moves taken out; the same string when there were none. */
function backOut(quantity: string | undefined, moved: Dec | undefined): string | undefined {
  if (moved === undefined || moved.isZero()) return quantity;
  return new Dec(quantity ?? '0').minus(moved).toFixed();
}

export function checkPositions(run: Run): void {
  const asOf = recentMoves(run);
  const internal = new Map<string, BookPosition>();
  for (const p of run.books.positions) internal.set(`${p.account}:${p.symbol}`, p);
  const external = new Map<string, ExchangePosition>();
  for (const p of run.exchange.positions) external.set(`${p.account}:${p.symbol}`, p);
  const complete = run.exchange.complete.positions;

  if (!complete) {
    const d: Discrepancy = {
      check: 'position_match',
      kind: 'snapshot_incomplete',
      detail: 'the exchange snapshot says its positions are incomplete; positions cannot pass',
    };
    run.add(
      { check: 'position_match', key: 'snapshot.positions', status: 'UNRESOLVED', rule: 'complete.positions is true' },
      [d],
    );
  }

  const keys = [...new Set([...internal.keys(), ...external.keys()])].sort();
  for (const key of keys) {
    let bookRow = internal.get(key);
    let venueRow = external.get(key);
    // A side with no row but with moves since the instant held 0 then-adjusted: a venue that
    // leaves out flat positions, books that drop them. Compared as a row of 0.
    const movedAny = (m: Dec | undefined) => m !== undefined && !m.isZero();
    const movesHere = movedAny(asOf.internal.get(key));
    const movesThere = movedAny(asOf.exchange.get(key)) || (asOf.reading.get(key)?.length ?? 0) > 0;
    if ((movesHere || movesThere) && bookRow && !venueRow && complete) {
      venueRow = { account: bookRow.account, symbol: bookRow.symbol, quantity: '0' };
    } else if ((movesHere || movesThere) && venueRow && !bookRow) {
      bookRow = {
        account: venueRow.account,
        symbol: venueRow.symbol,
        quantity: '0',
        avg_entry_price: '0',
        realized_pnl: '0',
      };
    }
    const account = (bookRow ?? venueRow)!.account;
    const symbol = (bookRow ?? venueRow)!.symbol;
    // Both sides as of asOf.at (see recentMoves); unchanged when nothing moved since.
    const movedHere = asOf.internal.get(key);
    // The trades made while the positions were read: the venue's position holds the first k
    // of them, for the k that makes it agree (all of them when none does).
    const during = asOf.reading.get(key) ?? [];
    let movedThere = asOf.exchange.get(key);
    if (during.length && bookRow && venueRow) {
      const tolerance = run.quantityTolerance(bookRow.symbol).value;
      const mineAsOf = backOut(bookRow.quantity, movedHere) as string;
      let sum = movedThere ?? new Dec(0);
      let k = 0;
      while (
        judgeAbsolute(mineAsOf, backOut(venueRow.quantity, sum) as string, tolerance).status === 'BREAK' &&
        k < during.length
      ) {
        sum = sum.plus(during[k++] as Dec);
      }
      movedThere = sum;
    } else {
      for (const q of during) movedThere = (movedThere ?? new Dec(0)).plus(q);
    }
    const shifted = Boolean((movedHere && !movedHere.isZero()) || (movedThere && !movedThere.isZero()));
    const mineQ = bookRow ? backOut(bookRow.quantity, movedHere) : undefined;
    const theirsQ = venueRow ? backOut(venueRow.quantity, movedThere) : undefined;
    const mine = mineQ === undefined ? undefined : { ...(bookRow as BookPosition), quantity: mineQ };
    const theirs = theirsQ === undefined ? undefined : { ...(venueRow as ExchangePosition), quantity: theirsQ };
    /** What the books should hold now for the venue's position: for a rebuild to aim at. */
    const venueNow = theirs
      ? movedHere && !movedHere.isZero()
        ? new Dec(theirs.quantity).plus(movedHere).toFixed()
        : theirs.quantity
      : null;
    const tolerance = run.quantityTolerance(symbol);
    const rule = `|diff| <= ${tolerance.text}${shifted ? ` as of ${asOf.at} (fills since taken out of both sides)` : ''}`;
    const base = { check: 'position_match' as const, key };

    if (mine && theirs) {
      const judged = judgeAbsolute(mine.quantity, theirs.quantity, tolerance.value);
      const found: Discrepancy[] = [];
      if (judged.status === 'BREAK') {
        const d: Discrepancy = {
          check: 'position_match',
          kind: 'position_mismatch',
          symbol,
          internal: mine.quantity,
          exchange: theirs.quantity,
          difference: judged.diff,
          detail: `${key}: internal quantity ${mine.quantity}, exchange ${theirs.quantity} (difference ${judged.diff}, tolerance ${tolerance.text})`,
        };
        found.push(d);
        run.positionBreaks.push({ account, symbol, exchange: venueNow, discrepancy: d });
      }
      run.counters.positions_compared++;
      run.add(
        compact({
          ...base,
          status: judged.status,
          internal: mine.quantity,
          exchange: theirs.quantity,
          difference: judged.diff,
          rule,
        }),
        found,
      );
    } else if (mine) {
      if (isZeroDecimal(mine.quantity)) {
        run.counters.positions_compared++;
        run.add({ ...base, status: 'MATCHED', internal: mine.quantity, rule: 'flat internally, none on the exchange' });
      } else if (!complete) {
        // Absent from a part the venue did not give whole: not evidence of anything.
        run.counters.not_judged_incomplete++;
      } else {
        const d: Discrepancy = {
          check: 'position_match',
          kind: 'position_missing_exchange',
          symbol,
          internal: mine.quantity,
          detail: `${key}: internal position ${mine.quantity}, none on the exchange (a missing position is not a flat one)`,
        };
        run.positionBreaks.push({ account, symbol, exchange: null, discrepancy: d });
        run.counters.positions_compared++;
        run.add(
          { ...base, status: 'BREAK', internal: mine.quantity, rule: 'a non-zero position exists on both sides' },
          [d],
        );
      }
    } else if (theirs) {
      run.counters.positions_compared++;
      if (isZeroDecimal(theirs.quantity)) {
        run.add({
          ...base,
          status: 'MATCHED',
          exchange: theirs.quantity,
          rule: 'flat on the exchange, none internally',
        });
      } else {
        const d: Discrepancy = {
          check: 'position_match',
          kind: 'position_missing_internal',
          symbol,
          exchange: theirs.quantity,
          detail: `${key}: exchange position ${theirs.quantity}, none in the internal books`,
        };
        run.positionBreaks.push({ account, symbol, exchange: venueNow, discrepancy: d });
        run.add(
          { ...base, status: 'BREAK', exchange: theirs.quantity, rule: 'a non-zero position exists on both sides' },
          [d],
        );
      }
    }
  }
}
