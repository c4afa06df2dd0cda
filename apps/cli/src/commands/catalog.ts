// `lifeboat catalog sync`: rebuilds distributed mode's PostgreSQL catalog from the store,
// which is the source of truth (after an outage of the catalog, or a restored store).
import { PostgresCatalog } from '@lifeboat/adapters';
import { LifeboatError } from '@lifeboat/domain';
import { type GlobalOptions, openRuntime } from '../context.js';
import { EXIT, printJson } from '../output.js';

export async function catalogSyncCommand(opts: GlobalOptions & { json?: boolean }): Promise<number> {
  const url = process.env.LIFEBOAT_CATALOG_URL;
  if (!url) {
    throw new LifeboatError('INVALID_CONFIG', 'LIFEBOAT_CATALOG_URL is not set: there is no catalog to sync', {
      hint: 'export LIFEBOAT_CATALOG_URL=postgres://user:password@host:5432/lifeboat (embedded mode needs none: the store is the catalog)',
    });
  }
  const runtime = await openRuntime(opts);
  const targets = opts.target ? [runtime.target(opts.target).name] : Object.keys(runtime.loaded.config.targets);
  const catalog = new PostgresCatalog(url);
  const migrations = await catalog.migrate();
  const result = await catalog.sync(runtime.store, targets);
  if (opts.json) printJson({ catalog: catalog.location, targets, migrations, ...result });
  else {
    if (migrations.length) console.log(`catalog ${catalog.location}: applied migration(s) ${migrations.join(', ')}`);
    console.log(
      `catalog ${catalog.location} now matches ${runtime.store.location} for ${targets.join(', ')}: ${result.objects} objects read; ` +
        `${result.rows.backup} backups, ${result.rows.restore} restores, ${result.rows.reconciliation} reconciliations, ` +
        `${result.rows.drill} drills, ${result.rows.audit_events} audit events; ${result.removed} stale rows removed`,
    );
  }
  return EXIT.ok;
}
