// Settings every workspace's test project shares: resolve workspace packages to their
// TypeScript sources (the "source" export condition) so tests never run stale builds.
import { basename } from 'node:path';

export function sharedProject(dir: string) {
  return {
    resolve: { conditions: ['source'] },
    ssr: { resolve: { conditions: ['source'] } },
    test: {
      name: basename(dir),
      root: dir,
      include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
      testTimeout: 60_000,
      hookTimeout: 120_000,
      globalSetup: [],
    },
  };
}
