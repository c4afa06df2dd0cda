// The state one reconciliation run shares between its checks: inputs, clocks, tolerances,
// the items and discrepancies found so far, and the corrections collected on the way.
import { LifeboatError } from '../errors.js';
import {
  type BookFill,
  type BookOrder,
  type Books,
  CHECK_NAMES,
  type CheckName,
  DEFAULT_ACCOUNT,
  type Discrepancy,
  type ExchangeSnapshot,
  ITEM_STATUSES,
  type ItemStatus,
  type OrderUpdate,
  type ReconcileItem,
  type ReconcileSettings,
  type StatusCounts,
} from '../schemas/reconcile.js';
import { Dec } from './decimal.js';
import { StringIndex, strictlyMonotonic } from './string-index.js';

const CHECK_INDEX: Record<CheckName, number> = {
  database_integrity: 0,
  position_match: 1,
  order_consistency: 2,
  pnl_accuracy: 3,
};
const STATUS_INDEX: Record<ItemStatus, number> = { MATCHED: 0, WITHIN_TOLERANCE: 1, BREAK: 2, UNRESOLVED: 3 };

export interface Counters {
  orders_compared: number;
  fills_compared: number;
  trades_compared: number;
  positions_compared: number;
  pnl_symbols_compared: number;
  in_flight_skipped: number;
  outside_window: number;
  not_judged_incomplete: number;
  exchange_duplicate_trades: number;
  fees_not_valued: number;
}

/** Where to find an internal order by client id or exchange order id. */
export class InternalOrders {
  /** Client ids used by more than one order, with those orders. */
  readonly duplicates = new Map<string, number[]>();
  /** Every order is in the default account, so no fill needs its order looked up for one. */
  readonly allDefaultAccount: boolean;
  readonly #orders: readonly BookOrder[];
  #byClientId: StringIndex | undefined;
  #byExchangeId: Map<string, number> | undefined;

  constructor(orders: readonly BookOrder[]) {
    this.#orders = orders;
    let allDefaultAccount = true;
    for (const o of orders) {
      if (o.account !== DEFAULT_ACCOUNT) {
        allDefaultAccount = false;
        break;
      }
    }
    this.allDefaultAccount = allDefaultAccount;
    if (!strictlyMonotonic(orders, (o) => o.client_order_id)) this.#index();
  }

  /** The first order with a client id (`get` gives -1 for none); built on first use when ids are monotonic. */
  get byClientId(): StringIndex {
    return this.#byClientId ?? this.#index();
  }

  /** The index if it exists already, for those who can do without one. */
  get builtIndex(): StringIndex | undefined {
    return this.#byClientId;
  }

  /** Built on first use: only trades whose client id is unknown need it. */
  byExchangeId(): Map<string, number> {
    if (!this.#byExchangeId) {
      const map = new Map<string, number>();
      this.#orders.forEach((o, i) => {
        if (o.exchange_order_id !== null && !map.has(o.exchange_order_id)) map.set(o.exchange_order_id, i);
      });
      this.#byExchangeId = map;
    }
    return this.#byExchangeId;
  }

  #index(): StringIndex {
    const ids = this.#orders.map((o) => o.client_order_id);
    this.#byClientId = new StringIndex(ids, (i, first) => {
      const list = this.duplicates.get(ids[i]!);
      if (list) list.push(i);
      else this.duplicates.set(ids[i]!, [first, i]);
    });
    return this.#byClientId;
  }
}

/** A position item that broke, kept so the plan can tell whether a rebuilt position mends it. */
export interface PositionBreak {
  account: string;
  symbol: string;
  /** The exchange's quantity, or null when the exchange has no such position. */
  exchange: string | null;
  discrepancy: Discrepancy;
}

export interface Backfill {
  fill: BookFill;
  account: string;
  discrepancy: Discrepancy;
}

