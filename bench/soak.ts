// The demo soak: `lifeboat demo start --detach --rate N` over a fresh demo for a while, with
// the memory of the paper-trader and of its exchange sampled every 5 s. Flat memory means
// the live heap after collections does not grow and the resident size levels off.
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

export interface SoakOptions {
  cli: string;
  cacheRoot: string;
  seconds: number;
  rate: number;
}

interface Sample {
  t: number;
  rssMiB: number;
  heapUsedMiB: number;
}

interface ProcessReport {
  name: string;
  samples: Sample[];
  /** The kernel's high-water mark of the resident set (VmHWM). */
  peakRssMiB: number;
}

const SAMPLE_MS = 5000;
const MIB = 1024 ** 2;

function run(cli: string, args: string[]): string {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`lifeboat ${args.join(' ')} failed (${r.status}): ${r.stderr.slice(-2000)}`);
  return r.stdout;
}

function procStatus(pid: number): { rssMiB: number; hwmMiB: number } {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? Number.NaN);
  return { rssMiB: kib('VmRSS') / 1024, hwmMiB: kib('VmHWM') / 1024 };
}

async function exchangeStats(port: number): Promise<{ orders: number; heapUsed: number }> {
  const res = await fetch(`http://127.0.0.1:${port}/_lifeboat/stats`);
  const body = (await res.json()) as { ordersReceived: number; memory: { heapUsed: number } };
  return { orders: body.ordersReceived, heapUsed: body.memory.heapUsed };
}

async function traderHeapUsed(port: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return Number(/^nodejs_heap_size_used_bytes (\S+)$/m.exec(text)?.[1] ?? Number.NaN);
}

export async function benchSoak(options: SoakOptions) {
  const dir = join(options.cacheRoot, 'soak');
  rmSync(dir, { recursive: true, force: true });
  run(options.cli, ['demo', 'init', dir, '--size', '10MiB', '--json']);
  const config = join(dir, 'lifeboat.yaml');
  const started = JSON.parse(
    run(options.cli, ['demo', 'start', '--config', config, '--detach', '--rate', String(options.rate), '--json']),
  ) as { processes: Record<string, { pid: number }> };
  const pids = {
    exchange: started.processes.exchange?.pid as number,
    trader: started.processes['paper-trader']?.pid as number,
  };
  const reports: Record<'exchange' | 'trader', ProcessReport> = {
    exchange: { name: 'exchange', samples: [], peakRssMiB: 0 },
    trader: { name: 'paper-trader', samples: [], peakRssMiB: 0 },
  };
  let ordersAtStart = 0;
  let ordersAtEnd = 0;
  const t0 = Date.now();
  try {
    ordersAtStart = (await exchangeStats(8024)).orders;
    for (let t = 0; t <= options.seconds * 1000; t += SAMPLE_MS) {
      await new Promise((r) => setTimeout(r, Math.max(0, t0 + t - Date.now())));
      const stats = await exchangeStats(8024);
      ordersAtEnd = stats.orders;
      const heaps = { exchange: stats.heapUsed, trader: await traderHeapUsed(8023) };
      for (const key of ['exchange', 'trader'] as const) {
        const s = procStatus(pids[key]);
        reports[key].samples.push({ t: t / 1000, rssMiB: s.rssMiB, heapUsedMiB: heaps[key] / MIB });
        reports[key].peakRssMiB = s.hwmMiB;
      }
      process.stderr.write(
        `t=${t / 1000}s orders ${ordersAtEnd - ordersAtStart}, exchange RSS ${reports.exchange.samples.at(-1)?.rssMiB.toFixed(0)} MiB, trader RSS ${reports.trader.samples.at(-1)?.rssMiB.toFixed(0)} MiB\n`,
      );
    }
  } finally {
    run(options.cli, ['demo', 'stop', '--config', config]);
  }
  const orders = ordersAtEnd - ordersAtStart;
  const summary = (r: ProcessReport) => {
    const half = r.samples.filter((s) => s.t >= options.seconds / 2);
    const rss = r.samples.map((s) => s.rssMiB);
    const heap = r.samples.map((s) => s.heapUsedMiB);
    return {
      name: r.name,
      rssFirstMiB: rss[0] ?? 0,
      rssLastMiB: rss.at(-1) ?? 0,
      rssSecondHalfMinMiB: Math.min(...half.map((s) => s.rssMiB)),
      rssSecondHalfMaxMiB: Math.max(...half.map((s) => s.rssMiB)),
      peakRssMiB: r.peakRssMiB,
      heapUsedMinMiB: Math.min(...heap),
      heapUsedMaxMiB: Math.max(...heap),
      samples: r.samples,
    };
  };
  const processes = [summary(reports.trader), summary(reports.exchange)];
  const data = { bench: 'soak', seconds: options.seconds, rate: options.rate, ordersAtVenue: orders, processes };
  const lines = [
    `soak: lifeboat demo start --rate ${options.rate} for ${options.seconds} s: ${orders} orders reached the venue (${(orders / options.seconds).toFixed(1)}/s)`,
    `  ${'process'.padEnd(14)} ${'RSS first'.padStart(10)} ${'RSS last'.padStart(9)} ${'2nd half min-max'.padStart(17)} ${'peak RSS'.padStart(9)} ${'heap used min-max'.padStart(18)}  (MiB)`,
    ...processes.map(
      (p) =>
        `  ${p.name.padEnd(14)} ${p.rssFirstMiB.toFixed(0).padStart(10)} ${p.rssLastMiB.toFixed(0).padStart(9)} ${`${p.rssSecondHalfMinMiB.toFixed(0)}-${p.rssSecondHalfMaxMiB.toFixed(0)}`.padStart(17)} ${p.peakRssMiB.toFixed(0).padStart(9)} ${`${p.heapUsedMinMiB.toFixed(0)}-${p.heapUsedMaxMiB.toFixed(0)}`.padStart(18)}`,
    ),
  ];
  return { bench: 'soak', lines, data };
}
