// order_consistency: internal orders against the exchange's (by client order id, then by
// exchange order id), and internal fills against the exchange's trades (by trade id).
import {
  type BookFill,
  type BookOrder,
  DEFAULT_ACCOUNT,
  type Discrepancy,
  type ExchangeOrder,
  type ExchangeTrade,
  type ReconcileItem,
} from '../schemas/reconcile.js';
import { compact, type Run, timeMs } from './context.js';
import { compareDecimal, isZeroDecimal, judgeAbsolute, judgeRelative } from './decimal.js';
import { pairById } from './pairing.js';
import { StringIndex, strictlyMonotonic } from './string-index.js';

const CHECK = 'order_consistency';

const AS_BOOK_STATUS: Record<ExchangeOrder['status'], BookOrder['status']> = {
  OPEN: 'NEW',
  PARTIALLY_FILLED: 'PARTIAL',
  FILLED: 'FILLED',
  CANCELED: 'CANCELED',
  REJECTED: 'REJECTED',
  EXPIRED: 'EXPIRED',
};

const isOpenInternally = (o: BookOrder): boolean => o.status === 'NEW' || o.status === 'PARTIAL';
const isOpenOnExchange = (e: ExchangeOrder): boolean => e.status === 'OPEN' || e.status === 'PARTIALLY_FILLED';

const describeInternal = (o: BookOrder): string => `${o.status} ${o.filled_quantity}/${o.quantity}`;
const describeExchange = (e: ExchangeOrder): string => `${e.status} ${e.filled_quantity}/${e.quantity}`;