export class Run {
  readonly listAll: boolean;
  readonly collectedAt: number;
  /** Records updated after this instant may still be on their way: not judged. */
  readonly inFlightAfter: number;
  /** Open orders last updated before this instant are stale. */
  readonly staleBefore: number;
  readonly windowStart: number | null;
  readonly priceTolerance: Dec;
  readonly items: ReconcileItem[] = [];
  readonly discrepancies: Discrepancy[] = [];
  /** Discrepancies a correction in the plan takes care of. */
  readonly fixable = new Set<Discrepancy>();
  readonly backfills: Backfill[] = [];
  /** Terminal exchange orders with fills that the books lost, by exchange order id: backfilled with their fills. */
  readonly orderBackfills = new Map<string, BookOrder>();
  readonly orderUpdates: OrderUpdate[] = [];
  readonly positionBreaks: PositionBreak[] = [];
  readonly counters: Counters = {
    orders_compared: 0,
    fills_compared: 0,
    trades_compared: 0,
    positions_compared: 0,
    pnl_symbols_compared: 0,
    in_flight_skipped: 0,
    outside_window: 0,
    not_judged_incomplete: 0,
    exchange_duplicate_trades: 0,
    fees_not_valued: 0,
  };
  readonly #counts = new Int32Array(CHECK_NAMES.length * ITEM_STATUSES.length);
  #fillMs: number[] | undefined;
  #tradeMs: number[] | undefined;
  readonly #tolerances = new Map<string, { value: Dec; text: string }>();
  #orders: InternalOrders | undefined;

  constructor(
    readonly books: Books,
    readonly exchange: ExchangeSnapshot,
    readonly settings: ReconcileSettings,
  ) {
    this.listAll = settings.items === 'all';
    this.collectedAt = timeMs(exchange.collected_at);
    this.inFlightAfter = this.collectedAt - settings.inFlightThresholdMs;
    this.staleBefore = this.collectedAt - settings.staleOrderAgeMs;
    this.windowStart = exchange.window_start === undefined ? null : timeMs(exchange.window_start);
    this.priceTolerance = new Dec(settings.priceToleranceRelative);
  }

  quantityTolerance(symbol: string): { value: Dec; text: string } {
    let t = this.#tolerances.get(symbol);
    if (!t) {
      const text = this.settings.quantityTolerance.perSymbol[symbol] ?? this.settings.quantityTolerance.default;
      t = { value: new Dec(text), text };
      this.#tolerances.set(symbol, t);
    }
    return t;
  }

  /** Counts an item without building it: MATCHED orders and fills, when only exceptions are listed. */
  count(check: CheckName, status: ItemStatus): void {
    this.#counts[CHECK_INDEX[check] * ITEM_STATUSES.length + STATUS_INDEX[status]]!++;
  }

  /** Records an item with what was found about it; BREAK and UNRESOLVED items always carry a discrepancy. */
  add(item: ReconcileItem, found: readonly Discrepancy[] = [], listed = true): void {
    if ((item.status === 'BREAK' || item.status === 'UNRESOLVED') && found.length === 0) {
      throw new LifeboatError(
        'INTERNAL',
        `reconcile: ${item.check} item ${item.key} is ${item.status} with no discrepancy`,
      );
    }
    this.count(item.check, item.status);
    if (listed) this.items.push(item);
    for (const d of found) this.discrepancies.push(d);
  }

  statusCounts(check?: CheckName): StatusCounts {
    const out: StatusCounts = { MATCHED: 0, WITHIN_TOLERANCE: 0, BREAK: 0, UNRESOLVED: 0 };
    for (const c of CHECK_NAMES) {
      if (check !== undefined && c !== check) continue;
      for (const s of ITEM_STATUSES) out[s] += this.#counts[CHECK_INDEX[c] * ITEM_STATUSES.length + STATUS_INDEX[s]]!;
    }
    return out;
  }

