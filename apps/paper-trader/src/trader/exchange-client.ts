// A small signed client for the Binance spot REST API: what the trader needs of its venue,
// faithful to Binance (X-MBX-APIKEY, timestamp, HMAC-SHA256 signature), with short timeouts.
import { signParams } from '../exchange/signing.js';

export class VenueError extends Error {
  constructor(
    readonly status: number,
    readonly code: number,
    message: string,
  ) {
    super(message);
    this.name = 'VenueError';
  }
}

export interface VenueOrder {
  symbol: string;
  orderId: number;
  clientOrderId: string;
  price: string;
  origQty: string;
  executedQty: string;
  status: 'NEW' | 'PARTIALLY_FILLED' | 'FILLED' | 'CANCELED' | 'REJECTED' | 'EXPIRED';
  type: 'LIMIT' | 'MARKET';
  side: 'BUY' | 'SELL';
  updateTime?: number;
  fills?: Array<{ price: string; qty: string; commission: string; commissionAsset: string; tradeId: number }>;
}

export interface VenueTrade {
  symbol: string;
  id: number;
  orderId: number;
  price: string;
  qty: string;
  commission: string;
  commissionAsset: string;
  time: number;
  isBuyer: boolean;
}

type Params = Record<string, string | number | boolean | undefined>;

export class ExchangeClient {
  constructor(
    private readonly baseUrl: string,
    private readonly apiKey: string,
    private readonly secret: string,
    private readonly timeoutMs = 5000,
  ) {}

  private async request<T>(
    method: 'GET' | 'POST' | 'DELETE',
    path: string,
    params: Params,
    signed: boolean,
  ): Promise<T> {
    const query = signed
      ? signParams(params, this.secret)
      : new URLSearchParams(params as Record<string, string>).toString();
    const post = method === 'POST';
    const url = `${this.baseUrl}${path}${!post && query ? `?${query}` : ''}`;
    const res = await fetch(url, {
      method,
      headers: {
        ...(signed ? { 'X-MBX-APIKEY': this.apiKey } : {}),
        ...(post ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
      },
      ...(post ? { body: query } : {}),
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    const body = (await res.json().catch(() => ({}))) as { code?: number; msg?: string };
    if (!res.ok)
      throw new VenueError(
        res.status,
        body.code ?? -1,
        `${method} ${path}: ${body.msg ?? res.statusText} (${body.code ?? res.status})`,
      );
    return body as T;
  }

  prices(): Promise<Array<{ symbol: string; price: string }>> {
    return this.request('GET', '/api/v3/ticker/price', {}, false);
  }

  placeOrder(p: {
    symbol: string;
    side: 'BUY' | 'SELL';
    type: 'LIMIT' | 'MARKET';
    quantity: string;
    price?: string;
    newClientOrderId: string;
  }): Promise<VenueOrder> {
    return this.request(
      'POST',
      '/api/v3/order',
      {
        ...p,
        ...(p.type === 'LIMIT' ? { timeInForce: 'GTC' } : {}),
        newOrderRespType: 'FULL',
      },
      true,
    );
  }

  getOrder(symbol: string, origClientOrderId: string): Promise<VenueOrder> {
    return this.request('GET', '/api/v3/order', { symbol, origClientOrderId }, true);
  }

  cancelOrder(symbol: string, origClientOrderId: string): Promise<VenueOrder> {
    return this.request('DELETE', '/api/v3/order', { symbol, origClientOrderId }, true);
  }

  openOrders(symbol?: string): Promise<VenueOrder[]> {
    return this.request('GET', '/api/v3/openOrders', { symbol }, true);
  }

  allOrders(
    symbol: string,
    range: { orderId?: number; startTime?: number; limit?: number } = {},
  ): Promise<VenueOrder[]> {
    return this.request('GET', '/api/v3/allOrders', { symbol, ...range, limit: range.limit ?? 1000 }, true);
  }

  /** The venue's markets: `BTCUSDT` with its base and quote assets. */
  async markets(): Promise<Array<{ symbol: string; baseAsset: string; quoteAsset: string }>> {
    const info = await this.request<{ symbols: Array<{ symbol: string; baseAsset: string; quoteAsset: string }> }>(
      'GET',
      '/api/v3/exchangeInfo',
      {},
      false,
    );
    return info.symbols.map(({ symbol, baseAsset, quoteAsset }) => ({ symbol, baseAsset, quoteAsset }));
  }

  myTrades(symbol: string, range: { fromId?: number; startTime?: number; limit?: number } = {}): Promise<VenueTrade[]> {
    return this.request('GET', '/api/v3/myTrades', { symbol, ...range, limit: range.limit ?? 1000 }, true);
  }

  account(): Promise<{ balances: Array<{ asset: string; free: string; locked: string }> }> {
    return this.request('GET', '/api/v3/account', {}, true);
  }
}
