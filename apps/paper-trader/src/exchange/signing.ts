// Binance request signing (HMAC-SHA256 over the parameters as sent), in one place for the
// exchange that checks signatures and the clients and tests that make them.
import { createHmac, timingSafeEqual } from 'node:crypto';

/** The hex HMAC-SHA256 of a payload: Binance's `signature` parameter. */
export function hmacSignature(secret: string, payload: string): string {
  return createHmac('sha256', secret).update(payload).digest('hex');
}

/** Whether a hex signature is the payload's, in constant time. */
export function signatureMatches(secret: string, payload: string, signature: string): boolean {
  if (!/^[0-9a-fA-F]{64}$/.test(signature)) return false;
  return timingSafeEqual(createHmac('sha256', secret).update(payload).digest(), Buffer.from(signature, 'hex'));
}

/**
 * A signed query string (or form body): the parameters URL-encoded, `timestamp` added when
 * missing, then `&signature=`. Send it as the query string for GET and DELETE, as an
 * `application/x-www-form-urlencoded` body for POST, as ccxt does.
 */
export function signParams(
  params: Record<string, string | number | boolean | undefined>,
  secret: string,
  now: number = Date.now(),
): string {
  const entries = Object.entries(params).filter((e): e is [string, string | number | boolean] => e[1] !== undefined);
  if (!entries.some(([k]) => k === 'timestamp')) entries.push(['timestamp', now]);
  const query = new URLSearchParams(entries.map(([k, v]): [string, string] => [k, String(v)])).toString();
  return `${query}&signature=${hmacSignature(secret, query)}`;
}