  get orders(): InternalOrders {
    if (!this.#orders) this.#orders = new InternalOrders(this.books.orders);
    return this.#orders;
  }

  /** Each internal fill's time in ms, read once for every check that needs it. */
  get fillMs(): readonly number[] {
    this.#fillMs ??= timesOf(this.books.fills);
    return this.#fillMs;
  }

  /** Each exchange trade's time in ms, likewise. */
  get tradeMs(): readonly number[] {
    this.#tradeMs ??= timesOf(this.exchange.trades);
    return this.#tradeMs;
  }

  /** The account of the order a fill belongs to; an unknown order counts under the default account. */
  accountOf(clientOrderId: string): string {
    const orders = this.orders;
    if (orders.allDefaultAccount) return DEFAULT_ACCOUNT;
    const i = orders.byClientId.get(clientOrderId);
    return i === -1 ? DEFAULT_ACCOUNT : this.books.orders[i]!.account;
  }
}

/**
 * The times of fills or trades in ms. The fills of one order often share their time, and a time
 * equal to the row before's (the very same string, as a database read shares them) is not read again.
 */
function timesOf(rows: ReadonlyArray<{ timestamp: string }>): number[] {
  const ms = new Array<number>(rows.length);
  let text = '';
  let at = Number.NaN;
  for (let i = 0; i < rows.length; i++) {
    const t = rows[i]!.timestamp;
    if (t !== text) {
      text = t;
      at = timeMs(t);
    }
    ms[i] = at;
  }
  return ms;
}

/** Drops the fields that are undefined, so a discrepancy or item has exactly the fields it uses. */
export function compact<T extends object>(o: T): T {
  for (const k of Object.keys(o) as Array<keyof T>) if (o[k] === undefined) delete o[k];
  return o;
}

const twoDigits = (s: string, i: number): number => (s.charCodeAt(i) - 48) * 10 + s.charCodeAt(i + 1) - 48;

/**
 * Milliseconds since the epoch of an ISO-8601 time. The validated shape is read by hand:
 * Date.parse costs about ten times as much, and a run reads millions of times. Fractions
 * beyond the millisecond are cut, as Date.parse does; any other shape goes to Date.parse.
 */
export function timeMs(s: string): number {
  if (
    s.length < 20 ||
    s.charCodeAt(4) !== 45 ||
    s.charCodeAt(7) !== 45 ||
    s.charCodeAt(10) !== 84 ||
    s.charCodeAt(13) !== 58 ||
    s.charCodeAt(16) !== 58
  ) {
    return Date.parse(s);
  }
  let k = 19;
  let ms = 0;
  if (s.charCodeAt(k) === 46) {
    k++;
    let unit = 100;
    for (let c = s.charCodeAt(k); c >= 48 && c <= 57; c = s.charCodeAt(++k)) {
      ms += (c - 48) * unit;
      unit = unit > 1 ? unit / 10 : 0;
    }
  }
  let offset = 0;
  const zone = s.charCodeAt(k);
  if (zone === 43 || zone === 45) {
    if (s.length !== k + 6) return Date.parse(s);
    offset = (twoDigits(s, k + 1) * 60 + twoDigits(s, k + 4)) * 60_000 * (zone === 43 ? 1 : -1);
  } else if (zone !== 90 || s.length !== k + 1) {
    return Date.parse(s);
  }
  // Days from the civil date (proleptic Gregorian), counting from 1970-01-01.
  const month = twoDigits(s, 5);
  const year = twoDigits(s, 0) * 100 + twoDigits(s, 2) - (month <= 2 ? 1 : 0);
  const era = Math.floor(year / 400);
  const yearOfEra = year - era * 400;
  const dayOfYear = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + twoDigits(s, 8) - 1;
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear;
  const days = era * 146_097 + dayOfEra - 719_468;
  return (
    days * 86_400_000 + twoDigits(s, 11) * 3_600_000 + twoDigits(s, 14) * 60_000 + twoDigits(s, 17) * 1000 + ms - offset
  );
}
