// What every fault test shares: how many trials to run (a fixed few inside `npm test`, the
// whole count under `npm run test:faults`), and a record of each fault's trials and outcomes,
// written to test-results/faults/ for faults/report.ts to turn into docs/RELIABILITY.md's table.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '@lifeboat/testkit';

/** `npm run test:faults` sets LIFEBOAT_FAULTS=full; `npm test` runs the quick subset. */
export const FULL = process.env.LIFEBOAT_FAULTS === 'full';

/** The number of trials: `full` under `npm run test:faults`, `quick` inside `npm test`. */
export function trials(full: number, quick: number): number {
  return FULL ? full : quick;
}

export interface FaultRecord {
  /** The table's section: process, service, disk, archive, input, concurrency, secrets. */
  category: string;
  /** The fault, as the table names it. */
  fault: string;
  trials: number;
  /** Outcome → how many trials ended so (e.g. "job retried and completed": 19, "finished before the kill": 1). */
  outcomes: Record<string, number>;
  /** Trials where something was lost or let in: every test asserts this is 0. */
  lost: number;
  /** What was checked after each trial. */
  checked: string;
}

const dir = join(REPO_ROOT, 'test-results', 'faults');

/** Writes one fault's record (one file per fault, so parallel test files never share a file). */
export function record(r: FaultRecord): void {
  mkdirSync(dir, { recursive: true });
  const name = `${r.category}-${r.fault}`
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .slice(0, 120);
  writeFileSync(
    join(dir, `${name}.json`),
    `${JSON.stringify({ ...r, mode: FULL ? 'full' : 'quick', at: new Date().toISOString() }, null, 2)}\n`,
  );
}

/** Counts outcomes as trials run. */
export class Tally {
  readonly outcomes: Record<string, number> = {};
  lost = 0;
  trials = 0;

  add(outcome: string, lost = false): void {
    this.trials += 1;
    this.outcomes[outcome] = (this.outcomes[outcome] ?? 0) + 1;
    if (lost) this.lost += 1;
  }

  record(category: string, fault: string, checked: string): void {
    record({ category, fault, trials: this.trials, outcomes: this.outcomes, lost: this.lost, checked });
  }
}
