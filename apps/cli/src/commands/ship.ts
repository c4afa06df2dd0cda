// `lifeboat ship`: continuous protection in the foreground — the target's SQLite log and
// append-only files shipped every interval until Ctrl-C (or SIGTERM), which ships what is
// left first. `--once` ships one round and exits (a cron fallback, and scripts).
import { startShipping } from '@lifeboat/backup';
import { LifeboatError } from '@lifeboat/domain';
import { cliLogger, type GlobalOptions, openRuntime } from '../context.js';
import { EXIT, formatBytes, printJson } from '../output.js';

export async function shipCommand(
  opts: GlobalOptions & { interval?: string; once?: boolean; json?: boolean },
): Promise<number> {
  const intervalMs = opts.interval === undefined ? undefined : Number(opts.interval);
  if (intervalMs !== undefined && (!Number.isSafeInteger(intervalMs) || intervalMs < 100)) {
    throw new LifeboatError('INVALID_REQUEST', `--interval is in milliseconds, at least 100, not "${opts.interval}"`);
  }
  // Asked to stop while starting (a snapshot can take a while): the first round ships, then it stops.
  let stopAsked: () => void = () => {};
  const stopped = new Promise<void>((resolve) => {
    stopAsked = resolve;
  });
  process.once('SIGINT', () => stopAsked());
  process.once('SIGTERM', () => stopAsked());
  const runtime = await openRuntime(opts);
  const target = runtime.target(opts.target);
  let rounds = 0;
  let lastPrint = 0;
  const shipping = await startShipping({
    runtime,
    target,
    log: cliLogger(),
    ...(intervalMs ? { intervalMs } : {}),
    loop: !opts.once,
    onRound: (s) => {
      rounds++;
      if (opts.json || opts.once || Date.now() - lastPrint < 10_000) return;
      lastPrint = Date.now();
      const lag = s.lagSeconds();
      console.error(
        `ship ${s.target}: ${s.streams.map((x) => `${x.stream} ${x.segments} segments, ${formatBytes(x.bytesShipped)}, lag ${(lag[x.stream] ?? 0).toFixed(1)} s`).join('; ')}`,
      );
    },
  });
  if (!opts.once) {
    if (!opts.json) {
      console.error(
        `shipping ${target.name} to ${runtime.store.location} every ${shipping.intervalMs} ms (${shipping.streams.map((s) => s.stream).join(', ')}); Ctrl-C stops after a last round`,
      );
    }
    await stopped;
    await shipping.stop();
  } else {
    await shipping.stop();
  }
  const result = {
    target: target.name,
    rounds,
    streams: shipping.streams.map((s) => ({
      stream: s.stream,
      generation: s.generation,
      segments: s.segments,
      bytes: s.bytesShipped,
      lastSegmentAt: s.lastSegmentAt?.toISOString() ?? null,
      lagSeconds: shipping.lagSeconds()[s.stream] ?? 0,
    })),
  };
  if (opts.json) printJson(result);
  else
    for (const s of result.streams)
      console.log(
        `${s.stream}: ${s.segments} segments, ${formatBytes(s.bytes)} shipped${s.lastSegmentAt ? `, newest ${s.lastSegmentAt}` : ''}`,
      );
  return EXIT.ok;
}
