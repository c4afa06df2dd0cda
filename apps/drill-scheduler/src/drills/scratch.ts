// Dropping the scratch PostgreSQL database of a sandbox restore once the drill has measured it.
import pg from 'pg';

/** Drops a sandbox's database (only names a sandbox restore makes: `<db>_sandbox_<stamp>`, cut to 63 characters). */
export async function dropScratchDatabase(url: string): Promise<void> {
  const parsed = new URL(url);
  const name = decodeURIComponent(parsed.pathname.slice(1));
  if (!name.includes('_sandbox_')) throw new Error(`${name} is not a sandbox's database: not dropped`);
  parsed.pathname = '/postgres';
  const client = new pg.Client({ connectionString: parsed.toString(), connectionTimeoutMillis: 10_000 });
  client.on('error', () => {});
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS "${name.replace(/"/g, '""')}" WITH (FORCE)`);
  } finally {
    await client.end().catch(() => {});
  }
}
