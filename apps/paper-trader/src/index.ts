// The paper-trader: a Sofia-compatible trading system (the target Lifeboat protects in demos,
// drills and tests) and the simulated exchange it trades on.
export * from './demo-seed.js';
export * from './exchange/index.js';
export { createApi } from './trader/api.js';
export { auditLog } from './trader/audit.js';
export { Books, type BooksOrder } from './trader/books.js';
export { ExchangeClient, VenueError } from './trader/exchange-client.js';
export { KillSwitch, type KillSwitchFile, type KillSwitchState } from './trader/kill-switch.js';
export { Trader, type TradingMode } from './trader/trader.js';
