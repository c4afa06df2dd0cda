// The books of a target whose trading database is PostgreSQL: read through a schema profile
// in one repeatable-read transaction, checked by reading every table (and its indexes with
// amcheck when installed), corrected in one transaction.
import {
  type ActionTaken,
  BOOKS_FORMAT,
  type Books,
  type BooksStore,
  type CorrectionPlan,
  describeOrder,
  LifeboatError,
  parseBooks,
  TARGET_TABLES,
} from '@lifeboat/domain';
import pg from 'pg';
import { parseUrl } from '../database/postgres.js';
import { addDecimal, backfillOrderParams, backfillOrderSql, balanceMoves } from './corrections.js';
import { type BooksProfile, normalizeRows, POSTGRES_BOOKS_PROFILE, RowNormalizer } from './profile.js';

export class PostgresBooksStore implements BooksStore {
  readonly location: string;
  readonly #url: string;
  readonly #password: string | undefined;
  readonly #profile: BooksProfile;
  readonly #custom: boolean;

  constructor(url: string, profile?: BooksProfile) {
    const parsed = parseUrl(url);
    this.#url = url;
    this.#password = parsed.password;
    this.location = parsed.safe;
    this.#profile = profile ?? POSTGRES_BOOKS_PROFILE;
    this.#custom = profile !== undefined;
  }

