// The books as a `lifeboat.books/v1` file exported by the trading system (docs/FORMAT.md).
// Corrections never rewrite the operator's file: they go to `<name>.corrected.json` beside it.
import { readFile, rename, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import {
  type ActionTaken,
  applyCorrections,
  type Books,
  type BooksStore,
  type CorrectionPlan,
  LifeboatError,
  parseBooks,
} from '@lifeboat/domain';

export class FileBooksStore implements BooksStore {
  readonly location: string;
  #corrected: Books | undefined;

  constructor(file: string) {
    this.location = resolve(file);
  }

  /** Where corrected books are written. */
  get correctedPath(): string {
    return this.location.replace(/(\.json)?$/, '.corrected.json');
  }

  async integrity(): Promise<'not-applicable'> {
    return 'not-applicable';
  }

  async newestOrderAt(): Promise<string | null> {
    let newest: number | null = null;
    for (const o of (await this.read()).orders) {
      const at = Date.parse(o.created_at);
      if (newest === null || at > newest) newest = at;
    }
    return newest === null ? null : new Date(newest).toISOString();
  }

  async read(): Promise<Books> {
    if (this.#corrected) return this.#corrected;
    return parseBooks(await readJson(this.location), this.location);
  }

  async apply(plan: CorrectionPlan): Promise<ActionTaken[]> {
    const { books, actions } = applyCorrections(await this.read(), plan);
    this.#corrected = books;
    const tmp = `${this.correctedPath}.tmp`;
    await writeFile(tmp, `${JSON.stringify(books, null, 1)}\n`);
    await rename(tmp, this.correctedPath);
    return actions;
  }

  async close(): Promise<void> {}
}

/** Reads a JSON file; a missing file or bad JSON is bad input that names the file. */
export async function readJson(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new LifeboatError(
      'INVALID_REQUEST',
      `${file}: cannot be read (${(err as NodeJS.ErrnoException).code ?? err})`,
      {
        hint: 'check the path',
      },
    );
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new LifeboatError('INVALID_REQUEST', `${file}: not valid JSON (${(err as Error).message})`);
  }
}
