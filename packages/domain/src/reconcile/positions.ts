// position_match: per account and symbol, the internal position against the exchange's.
import type { BookPosition, Discrepancy, ExchangePosition } from '../schemas/reconcile.js';
import { compact, type Run } from './context.js';
import { isZeroDecimal, judgeAbsolute } from './decimal.js';

export function checkPositions(run: Run): void {
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
    const mine = internal.get(key);
    const theirs = external.get(key);
    const account = (mine ?? theirs)!.account;
    const symbol = (mine ?? theirs)!.symbol;
    const tolerance = run.quantityTolerance(symbol);
    const rule = `|diff| <= ${tolerance.text}`;
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
        run.positionBreaks.push({ account, symbol, exchange: theirs.quantity, discrepancy: d });
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
        run.positionBreaks.push({ account, symbol, exchange: theirs.quantity, discrepancy: d });
        run.add(
          { ...base, status: 'BREAK', exchange: theirs.quantity, rule: 'a non-zero position exists on both sides' },
          [d],
        );
      }
    }
  }
}