function incomplete(run: Run, part: 'orders' | 'trades'): void {
  const d: Discrepancy = {
    check: CHECK,
    kind: 'snapshot_incomplete',
    detail: `the exchange snapshot says its ${part} are incomplete; order consistency cannot pass`,
  };
  run.add({ check: CHECK, key: `snapshot.${part}`, status: 'UNRESOLVED', rule: `complete.${part} is true` }, [d]);
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

export function checkOrders(run: Run): void {
  const { books, exchange } = run;
  const mine = books.orders;
  const theirs = exchange.orders;
  const index = run.orders;
  /** Client ids the exchange lists twice, with the exchange orders carrying them. */
  const exchangeDuplicates = new Map<string, number[]>();

  if (!exchange.complete.orders) incomplete(run, 'orders');

  // Client ids used twice internally
  for (const [cid, list] of index.duplicates) {
    const d: Discrepancy = {
      check: CHECK,
      kind: 'duplicate_client_order_id',
      client_order_id: cid,
      symbol: mine[list[0]!]!.symbol,
      detail: `client_order_id ${cid} is used by ${list.length} internal orders (${list.map((i) => `orders[${i}]`).join(', ')})`,
    };
    run.add(
      { check: CHECK, key: cid, status: 'BREAK', internal: `${list.length} orders`, rule: 'client ids are unique' },
      [d],
    );
  }

  // First pass: by client order id. A duplicated id matches nothing by it.
  const hasDuplicates = index.duplicates.size > 0;
  const { pairOfMine, pairOfTheirs, repeats } = pairById(
    { length: mine.length, id: (i) => mine[i]!.client_order_id, group: (i) => mine[i]!.symbol },
    { length: theirs.length, id: (j) => theirs[j]!.client_order_id, group: (j) => theirs[j]!.symbol },
    hasDuplicates ? (i) => !index.duplicates.has(mine[i]!.client_order_id) : () => true,
    index.builtIndex,
  );
  for (const r of repeats) {
    const cid = theirs[r.theirs]!.client_order_id;
    const list = exchangeDuplicates.get(cid);
    if (list) list.push(r.theirs);
    else exchangeDuplicates.set(cid, [pairOfMine[r.mine]!, r.theirs]);
  }

  // Second pass, for what is left on both sides: by exchange order id.
  let unmatchedTheirs: Map<string, number> | undefined;
  const unmatchedByClientId = new Map<string, number[]>();
  for (let j = 0; j < theirs.length; j++) {
    if (pairOfTheirs[j] !== -1) continue;
    const e = theirs[j]!;
    unmatchedTheirs ??= new Map();
    if (!unmatchedTheirs.has(e.exchange_order_id)) unmatchedTheirs.set(e.exchange_order_id, j);
    if (e.client_order_id !== '') {
      const list = unmatchedByClientId.get(e.client_order_id);
      if (list) list.push(j);
      else unmatchedByClientId.set(e.client_order_id, [j]);
    }
  }
  if (unmatchedTheirs) {
    for (let i = 0; i < mine.length; i++) {
      const eid = mine[i]!.exchange_order_id;
      if (pairOfMine[i] !== -1 || eid === null) continue;
      const j = unmatchedTheirs.get(eid);
      if (j !== undefined && pairOfTheirs[j] === -1) {
        pairOfMine[i] = j;
        pairOfTheirs[j] = i;
      }
    }
  }
  for (const [cid, list] of unmatchedByClientId) {
    if (list.length < 2) continue;
    const all = exchangeDuplicates.get(cid);
    if (all) all.push(...list.filter((j) => !all.includes(j)));
    else exchangeDuplicates.set(cid, list);
  }
  for (const [cid, list] of exchangeDuplicates) {
    const d: Discrepancy = {
      check: CHECK,
      kind: 'duplicate_client_order_id',
      client_order_id: cid,
      symbol: theirs[list[0]!]!.symbol,
      detail: `client_order_id ${cid} is used by ${list.length} exchange orders (${list.map((j) => theirs[j]!.exchange_order_id).join(', ')})`,
    };
    run.add(
      { check: CHECK, key: cid, status: 'BREAK', exchange: `${list.length} orders`, rule: 'client ids are unique' },
      [d],
    );
  }

  const theirMs = new Array<number>(theirs.length);
  for (let j = 0; j < theirs.length; j++) theirMs[j] = timeMs(theirs[j]!.updated_at);

  for (let i = 0; i < mine.length; i++) {
    const o = mine[i]!;
    const mineMs = timeMs(o.updated_at);
    const j = pairOfMine[i]!;
    if (j === -1) {
      judgeInternalOnly(run, o, mineMs);
      continue;
    }
    if (mineMs > run.inFlightAfter || theirMs[j]! > run.inFlightAfter) {
      run.counters.in_flight_skipped++;
      continue;
    }
    judgePair(run, o, theirs[j]!, mineMs, theirMs[j]!);
  }
  // An order the books lack, touched recently but with trades older than the threshold (a
  // partial fill long ago, cancelled just now), is judged: its settled trades must not be
  // left without their order.
  let settled: Set<string> | undefined;
  const hasSettledTrades = (e: ExchangeOrder): boolean => {
    if (!settled) {
      const ids = new Set<string>();
      const ms = run.tradeMs;
      run.exchange.trades.forEach((t, i) => {
        if ((ms[i] as number) <= run.inFlightAfter) ids.add(t.exchange_order_id);
      });
      settled = ids;
    }
    return settled.has(e.exchange_order_id);
  };
  for (let j = 0; j < theirs.length; j++) {
    if (pairOfTheirs[j] !== -1) continue;
    if (theirMs[j]! > run.inFlightAfter && !hasSettledTrades(theirs[j]!)) {
      run.counters.in_flight_skipped++;
      continue;
    }
    judgeExchangeOnly(run, theirs[j]!, theirMs[j]!);
  }
}

function staleFinding(
  o: { symbol: string },
  ids: Pick<Discrepancy, 'client_order_id' | 'exchange_order_id'>,
  lastMs: number,
  run: Run,
  where: string,
): Discrepancy {
  return compact({
    check: CHECK,
    kind: 'stale_open_order',
    symbol: o.symbol,
    ...ids,
    detail: `open ${where} and not updated since ${iso(lastMs)}, more than ${run.settings.staleOrderAgeMs / 1000} s before the snapshot`,
  });
}

function judgePair(run: Run, o: BookOrder, e: ExchangeOrder, mineMs: number, theirMs: number): void {
  run.counters.orders_compared++;
  const openHere = isOpenInternally(o);
  const openThere = isOpenOnExchange(e);
  const exchangeStatus = AS_BOOK_STATUS[e.status];
  const lastMs = Math.max(mineMs, theirMs);
  const stale = (openHere || openThere) && lastMs < run.staleBefore;

  if (
    !stale &&
    o.status === exchangeStatus &&
    o.filled_quantity === e.filled_quantity &&
    o.quantity === e.quantity &&
    o.price === e.price &&
    o.symbol === e.symbol &&
    o.side === e.side &&
    o.type === e.type &&
    (o.exchange_order_id === null || o.exchange_order_id === e.exchange_order_id) &&
    (e.client_order_id === '' || e.client_order_id === o.client_order_id)
  ) {
    run.count(CHECK, 'MATCHED');
    if (run.listAll) {
      run.items.push({
        check: CHECK,
        key: o.client_order_id,
        status: 'MATCHED',
        internal: describeInternal(o),
        exchange: describeExchange(e),
        rule: 'same status, filled quantity, quantity and price',
      });
    }
    return;
  }

  const tolerance = run.quantityTolerance(o.symbol);
  const filled = judgeAbsolute(o.filled_quantity, e.filled_quantity, tolerance.value);
  let within = filled.status === 'WITHIN_TOLERANCE';
  const ids = { client_order_id: o.client_order_id, exchange_order_id: e.exchange_order_id };
  const shared = {
    check: CHECK,
    symbol: o.symbol,
    ...ids,
    internal: describeInternal(o),
    exchange: describeExchange(e),
  } as const;
  const found: Discrepancy[] = [];

  // What differs besides status and filled quantity: nothing a correction may take from the exchange.
  const attributes: string[] = [];
  if (o.symbol !== e.symbol) attributes.push(`symbol ${o.symbol} internally, ${e.symbol} on the exchange`);
  if (o.side !== e.side) attributes.push(`side ${o.side} internally, ${e.side} on the exchange`);
  if (o.type !== e.type) attributes.push(`type ${o.type} internally, ${e.type} on the exchange`);
  const quantity = judgeAbsolute(o.quantity, e.quantity, tolerance.value);
  if (quantity.status === 'WITHIN_TOLERANCE') within = true;
  else if (quantity.status === 'BREAK') {
    attributes.push(`order quantity ${o.quantity} internally, ${e.quantity} on the exchange`);
  }
  if (o.type === 'limit' && e.type === 'limit') {
    if (o.price === null || e.price === null) {
      if (o.price !== e.price) attributes.push(`limit price ${o.price} internally, ${e.price} on the exchange`);
    } else {
      const price = judgeRelative(o.price, e.price, run.priceTolerance);
      if (price.status === 'WITHIN_TOLERANCE') within = true;
      else if (price.status === 'BREAK') {
        attributes.push(
          `limit price ${o.price} internally, ${e.price} on the exchange (relative tolerance ${run.settings.priceToleranceRelative})`,
        );
      }
    }
  }
  if (o.exchange_order_id !== null && o.exchange_order_id !== e.exchange_order_id) {
    attributes.push(`exchange order id ${o.exchange_order_id} internally, ${e.exchange_order_id} on the exchange`);
  }
  // Possible only when the orders were paired by exchange order id.
  if (e.client_order_id !== '' && e.client_order_id !== o.client_order_id) {
    attributes.push(`client order id ${o.client_order_id} internally, ${e.client_order_id} on the exchange`);
  }

  const states: string[] = [];
  let openness: Discrepancy | undefined;
  if (openHere && !openThere) {
    openness = {
      ...shared,
      kind: 'open_internal_not_on_exchange',
      detail: `open internally (${o.status}), ${e.status} on the exchange`,
    };
  } else if (!openHere && openThere) {
    openness = {
      ...shared,
      kind: 'orphan_exchange_order',
      detail: `open on the exchange (${e.status}), ${o.status} internally`,
    };
  } else if (o.status !== exchangeStatus) {
    states.push(`${o.status} internally, ${e.status} on the exchange`);
  }
  if (filled.status === 'BREAK') {
    states.push(
      `filled ${o.filled_quantity} internally, ${e.filled_quantity} on the exchange (tolerance ${tolerance.text})`,
    );
  }
  if (openness) found.push(openness);
  let mismatch: Discrepancy | undefined;
  if (states.length || attributes.length) {
    mismatch = compact<Discrepancy>({
      ...shared,
      kind: 'filled_quantity_mismatch',
      difference: filled.status === 'MATCHED' ? undefined : filled.diff,
      detail: [...states, ...attributes].join('; '),
    });
    found.push(mismatch);
  }
  let staleness: Discrepancy | undefined;
  if (stale) {
    staleness = staleFinding(
      o,
      ids,
      lastMs,
      run,
      openHere && openThere ? 'on both sides' : openHere ? 'internally' : 'on the exchange',
    );
    found.push(staleness);
  }

  // The exchange's state is taken when the books lag it: an order still open here that the
  // venue finished, or fills the venue has and the books do not.
  const behind = filled.status === 'BREAK' && compareDecimal(o.filled_quantity, e.filled_quantity) < 0;
  const ahead = filled.status === 'BREAK' && !behind;
  if (attributes.length === 0 && !ahead && !(!openHere && openThere) && ((openHere && !openThere) || behind)) {
    run.orderUpdates.push({
      client_order_id: o.client_order_id,
      status: exchangeStatus,
      filled_quantity: e.filled_quantity,
      exchange_order_id: e.exchange_order_id,
      reason: openHere && !openThere ? `${e.status} on the exchange` : `filled ${e.filled_quantity} on the exchange`,
    });
    if (openness) run.fixable.add(openness);
    if (mismatch) run.fixable.add(mismatch);
    if (staleness && !openThere) run.fixable.add(staleness);
  }

  const status = found.length ? 'BREAK' : within ? 'WITHIN_TOLERANCE' : 'MATCHED';
  const item: ReconcileItem = compact({
    check: CHECK,
    key: o.client_order_id,
    status,
    internal: shared.internal,
    exchange: shared.exchange,
    difference: filled.status === 'MATCHED' ? undefined : filled.diff,
    rule: `same status, |filled diff| <= ${tolerance.text}, price within ${run.settings.priceToleranceRelative} relative`,
  });
  run.add(item, found, status !== 'MATCHED' || run.listAll);
}

function judgeInternalOnly(run: Run, o: BookOrder, mineMs: number): void {
  if (mineMs > run.inFlightAfter) {
    run.counters.in_flight_skipped++;
    return;
  }
  const open = isOpenInternally(o);
  const ids = compact({ client_order_id: o.client_order_id, exchange_order_id: o.exchange_order_id ?? undefined });
  const stale = open && mineMs < run.staleBefore ? staleFinding(o, ids, mineMs, run, 'internally') : undefined;
  const base = { check: CHECK, key: o.client_order_id, internal: describeInternal(o) } as const;

  let judged = true;
  if (run.windowStart !== null && timeMs(o.created_at) < run.windowStart) {
    run.counters.outside_window++;
    judged = false;
  } else if (!run.exchange.complete.orders) {
    run.counters.not_judged_incomplete++;
    judged = false;
  }
  if (!judged) {
    // Its absence says nothing, but an open order nobody touched for so long is stale anyway.
    if (stale) {
      run.counters.orders_compared++;
      run.add({ ...base, status: 'BREAK', rule: 'open orders are updated within the stale age' }, [stale]);
    }
    return;
  }

  run.counters.orders_compared++;
  const found: Discrepancy[] = [];
  if (open) {
    found.push(
      compact({
        check: CHECK,
        kind: 'open_internal_not_on_exchange',
        symbol: o.symbol,
        ...ids,
        internal: describeInternal(o),
        detail: `open internally (${o.status}), unknown on the exchange`,
      }),
    );
    if (stale) found.push(stale);
    run.add({ ...base, status: 'BREAK', rule: 'open orders are open on the exchange too' }, found);
  } else if (isZeroDecimal(o.filled_quantity)) {
    const rule =
      o.status === 'REJECTED' && o.exchange_order_id === null
        ? 'rejected before reaching the venue'
        : 'terminal with nothing filled: nothing to reconcile';
    run.add({ ...base, status: 'MATCHED', rule }, [], run.listAll);
  } else {
    found.push(
      compact({
        check: CHECK,
        kind: 'filled_quantity_mismatch',
        symbol: o.symbol,
        ...ids,
        internal: describeInternal(o),
        detail: `${o.status} internally with ${o.filled_quantity} filled, unknown on the exchange`,
      }),
    );
    run.add({ ...base, status: 'BREAK', rule: 'an order with fills is known to the exchange' }, found);
  }
}

function judgeExchangeOnly(run: Run, e: ExchangeOrder, theirMs: number): void {
  run.counters.orders_compared++;
  const key = e.client_order_id || e.exchange_order_id;
  const ids = compact({ client_order_id: e.client_order_id || undefined, exchange_order_id: e.exchange_order_id });
  const base = { check: CHECK, key, exchange: describeExchange(e) } as const;
  if (isOpenOnExchange(e)) {
    const found: Discrepancy[] = [
      {
        check: CHECK,
        kind: 'orphan_exchange_order',
        symbol: e.symbol,
        ...ids,
        exchange: describeExchange(e),
        detail: `open on the exchange (${e.status}), unknown internally; it is reported, never cancelled`,
      },
    ];
    if (theirMs < run.staleBefore) found.push(staleFinding(e, ids, theirMs, run, 'on the exchange'));
    run.add({ ...base, status: 'BREAK', rule: 'exchange orders are known internally' }, found);
  } else if (isZeroDecimal(e.filled_quantity)) {
    run.add(
      { ...base, status: 'MATCHED', rule: 'terminal with nothing filled on the exchange: nothing to reconcile' },
      [],
      run.listAll,
    );
  } else {
    const d: Discrepancy = {
      check: CHECK,
      kind: 'filled_quantity_mismatch',
      symbol: e.symbol,
      ...ids,
      exchange: describeExchange(e),
      detail: `${e.status} on the exchange with ${e.filled_quantity} filled, unknown internally`,
    };
    run.add({ ...base, status: 'BREAK', rule: 'an order with fills is known internally' }, [d]);
    // Books restored from an older backup lost the orders placed since; the venue's record
    // brings a done order back, and its trades then backfill as fills of a known order. An
    // order with no client id was not placed by the trading system: reported, never adopted.
    if (e.client_order_id !== '' && !run.orderBackfills.has(e.exchange_order_id)) {
      run.orderBackfills.set(e.exchange_order_id, {
        client_order_id: e.client_order_id,
        exchange_order_id: e.exchange_order_id,
        account: DEFAULT_ACCOUNT,
        symbol: e.symbol,
        side: e.side,
        type: e.type,
        quantity: e.quantity,
        price: e.price,
        status: AS_BOOK_STATUS[e.status],
        filled_quantity: e.filled_quantity,
        created_at: e.updated_at,
        updated_at: e.updated_at,
      });
      run.fixable.add(d);
    } else if (e.client_order_id === '') {
      d.detail += '; it has no client order id (not placed by the trading system), so it is not backfilled';
    }
  }
}

// ---------------------------------------------------------------------------------------
// Fills against trades

export function checkFills(run: Run, fillMs: readonly number[]): void {
  const fills = run.books.fills;
  const trades = run.exchange.trades;
  if (!run.exchange.complete.trades) incomplete(run, 'trades');

  /** For a fill whose trade id came earlier in the books: that earlier index. */
  const repeats = new Map<number, number>();
  const index = strictlyMonotonic(fills, (f) => f.trade_id)
    ? undefined
    : new StringIndex(
        fills.map((f) => f.trade_id),
        (i, first) => repeats.set(i, first),
      );
  const pairing = pairById(
    { length: fills.length, id: (i) => fills[i]!.trade_id, group: (i) => fills[i]!.symbol },
    { length: trades.length, id: (j) => trades[j]!.trade_id, group: (j) => trades[j]!.symbol },
    repeats.size > 0 ? (i) => !repeats.has(i) : () => true,
    index,
  );
  const pairOfFill = pairing.pairOfMine;
  run.counters.exchange_duplicate_trades += pairing.repeats.length;
  // Read in the venue's own order: in the loop below trades come in the books' order.
  const tradeMs = run.tradeMs;
  const repeated = new Set(pairing.repeats.map((r) => r.theirs));
  const onlyTheirs: number[] = [];
  const seenOnlyTheirs = new Set<string>();
  for (let j = 0; j < trades.length; j++) {
    if (pairing.pairOfTheirs[j] !== -1 || repeated.has(j)) continue;
    const id = trades[j]!.trade_id;
    if (seenOnlyTheirs.has(id)) run.counters.exchange_duplicate_trades++;
    else {
      seenOnlyTheirs.add(id);
      onlyTheirs.push(j);
    }
  }

  for (let i = 0; i < fills.length; i++) {
    const f = fills[i]!;
    const j = pairOfFill[i]!;
    const ms = fillMs[i]!;
    if (j !== -1) {
      const t = trades[j]!;
      if (ms > run.inFlightAfter || tradeMs[j]! > run.inFlightAfter) {
        run.counters.in_flight_skipped++;
        continue;
      }
      judgeFillPair(run, f, t);
      continue;
    }
    if (ms > run.inFlightAfter) {
      run.counters.in_flight_skipped++;
      continue;
    }
    const first = repeats.get(i);
    let detail: string;
    if (first !== undefined) {
      detail = `trade ${f.trade_id} is recorded twice internally (fills[${first}] and fills[${i}])`;
    } else if (run.windowStart !== null && ms < run.windowStart) {
      run.counters.outside_window++;
      continue;
    } else if (!run.exchange.complete.trades) {
      run.counters.not_judged_incomplete++;
      continue;
    } else {
      detail = `fill ${f.trade_id} (${f.side} ${f.quantity} ${f.symbol} at ${f.price}) is not among the exchange's trades`;
    }
    run.counters.fills_compared++;
    const d: Discrepancy = {
      check: CHECK,
      kind: 'unknown_fill',
      symbol: f.symbol,
      client_order_id: f.client_order_id,
      trade_id: f.trade_id,
      internal: `${f.side} ${f.quantity} @ ${f.price}`,
      detail,
    };
    run.add(
      {
        check: CHECK,
        key: f.trade_id,
        status: 'BREAK',
        internal: d.internal!,
        rule: 'every internal fill is an exchange trade',
      },
      [d],
    );
  }

  for (const j of onlyTheirs) {
    const t = trades[j]!;
    if (tradeMs[j]! > run.inFlightAfter) {
      run.counters.in_flight_skipped++;
      continue;
    }
    run.counters.trades_compared++;
    const d: Discrepancy = compact({
      check: CHECK,
      kind: 'missing_fill',
      symbol: t.symbol,
      client_order_id: t.client_order_id || undefined,
      exchange_order_id: t.exchange_order_id,
      trade_id: t.trade_id,
      exchange: `${t.side} ${t.quantity} @ ${t.price}`,
      detail: `exchange trade ${t.trade_id} (${t.side} ${t.quantity} ${t.symbol} at ${t.price}) is not in the internal fills`,
    });
    run.add(
      {
        check: CHECK,
        key: t.trade_id,
        status: 'BREAK',
        exchange: d.exchange!,
        rule: 'every exchange trade is an internal fill',
      },
      [d],
    );
    const order = knownOrder(run, t);
    if (order) {
      const fill: BookFill = {
        trade_id: t.trade_id,
        client_order_id: order.client_order_id,
        symbol: t.symbol,
        side: t.side,
        quantity: t.quantity,
        price: t.price,
        fee: t.fee,
        fee_asset: t.fee_asset,
        timestamp: t.timestamp,
      };
      run.backfills.push({ fill, account: order.account, discrepancy: d });
      run.fixable.add(d);
    } else {
      d.detail += '; its order is unknown internally, so it cannot be backfilled';
    }
  }
}

/** The internal order a trade belongs to: by client id when that id is unique, else by exchange order id. */
function knownOrder(run: Run, t: ExchangeTrade): BookOrder | undefined {
  const index = run.orders;
  if (t.client_order_id !== '' && !index.duplicates.has(t.client_order_id)) {
    const i = index.byClientId.get(t.client_order_id);
    if (i !== -1) return run.books.orders[i];
  }
  const i = index.byExchangeId().get(t.exchange_order_id);
  return i === undefined ? run.orderBackfills.get(t.exchange_order_id) : run.books.orders[i];
}

function describe(x: BookFill | ExchangeTrade): string {
  return `${x.side} ${x.quantity} @ ${x.price} fee ${x.fee} ${x.fee_asset}`;
}

function judgeFillPair(run: Run, f: BookFill, t: ExchangeTrade): void {
  run.counters.fills_compared++;
  run.counters.trades_compared++;
  if (
    f.quantity === t.quantity &&
    f.price === t.price &&
    f.side === t.side &&
    f.symbol === t.symbol &&
    f.fee === t.fee &&
    f.fee_asset === t.fee_asset &&
    (t.client_order_id === '' || f.client_order_id === t.client_order_id)
  ) {
    run.count(CHECK, 'MATCHED');
    if (run.listAll) {
      run.items.push({
        check: CHECK,
        key: f.trade_id,
        status: 'MATCHED',
        internal: describe(f),
        exchange: describe(t),
        rule: 'same trade',
      });
    }
    return;
  }
  const tolerance = run.quantityTolerance(f.symbol);
  let within = false;
  const diffs: string[] = [];
  const quantity = judgeAbsolute(f.quantity, t.quantity, tolerance.value);
  if (quantity.status === 'WITHIN_TOLERANCE') within = true;
  else if (quantity.status === 'BREAK') {
    diffs.push(`quantity ${f.quantity} internally, ${t.quantity} on the exchange (tolerance ${tolerance.text})`);
  }
  const price = judgeRelative(f.price, t.price, run.priceTolerance);
  if (price.status === 'WITHIN_TOLERANCE') within = true;
  else if (price.status === 'BREAK') {
    diffs.push(
      `price ${f.price} internally, ${t.price} on the exchange (relative tolerance ${run.settings.priceToleranceRelative})`,
    );
  }
  const fee = judgeAbsolute(f.fee, t.fee, tolerance.value);
  if (fee.status === 'WITHIN_TOLERANCE') within = true;
  else if (fee.status === 'BREAK' || f.fee_asset !== t.fee_asset) {
    diffs.push(`fee ${f.fee} ${f.fee_asset} internally, ${t.fee} ${t.fee_asset} on the exchange`);
  }
  if (f.side !== t.side) diffs.push(`side ${f.side} internally, ${t.side} on the exchange`);
  if (f.symbol !== t.symbol) diffs.push(`symbol ${f.symbol} internally, ${t.symbol} on the exchange`);
  if (t.client_order_id !== '' && f.client_order_id !== t.client_order_id) {
    diffs.push(`order ${f.client_order_id} internally, ${t.client_order_id} on the exchange`);
  }
  const found: Discrepancy[] = [];
  if (diffs.length) {
    found.push(
      compact({
        check: CHECK,
        kind: 'filled_quantity_mismatch',
        symbol: f.symbol,
        client_order_id: f.client_order_id,
        exchange_order_id: t.exchange_order_id,
        trade_id: f.trade_id,
        internal: describe(f),
        exchange: describe(t),
        difference: quantity.status === 'MATCHED' ? undefined : quantity.diff,
        detail: `trade ${f.trade_id}: ${diffs.join('; ')}`,
      }),
    );
  }
  const status = found.length ? 'BREAK' : within ? 'WITHIN_TOLERANCE' : 'MATCHED';
  run.add(
    compact({
      check: CHECK,
      key: f.trade_id,
      status,
      internal: describe(f),
      exchange: describe(t),
      difference: quantity.status === 'MATCHED' ? undefined : quantity.diff,
      rule: `|quantity diff| <= ${tolerance.text}, price within ${run.settings.priceToleranceRelative} relative`,
    }),
    found,
    status !== 'MATCHED' || run.listAll,
  );
}
