// Port: where backups are kept (a directory, an S3 bucket). Keys are relative to the
// store's own prefix and use forward slashes.

/** A stream of bytes; a Node Readable is one. */
export type ByteStream = AsyncIterable<Uint8Array>;

export interface ObjectInfo {
  key: string;
  size: number;
  lastModified: Date;
}

export interface PutOptions {
  /** Called with the running count of bytes written. */
  onProgress?: (bytesWritten: number) => void;
  /** Aborting stops the write and removes what was written of it. */
  signal?: AbortSignal;
}

export interface ObjectStore {
  /** Where the store is, for messages and logs; never carries credentials. */
  readonly location: string;
  /** Checks that the store answers; fails with STORE_UNREACHABLE naming the endpoint. */
  check(): Promise<void>;
  /** Writes an object; it becomes visible only once complete, never half-written. */
  put(key: string, body: ByteStream | Uint8Array, options?: PutOptions): Promise<{ size: number }>;
  /** Opens an object for reading; NOT_FOUND when it does not exist. */
  get(key: string): Promise<ByteStream>;
  /** Reads a small object whole (manifests, records); NOT_FOUND when it does not exist. */
  getBytes(key: string): Promise<Uint8Array>;
  /** Size and time of an object, or null when it does not exist. */
  head(key: string): Promise<ObjectInfo | null>;
  /** Every object whose key starts with prefix, in key order. */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  /** Deletes an object; a missing one is not an error. */
  delete(key: string): Promise<void>;
  /** Removes writes under prefix that began over olderThanMs ago and never completed; returns what it removed. */
  cleanupIncomplete(prefix: string, olderThanMs: number): Promise<string[]>;
}
