// Prints docs/RELIABILITY.md's table from the records the fault suite wrote to
// test-results/faults/ (run by `npm run test:faults` after the suite).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

interface Row {
  category: string;
  fault: string;
  trials: number;
  outcomes: Record<string, number>;
  lost: number;
  checked: string;
  mode: string;
}

const ORDER = ['process', 'service', 'disk', 'archive', 'input', 'concurrency', 'secrets'];
const dir = join(import.meta.dirname, '..', 'test-results', 'faults');
let files: string[] = [];
try {
  files = readdirSync(dir).filter((f) => f.endsWith('.json'));
} catch {
  console.error(`no fault records in ${dir}: run the suite first (npm run test:faults)`);
  process.exit(1);
}
const rows = files
  .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as Row)
  .sort((a, b) => ORDER.indexOf(a.category) - ORDER.indexOf(b.category) || a.fault.localeCompare(b.fault));
const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
console.log('| category | fault | trials | outcomes | lost or let in | checked after each trial |');
console.log('|---|---|---|---|---|---|');
for (const r of rows) {
  const outcomes = Object.entries(r.outcomes)
    .map(([o, n]) => `${n}× ${o}`)
    .join('; ');
  console.log(
    `| ${r.category} | ${cell(r.fault)} | ${r.trials} | ${cell(outcomes)} | ${r.lost} | ${cell(r.checked)} |`,
  );
}
const lost = rows.reduce((n, r) => n + r.lost, 0);
console.log(
  `\n${rows.length} faults, ${rows.reduce((n, r) => n + r.trials, 0)} trials, ${lost} with anything lost or let in (${rows.every((r) => r.mode === 'full') ? 'full suite' : 'some from the quick subset'}).`,
);
process.exit(lost === 0 ? 0 : 1);
