import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: ['packages/*', 'apps/*', 'infra', 'faults'],
    // Integration tests share PostgreSQL, Redis and an S3 server; each test uses unique
    // database, bucket and queue names, so two files may run at once on two cores.
    maxWorkers: 2,
  },
});
