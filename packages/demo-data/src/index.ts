// Sofia-shaped demo data: a trading target's database, state files, reports, config and
// audit logs of a chosen size, for `lifeboat demo init`, the benchmarks and the tests.
export * from './generate-target.js';