  async integrity(): Promise<{ ok: boolean; detail: string }> {
    let client: pg.Client;
    try {
      client = await this.#connect();
    } catch (err) {
      return { ok: false, detail: this.#reason(err) };
    }
    try {
      const checked: string[] = [];
      // A full read of every books table touches every heap page: a damaged page fails it.
      for (const table of TARGET_TABLES) {
        const { rows } = await client.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${table}`);
        checked.push(`${table} ${rows[0]?.n ?? '?'} rows`);
      }
      const amcheck = await client.query(`SELECT 1 FROM pg_extension WHERE extname = 'amcheck'`);
      if (amcheck.rowCount) {
        const { rows } = await client.query<{ name: string }>(
          `SELECT c.relname AS name FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
           JOIN pg_class t ON t.oid = i.indrelid JOIN pg_am a ON a.oid = c.relam
           WHERE t.relname = ANY($1) AND a.amname = 'btree' AND t.relnamespace = 'public'::regnamespace`,
          [TARGET_TABLES],
        );
        for (const r of rows) await client.query('SELECT bt_index_check($1::regclass)', [r.name]);
        checked.push(`amcheck: ${rows.length} indexes`);
      }
      return { ok: true, detail: checked.join(', ') };
    } catch (err) {
      return { ok: false, detail: this.#reason(err) };
    } finally {
      await client.end().catch(() => {});
    }
  }

  async newestOrderAt(): Promise<string | null> {
    const client = await this.#connect();
    try {
      const { rows } = await client.query<{ newest: string | null }>(
        `SELECT max(created_at) AS newest FROM (${this.#profile.orders}) q`,
      );
      return rows[0]?.newest ?? null;
    } catch (err) {
      throw new LifeboatError(
        'DATABASE_ERROR',
        `reading the newest order from ${this.location} failed: ${this.#reason(err)}`,
        {
          cause: err,
        },
      );
    } finally {
      await client.end().catch(() => {});
    }
  }

  async read(): Promise<Books> {
    const client = await this.#connect();
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const normalizer = new RowNormalizer();
      const q = async (name: keyof BooksProfile) => {
        try {
          return normalizeRows((await client.query(this.#profile[name])).rows, normalizer);
        } catch (err) {
          throw new LifeboatError(
            'DATABASE_ERROR',
            `reading ${name} from ${this.location} failed: ${this.#reason(err)}`,
            {
              hint: this.#custom
                ? `check the ${name} query of the target's reconcile.profile in lifeboat.yaml`
                : 'is this the trading database of a Sofia-shaped target?',
              retryable: false,
              cause: err,
            },
          );
        }
      };
      const raw = {
        orders: await q('orders'),
        fills: await q('fills'),
        positions: await q('positions'),
        balances: await q('balances'),
      };
      await client.query('COMMIT');
      return parseBooks({ format: BOOKS_FORMAT, collected_at: new Date().toISOString(), ...raw }, this.location);
    } finally {
      await client.end().catch(() => {});
    }
  }

  async apply(plan: CorrectionPlan): Promise<ActionTaken[]> {
    if (this.#custom) {
      throw new LifeboatError(
        'INVALID_REQUEST',
        `--apply needs the default schema; ${this.location} has a custom profile`,
        {
          hint: 'apply the corrections in the trading system itself, then reconcile again',
        },
      );
    }
    const client = await this.#connect();
    try {
      await client.query('BEGIN');
      const now = new Date().toISOString();
      const actions: ActionTaken[] = [];
      for (const o of plan.backfillOrders) {
        const known = await client.query('SELECT 1 FROM orders WHERE client_order_id = $1', [o.client_order_id]);
        if (known.rowCount) continue;
        const inserted = await client.query(
          backfillOrderSql((n) => `$${n}`),
          backfillOrderParams(o),
        );
        if (inserted.rowCount)
          actions.push({ kind: 'backfill_order', key: o.client_order_id, detail: describeOrder(o) });
      }
      for (const f of plan.backfillFills) {
        const { rows } = await client.query<{ id: string; account: string }>(
          'SELECT id, account FROM orders WHERE client_order_id = $1 ORDER BY created_at LIMIT 1',
          [f.client_order_id],
        );
        const order = rows[0];
        if (!order) continue;
        const inserted = await client.query(
          `INSERT INTO fills (trade_id, order_id, client_order_id, symbol, side, quantity, price, fee, fee_asset, timestamp)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (trade_id) DO NOTHING`,
          [
            f.trade_id,
            order.id,
            f.client_order_id,
            f.symbol,
            f.side,
            f.quantity,
            f.price,
            f.fee,
            f.fee_asset,
            f.timestamp,
          ],
        );
        if (!inserted.rowCount) continue;
        for (const [asset, delta] of balanceMoves(f)) {
          const { rows: b } = await client.query<{ total: string }>(
            'SELECT total::text AS total FROM balances WHERE account = $1 AND asset = $2 FOR UPDATE',
            [order.account, asset],
          );
          await client.query(
            `INSERT INTO balances (account, asset, total, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (account, asset) DO UPDATE SET total = excluded.total, updated_at = excluded.updated_at`,
            [order.account, asset, addDecimal(b[0]?.total ?? '0', delta), now],
          );
        }
        actions.push({
          kind: 'backfill_fill',
          key: f.trade_id,
          detail: `${f.symbol} ${f.side} ${f.quantity} @ ${f.price} (fee ${f.fee} ${f.fee_asset}) of ${f.client_order_id}, from the exchange's trade history`,
        });
      }
      for (const u of plan.orderUpdates) {
        const updated = await client.query(
          `UPDATE orders SET status = $1, filled_quantity = $2, exchange_order_id = COALESCE(exchange_order_id, $3),
           updated_at = $4 WHERE client_order_id = $5 AND mode = 'live'`,
          [u.status, u.filled_quantity, u.exchange_order_id, now, u.client_order_id],
        );
        if (updated.rowCount) {
          actions.push({
            kind: 'update_order',
            key: u.client_order_id,
            detail: `status ${u.status}, filled ${u.filled_quantity}: ${u.reason}`,
          });
        }
      }
      for (const p of plan.positions) {
        await client.query(
          `INSERT INTO positions (account, symbol, quantity, avg_entry_price, realized_pnl, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (account, symbol) DO UPDATE SET quantity = excluded.quantity, avg_entry_price = excluded.avg_entry_price,
             realized_pnl = excluded.realized_pnl, updated_at = excluded.updated_at`,
          [p.account, p.symbol, p.quantity, p.avg_entry_price, p.realized_pnl, now],
        );
        actions.push({
          kind: 'rebuild_position',
          key: `${p.account}:${p.symbol}`,
          detail: `quantity ${p.quantity}, average entry ${p.avg_entry_price}, realized P&L ${p.realized_pnl}, rebuilt from the corrected fills`,
        });
      }
      await client.query('COMMIT');
      return actions;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      if (err instanceof LifeboatError) throw err;
      throw new LifeboatError(
        'DATABASE_ERROR',
        `applying corrections to ${this.location} failed: ${this.#reason(err)}`,
        {
          cause: err,
        },
      );
    } finally {
      await client.end().catch(() => {});
    }
  }

  async close(): Promise<void> {}

  async #connect(): Promise<pg.Client> {
    const client = new pg.Client({ connectionString: this.#url, connectionTimeoutMillis: 10_000 });
    try {
      await client.connect();
      return client;
    } catch (err) {
      await client.end().catch(() => {});
      throw new LifeboatError(
        'DATABASE_ERROR',
        `PostgreSQL at ${this.location} could not be reached: ${this.#reason(err)}`,
        {
          cause: err,
        },
      );
    }
  }

  #reason(err: unknown): string {
    const text = err instanceof Error ? err.message : String(err);
    return this.#password ? text.split(this.#password).join('***') : text;
  }
}
