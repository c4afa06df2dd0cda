// An exchange snapshot exported by other means, as a `lifeboat.exchange-snapshot/v1` file.
import { resolve } from 'node:path';
import { readJson } from '@lifeboat/adapters';
import type { CollectedSnapshot, ExchangeSnapshot, ExchangeSource } from '@lifeboat/domain';

export class FileExchangeSource implements ExchangeSource {
  readonly location: string;

  constructor(file: string) {
    this.location = resolve(file);
  }

  async collect(): Promise<CollectedSnapshot> {
    // Validated by the caller, which names this file in any error.
    return { snapshot: (await readJson(this.location)) as ExchangeSnapshot, errors: {} };
  }
}
