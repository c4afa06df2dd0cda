// The exchange asked directly through ccxt (any venue it supports), with read-only keys from
// the environment. Spot venues: a position is the base asset's total balance.
import {
  type CollectedSnapshot,
  EXCHANGE_SNAPSHOT_FORMAT,
  type ExchangeSnapshot,
  type ExchangeSource,
  LifeboatError,
  type SnapshotPart,
} from '@lifeboat/domain';

export interface CcxtSourceOptions {
  exchange: string;
  apiKey: string;
  secret: string;
  /** Overrides of the venue's API base URLs (testnets, simulated venues). */
  urls?: Record<string, string>;
  symbols?: readonly string[];
  /** Oldest history to read (ms since the epoch); default: all the venue gives. */
  since?: number;
  timeoutMs?: number;
  account?: string;
}

const PAGE = 1000;
const STATUS: Record<string, string> = {
  open: 'OPEN',
  closed: 'FILLED',
  canceled: 'CANCELED',
  cancelled: 'CANCELED',
  rejected: 'REJECTED',
  expired: 'EXPIRED',
};

// Loaded on first use: ccxt is large and only this source needs it.
type CcxtExchange = {
  urls: { api: unknown };
  markets: Record<string, { base: string; quote: string; spot?: boolean }>;
  loadMarkets(): Promise<unknown>;
  fetchOrders(symbol: string, since?: number, limit?: number, params?: object): Promise<CcxtOrder[]>;
  fetchMyTrades(symbol: string, since?: number, limit?: number, params?: object): Promise<CcxtTrade[]>;
  fetchBalance(): Promise<{ total: Record<string, number | string | undefined>; info: unknown }>;
};
interface CcxtOrder {
  id: string;
  clientOrderId?: string;
  symbol: string;
  side: string;
  type: string;
  amount: number;
  price?: number;
  status: string;
  filled: number;
  timestamp: number;
  lastUpdateTimestamp?: number;
  lastTradeTimestamp?: number;
  info: Record<string, unknown>;
}
interface CcxtTrade {
  id: string;
  order: string;
  symbol: string;
  side: string;
  amount: number;
  price: number;
  fee?: { cost: number; currency: string };
  timestamp: number;
  info: Record<string, unknown>;
}

/** Raw decimal strings from the venue's own answer where it has them, else ccxt's number. */
function dec(info: Record<string, unknown>, keys: string[], fallback: number | undefined): string {
  for (const k of keys) {
    const v = info[k];
    if (typeof v === 'string' && /^\d+(\.\d+)?$/.test(v)) return v;
  }
  return fallback === undefined ? '0' : numberToDecimal(fallback);
}

function numberToDecimal(n: number): string {
  // toFixed avoids exponent notation for tiny amounts; trailing zeros are trimmed.
  return n.toFixed(12).replace(/\.?0+$/, '') || '0';
}

export class CcxtExchangeSource implements ExchangeSource {
  readonly location: string;
  readonly needsSymbols: boolean;

  constructor(private readonly options: CcxtSourceOptions) {
    this.needsSymbols = !options.symbols;
    this.location = `ccxt:${options.exchange}${options.urls ? ` (${Object.values(options.urls)[0]})` : ''}`;
  }

