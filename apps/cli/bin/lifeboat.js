#!/usr/bin/env node
// The `lifeboat` command; the program itself is built into dist/ by `npm run build`.
import { existsSync } from 'node:fs';

const main = new URL('../dist/main.js', import.meta.url);
if (!existsSync(main)) {
  console.error('lifeboat: not built yet; run `npm run build` in the repository first');
  process.exit(2);
}
await import(main.href);
