// The books of a target whose trading database is a SQLite file: read through a schema
// profile, checked with SQLite's own integrity check, corrected in one transaction.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import {
  type ActionTaken,
  BOOKS_FORMAT,
  type Books,
  type BooksStore,
  type CorrectionPlan,
  describeOrder,
  LifeboatError,
  parseBooks,
} from '@lifeboat/domain';
import Database from 'better-sqlite3';
import { checkSqliteIntegrityAside } from '../database/sqlite.js';
import { addDecimal, backfillOrderParams, backfillOrderSql, balanceMoves } from './corrections.js';
import { type BooksProfile, RowNormalizer, recordReader, SQLITE_BOOKS_PROFILE } from './profile.js';

const BUSY_TIMEOUT_MS = 10_000;

const columnNames = (statement: Database.Statement): string[] => statement.columns().map((c) => c.name);

export class SqliteBooksStore implements BooksStore {
  readonly location: string;
  readonly #profile: BooksProfile;
  readonly #custom: boolean;

  constructor(file: string, profile?: BooksProfile) {
    this.location = resolve(file);
    this.#profile = profile ?? SQLITE_BOOKS_PROFILE;
    this.#custom = profile !== undefined;
  }

  integrity(): Promise<{ ok: boolean; detail: string }> {
    // No await before the worker starts: the read that follows holds this thread for seconds.
    try {
      this.#mustExist();
    } catch (err) {
      return Promise.reject(err);
    }
    return checkSqliteIntegrityAside(this.location);
  }

  async newestOrderAt(): Promise<string | null> {
    this.#mustExist();
    const db = this.#open(true);
    try {
      const row = db.prepare(`SELECT max(created_at) AS newest FROM (${this.#profile.orders}) q`).get() as
        | { newest: string | null }
        | undefined;
      return row?.newest ?? null;
    } finally {
      db.close();
    }
  }

  async read(): Promise<Books> {
    this.#mustExist();
    const db = this.#open(true);
    try {
      // One read transaction: the four queries see the same moment of a live database.
      const raw = db.transaction(() => {
        const normalizer = new RowNormalizer();
        const q = (name: keyof BooksProfile) => {
          try {
            // Row by row: each row is normalized while it is young, before the next is made.
            const rows: Array<Record<string, unknown>> = [];
            const statement = db.prepare(this.#profile[name]);
            const read = statement.reader ? recordReader(name, columnNames(statement), normalizer) : null;
            if (read) {
              for (const values of statement.raw().iterate() as IterableIterator<unknown[]>) rows.push(read(values));
            } else {
              for (const row of statement.iterate() as IterableIterator<Record<string, unknown>>) {
                rows.push(normalizer.row(row));
              }
            }
            return rows;
          } catch (err) {
            throw new LifeboatError(
              'DATABASE_ERROR',
              `reading ${name} from ${this.location} failed: ${err instanceof Error ? err.message : String(err)}`,
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
        return { orders: q('orders'), fills: q('fills'), positions: q('positions'), balances: q('balances') };
      })();
      return parseBooks({ format: BOOKS_FORMAT, collected_at: new Date().toISOString(), ...raw }, this.location);
    } finally {
      db.close();
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
    this.#mustExist();
    const db = this.#open(false);
    try {
      const now = new Date().toISOString();
      const insertOrder = db.prepare(backfillOrderSql(() => '?'));
      const orderOf = db.prepare<[string], { id: string; account: string }>(
        'SELECT id, account FROM orders WHERE client_order_id = ? ORDER BY created_at LIMIT 1',
      );
      const insertFill = db.prepare(
        `INSERT INTO fills (trade_id, order_id, client_order_id, symbol, side, quantity, price, fee, fee_asset, timestamp)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (trade_id) DO NOTHING`,
      );
      const balance = db.prepare<[string, string], { total: string }>(
        'SELECT total FROM balances WHERE account = ? AND asset = ?',
      );
      const upsertBalance = db.prepare(
        `INSERT INTO balances (account, asset, total, updated_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (account, asset) DO UPDATE SET total = excluded.total, updated_at = excluded.updated_at`,
      );
      const updateOrder = db.prepare(
        `UPDATE orders SET status = ?, filled_quantity = ?, exchange_order_id = COALESCE(exchange_order_id, ?),
         updated_at = ? WHERE client_order_id = ? AND mode = 'live'`,
      );
      const upsertPosition = db.prepare(
        `INSERT INTO positions (account, symbol, quantity, avg_entry_price, realized_pnl, updated_at) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (account, symbol) DO UPDATE SET quantity = excluded.quantity, avg_entry_price = excluded.avg_entry_price,
           realized_pnl = excluded.realized_pnl, updated_at = excluded.updated_at`,
      );
      return db.transaction(() => {
        const actions: ActionTaken[] = [];
        for (const o of plan.backfillOrders) {
          if (!orderOf.get(o.client_order_id) && insertOrder.run(...backfillOrderParams(o)).changes) {
            actions.push({ kind: 'backfill_order', key: o.client_order_id, detail: describeOrder(o) });
          }
        }
        for (const f of plan.backfillFills) {
          const order = orderOf.get(f.client_order_id);
          if (!order) continue;
          const inserted = insertFill.run(
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
          ).changes;
          if (!inserted) continue;
          for (const [asset, delta] of balanceMoves(f)) {
            const before = balance.get(order.account, asset)?.total ?? '0';
            upsertBalance.run(order.account, asset, addDecimal(before, delta), now);
          }
          actions.push({
            kind: 'backfill_fill',
            key: f.trade_id,
            detail: `${f.symbol} ${f.side} ${f.quantity} @ ${f.price} (fee ${f.fee} ${f.fee_asset}) of ${f.client_order_id}, from the exchange's trade history`,
          });
        }
        for (const u of plan.orderUpdates) {
          if (updateOrder.run(u.status, u.filled_quantity, u.exchange_order_id, now, u.client_order_id).changes) {
            actions.push({
              kind: 'update_order',
              key: u.client_order_id,
              detail: `status ${u.status}, filled ${u.filled_quantity}: ${u.reason}`,
            });
          }
        }
        for (const p of plan.positions) {
          upsertPosition.run(p.account, p.symbol, p.quantity, p.avg_entry_price, p.realized_pnl, now);
          actions.push({
            kind: 'rebuild_position',
            key: `${p.account}:${p.symbol}`,
            detail: `quantity ${p.quantity}, average entry ${p.avg_entry_price}, realized P&L ${p.realized_pnl}, rebuilt from the corrected fills`,
          });
        }
        return actions;
      })();
    } finally {
      db.close();
    }
  }

  async close(): Promise<void> {}

  #mustExist(): void {
    if (!existsSync(this.location)) {
      throw new LifeboatError('DATABASE_ERROR', `SQLite database ${this.location} not found`, {
        hint: "check the target's database path, or pass --internal <file>",
        retryable: false,
      });
    }
  }

  #open(readonly: boolean): Database.Database {
    try {
      const db = new Database(this.location, { readonly, fileMustExist: true });
      db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      return db;
    } catch (err) {
      throw new LifeboatError(
        'DATABASE_ERROR',
        `SQLite database ${this.location} could not be opened: ${err instanceof Error ? err.message : String(err)}`,
        { cause: err },
      );
    }
  }
}