  async #client(): Promise<CcxtExchange> {
    const ccxt = (await import('ccxt')).default as unknown as Record<string, new (o: object) => CcxtExchange>;
    const Exchange = ccxt[this.options.exchange];
    if (typeof Exchange !== 'function') {
      throw new LifeboatError('INVALID_CONFIG', `ccxt has no exchange "${this.options.exchange}"`, {
        hint: 'use a ccxt exchange id such as binance, kraken, coinbase',
      });
    }
    const client = new Exchange({
      apiKey: this.options.apiKey,
      secret: this.options.secret,
      enableRateLimit: true,
      timeout: this.options.timeoutMs ?? 30_000,
      options: { fetchMarkets: { types: ['spot'] }, fetchCurrencies: false, fetchMargins: false },
    });
    if (this.options.urls) {
      const api = client.urls.api as Record<string, string>;
      for (const key of Object.keys(api))
        api[key] = this.options.urls[key] ?? this.options.urls.default ?? api[key] ?? '';
    }
    return client;
  }

  async collect(hint: { symbols: readonly string[] }): Promise<CollectedSnapshot> {
    const collectedAt = new Date().toISOString();
    const errors: CollectedSnapshot['errors'] = {};
    const complete: Record<SnapshotPart, boolean> = { orders: true, trades: true, positions: true, balances: true };
    const fail = (parts: SnapshotPart[], err: unknown) => {
      const reason = err instanceof Error ? err.message : String(err);
      for (const p of parts) {
        complete[p] = false;
        errors[p] ??= `${this.location}: ${reason.slice(0, 300)}`;
      }
    };
    const snapshot = {
      format: EXCHANGE_SNAPSHOT_FORMAT,
      venue: this.location,
      collected_at: collectedAt,
      positions_from: undefined as string | undefined,
      positions_at: undefined as string | undefined,
      complete,
      orders: [] as unknown[],
      trades: [] as unknown[],
      positions: [] as unknown[],
      balances: [] as unknown[],
    };
    let client: CcxtExchange;
    try {
      client = await this.#client();
      await client.loadMarkets();
    } catch (err) {
      if (err instanceof LifeboatError) throw err;
      fail(['orders', 'trades', 'positions', 'balances'], err);
      return { snapshot: snapshot as unknown as ExchangeSnapshot, errors };
    }
    const account = this.options.account ?? 'main';
    let totals: Record<string, string> = {};
    try {
      snapshot.positions_from = new Date().toISOString();
      const balance = await client.fetchBalance();
      const raw = (balance.info as { balances?: Array<{ asset: string; free: string; locked: string }> }).balances;
      totals = raw
        ? Object.fromEntries(raw.map((b) => [b.asset, addDecimalStrings(b.free, b.locked)]))
        : Object.fromEntries(
            Object.entries(balance.total).map(([a, v]) => [
              a,
              typeof v === 'string' ? v : numberToDecimal(Number(v ?? 0)),
            ]),
          );
      snapshot.balances = Object.entries(totals).map(([asset, total]) => ({ asset, total }));
      // The trades are fetched after this: each one made before it is in the list.
      snapshot.positions_at = new Date().toISOString();
    } catch (err) {
      fail(['balances', 'positions'], err);
    }
    const symbols =
      this.options.symbols ??
      [
        ...new Set([
          ...hint.symbols,
          ...Object.entries(client.markets)
            .filter(
              ([, m]) =>
                m.spot !== false && totals[m.base] !== undefined && !/^0(\.0+)?$/.test(totals[m.base] as string),
            )
            .map(([s]) => s),
        ]),
      ].filter((s) => client.markets[s]);
    if (complete.positions) {
      snapshot.positions = symbols.map((s) => ({
        account,
        symbol: s,
        quantity: totals[client.markets[s]?.base ?? ''] ?? '0',
      }));
    }
    const clientIds = new Map<string, string>();
    try {
      for (const symbol of symbols) {
        for await (const page of pages((since) => client.fetchOrders(symbol, since, PAGE), this.options.since)) {
          for (const o of page) {
            const clientId = o.clientOrderId ?? String(o.info.clientOrderId ?? '');
            clientIds.set(o.id, clientId);
            const info = o.info;
            snapshot.orders.push({
              exchange_order_id: o.id,
              client_order_id: clientId,
              symbol: o.symbol,
              side: o.side,
              type: o.type === 'limit' ? 'limit' : 'market',
              quantity: dec(info, ['origQty'], o.amount),
              price: o.type === 'limit' ? dec(info, ['price'], o.price) : null,
              status:
                o.status === 'open' && o.filled > 0
                  ? 'PARTIALLY_FILLED'
                  : (STATUS[o.status] ?? String(o.status).toUpperCase()),
              filled_quantity: dec(info, ['executedQty'], o.filled),
              updated_at: new Date(o.lastUpdateTimestamp ?? o.lastTradeTimestamp ?? o.timestamp).toISOString(),
            });
          }
        }
      }
    } catch (err) {
      fail(['orders'], err);
    }
    try {
      for (const symbol of symbols) {
        for await (const page of pages((since) => client.fetchMyTrades(symbol, since, PAGE), this.options.since)) {
          for (const t of page) {
            const info = t.info;
            snapshot.trades.push({
              trade_id: t.id,
              exchange_order_id: t.order,
              client_order_id: clientIds.get(t.order) ?? '',
              symbol: t.symbol,
              side: t.side,
              quantity: dec(info, ['qty'], t.amount),
              price: dec(info, ['price'], t.price),
              fee: dec(info, ['commission'], t.fee?.cost),
              fee_asset: String(info.commissionAsset ?? t.fee?.currency ?? ''),
              timestamp: new Date(t.timestamp).toISOString(),
            });
          }
        }
      }
    } catch (err) {
      fail(['trades'], err);
    }
    return { snapshot: snapshot as unknown as ExchangeSnapshot, errors };
  }
}

/**
 * Pages through a history by time. The next page starts at the last record's millisecond
 * (not after it), so records sharing that millisecond are not skipped; ids already seen are
 * dropped, and a page with nothing new ends the walk.
 */
async function* pages<T extends { id: string; timestamp: number }>(
  fetchPage: (since: number | undefined) => Promise<T[]>,
  since: number | undefined,
): AsyncGenerator<T[]> {
  const seen = new Set<string>();
  let from = since;
  for (;;) {
    const page = await fetchPage(from);
    const fresh = page.filter((r) => !seen.has(r.id));
    if (!fresh.length) return;
    for (const r of fresh) seen.add(r.id);
    yield fresh;
    if (page.length < PAGE) return;
    from = page.at(-1)?.timestamp ?? from;
  }
}

function addDecimalStrings(a: string, b: string): string {
  const [ai = '0', af = ''] = a.split('.');
  const [bi = '0', bf = ''] = b.split('.');
  const scale = Math.max(af.length, bf.length);
  const units = (i: string, f: string) => BigInt(i) * 10n ** BigInt(scale) + BigInt(f.padEnd(scale, '0') || '0');
  const sum = (units(ai, af) + units(bi, bf)).toString().padStart(scale + 1, '0');
  return scale ? `${sum.slice(0, -scale)}.${sum.slice(-scale)}` : sum;
}
