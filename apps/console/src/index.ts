// The console app: the Fastify server (API, dashboard, queue board), its access control, and
// how it starts, for main.ts and for `lifeboat console`.
export * from './auth.js';
export { BOARD_PATH, redactPayload } from './board.js';
export { consumeEmbedded } from './embedded.js';
export { buildConsole, type ConsoleDeps, type Logger, PUBLIC_DIR, VERSION } from './server.js';
export { embeddedTokensFile, type RunningConsole, type StartOptions, startConsole } from './start.js';
