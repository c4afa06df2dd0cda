// The simulated exchange's public pieces: the Binance-compatible server, its engine and books.
export { DecimalError, formatUnits, parseUnits, SCALE } from './decimal.js';
export {
  DEFAULT_INITIAL_BALANCES,
  type ExchangeAccountConfig,
  ExchangeEngine,
  type ExchangeEngineOptions,
  type ExchangeStats,
  FEE_RATE,
  type OrderRef,
  type PlaceOrderParams,
  type PlaceOrderResult,
  SYMBOLS,
  type SymbolSpec,
} from './engine.js';
export { BinanceApiError, type BinanceErrorBody, binanceErrors } from './errors.js';
export {
  createExchangeServer,
  type ExchangeServer,
  type ExchangeServerOptions,
  type ExchangeStatsResponse,
  type Fault,
  type FaultMode,
  type FaultState,
} from './server.js';
export { hmacSignature, signatureMatches, signParams } from './signing.js';
export {
  type Account,
  type Balance,
  ExchangeState,
  OPEN_STATUSES,
  type Order,
  type OrderRequestStats,
  type OrderStatus,
  type OrderType,
  type Side,
  type TimeInForce,
  type Trade,
} from './state.js';
