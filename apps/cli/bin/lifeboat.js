#!/usr/bin/env node
// The `lifeboat` command; the program itself is built into dist/ by `npm run build`.
import { existsSync } from 'node:fs';
import module from 'node:module';

// Where Node has it (22.1 and later), compiled code is cached on disk between runs: every
// command, `kill-switch activate` first of all, starts faster.
module.enableCompileCache?.();

// The lock file pins AWS SDK releases that support Node 20; its end-of-support notice is
// noise on every command's stderr.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const main = new URL('../dist/main.js', import.meta.url);
if (!existsSync(main)) {
  console.error('lifeboat: not built yet; run `npm run build` in the repository first');
  process.exit(2);
}
await import(main.href);
