// The demo-data generator, re-exported for tests and benchmarks that take it from the testkit.
export * from '@lifeboat/demo-data';
