// The reconciliation benchmark: a trading database of N orders, 2N fills over 1,000
// symbols (books consistent with their venue), reconciled in a process of its own under
// GNU time: `npm run bench -- reconcile [--orders 1000000]`.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SQLITE_TARGET_SCHEMA } from '@lifeboat/domain';
import Database from 'better-sqlite3';

const UNIT = 100_000_000n;
const SYMBOLS = 1000;

const fmt = (u: bigint): string => {
  const neg = u < 0n;
  const s = (neg ? -u : u).toString().padStart(9, '0');
  return `${neg ? '-' : ''}${s.slice(0, -8)}.${s.slice(-8)}`;
};
const roundDiv = (a: bigint, b: bigint): bigint => (a >= 0n ? (a + b / 2n) / b : -((-a + b / 2n) / b));

/** Builds (once, cached) a SQLite trading database in the target schema. */
function dataset(cacheRoot: string, orders: number): string {
  const dir = join(cacheRoot, `reconcile-${orders}`);
  const file = join(dir, 'trading.db');
  if (existsSync(join(dir, '.complete'))) return file;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  process.stderr.write(
    `generating ${orders} orders, ${orders * 2} fills over ${SYMBOLS} symbols in ${file} (cached)…\n`,
  );
  const db = new Database(file);
  db.pragma('journal_mode = OFF');
  db.pragma('synchronous = OFF');
  db.exec(SQLITE_TARGET_SCHEMA);
  const insertOrder = db.prepare(
    `INSERT INTO orders (id, client_order_id, exchange_order_id, account, strategy, symbol, side, type, quantity, price, status,
      filled_quantity, mode, created_at, updated_at) VALUES (?, ?, ?, 'main', 'BENCH', ?, ?, 'limit', ?, ?, 'FILLED', ?, 'live', ?, ?)`,
  );
  const insertFill = db.prepare(
    `INSERT INTO fills (trade_id, order_id, client_order_id, symbol, side, quantity, price, fee, fee_asset, timestamp)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'USDT', ?)`,
  );
  const insertPosition = db.prepare(
    `INSERT INTO positions (account, symbol, quantity, avg_entry_price, realized_pnl, updated_at) VALUES ('main', ?, ?, ?, ?, ?)`,
  );
  const positions = Array.from({ length: SYMBOLS }, () => ({ q: 0n, avg: 0n, pnl: 0n }));
  const start = Date.now() - 30 * 86_400_000;
  let trade = 1;
  db.transaction(() => {
    for (let i = 0; i < orders; i++) {
      const s = i % SYMBOLS;
      const symbol = `S${s}/USDT`;
      const p = positions[s] as { q: bigint; avg: bigint; pnl: bigint };
      // Buy, buy, sell, sell…: positions stay small and cross zero now and then.
      const side = Math.floor(i / SYMBOLS) % 4 < 2 ? 'buy' : 'sell';
      const qty = BigInt(1 + ((i * 7919) % 50)) * 1_000_000n; // 0.01 .. 0.50
      const price = BigInt(100 + s) * UNIT + BigInt((i * 104_729) % 5000) * 1_000_000n;
      const at = new Date(start + i * 2).toISOString();
      const id = `o${i}`;
      const cid = `SOFIA-BENCH-${start + i}-${i.toString(16).padStart(6, '0')}`;
      insertOrder.run(id, cid, String(10_000_000 + i), symbol, side, fmt(qty), fmt(price), fmt(qty), at, at);
      for (const part of [qty / 2n, qty - qty / 2n]) {
        const fee = roundDiv(part * price, UNIT * 1000n);
        insertFill.run(String(trade++), id, cid, symbol, side, fmt(part), fmt(price), fmt(fee), at);
        // Average cost, fees realized, as the reconciler recomputes it.
        const delta = side === 'buy' ? part : -part;
        const abs = (x: bigint) => (x < 0n ? -x : x);
        if (p.q === 0n || p.q > 0n === delta > 0n) {
          const total = p.q + delta;
          p.avg = total === 0n ? 0n : roundDiv(p.avg * abs(p.q) + price * part, abs(total));
          p.q = total;
        } else {
          // biome-ignore lint/complexity/useMathMinMax: bigint operands
          const closing = part < abs(p.q) ? part : abs(p.q);
          p.pnl += roundDiv((p.q > 0n ? price - p.avg : p.avg - price) * closing, UNIT);
          const before = p.q;
          p.q += delta;
          if (p.q === 0n) p.avg = 0n;
          else if (p.q > 0n !== before > 0n) p.avg = price;
        }
        p.pnl -= fee;
      }
    }
    const now = new Date().toISOString();
    positions.forEach((p, s) => {
      insertPosition.run(`S${s}/USDT`, fmt(p.q), fmt(p.avg), fmt(p.pnl), now);
    });
  })();
  db.close();
  writeFileSync(join(dir, '.complete'), new Date().toISOString());
  return file;
}

export async function benchReconcile(options: { cacheRoot: string; orders: number; runs: number }) {
  const file = dataset(options.cacheRoot, options.orders);
  const child = join(import.meta.dirname, 'reconcile-child.ts');
  const report = join(options.cacheRoot, 'time-reconcile.txt');
  const runs: Array<{ wallS: number; peakRssMiB: number; out: Record<string, unknown> }> = [];
  for (let i = 0; i < options.runs; i++) {
    const t = process.hrtime.bigint();
    const r = spawnSync('/usr/bin/time', ['-f', '%M', '-o', report, process.execPath, '--import', 'tsx', child, file], {
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    });
    const wallS = Number(process.hrtime.bigint() - t) / 1e9;
    if (r.status !== 0) throw new Error(`reconcile run failed (${r.status}): ${r.stderr.slice(-2000)}`);
    const peakRssMiB = Number(readFileSync(report, 'utf8').trim().split('\n').at(-1)) / 1024;
    runs.push({ wallS, peakRssMiB, out: JSON.parse(r.stdout) as Record<string, unknown> });
    process.stderr.write(
      `run ${i + 1}/${options.runs}: ${wallS.toFixed(2)} s, peak RSS ${peakRssMiB.toFixed(0)} MiB\n`,
    );
  }
  const best = runs.reduce((a, b) => (a.wallS <= b.wallS ? a : b));
  const phases = best.out.phases as Record<string, number>;
  const measured = Object.entries(phases)
    .filter(([k]) => !k.includes('not measured'))
    .reduce((n, [, v]) => n + v, 0);
  const data = {
    bench: 'reconcile',
    orders: best.out.orders,
    fills: best.out.fills,
    symbols: best.out.symbols,
    verdict: best.out.verdict,
    runs,
    measuredS: measured,
  };
  const lines = [
    `reconcile: ${best.out.orders} orders, ${best.out.fills} fills, ${best.out.symbols} symbols (best of ${options.runs}); verdict ${best.out.verdict}`,
    ...Object.entries(phases).map(([k, v]) => `  ${k.padEnd(52)} ${v.toFixed(2).padStart(7)} s`),
    `  ${'reconciler work (all but the snapshot build)'.padEnd(52)} ${measured.toFixed(2).padStart(7)} s`,
    `  ${'whole process wall time'.padEnd(52)} ${best.wallS.toFixed(2).padStart(7)} s`,
    `  ${'peak RSS of the process'.padEnd(52)} ${best.peakRssMiB.toFixed(0).padStart(7)} MiB`,
  ];
  return { bench: 'reconcile', lines, data };
}
