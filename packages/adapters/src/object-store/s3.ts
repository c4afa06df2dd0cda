// An ObjectStore over an S3 bucket (AWS, MinIO, s3rver), with our own multipart upload that
// leaves a marker object while it runs so an abandoned upload can be found and aborted.
//
// A multipart upload of <key> writes `<key>.upload-in-progress.json` = {key, uploadId, startedAt}
// right after CreateMultipartUpload and deletes it after Complete or Abort. Servers that cannot
// list multipart uploads (s3rver) still let cleanupIncomplete find abandoned ones this way.
import {
  AbortMultipartUploadCommand,
  type CompletedPart,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import type { ByteStream, ObjectInfo, ObjectStore, PutOptions } from '@lifeboat/domain';
import { LifeboatError } from '@lifeboat/domain/errors';
import { compareKeys, readChunks, UPLOAD_MARKER_SUFFIX, validateKey, validatePrefix } from './fs.js';

export interface S3ObjectStoreOptions {
  /** Omit for AWS; set for MinIO, s3rver or any S3-compatible server. */
  endpoint?: string;
  region: string;
  bucket: string;
  /** Prepended to every key; '', 'prod' and 'prod/' all work. */
  prefix: string;
  forcePathStyle: boolean;
  /** Omit to use the default AWS credential chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /** Multipart part size; bodies smaller than this go in one PutObject. */
  partSizeBytes: number;
  /** Parts uploaded at once; memory held is about (partConcurrency + 1) × partSizeBytes. Default 3. */
  partConcurrency?: number;
}

/** How long check() waits for the endpoint before calling it unreachable. */
const CHECK_TIMEOUT_MS = 20_000;
const UNREACHABLE_HINT = 'is the endpoint right and the server running?';
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'ECONNABORTED',
]);

interface AwsError extends Error {
  code?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
}

function asAwsError(err: unknown): AwsError {
  return err instanceof Error ? (err as AwsError) : (Object.assign(new Error(String(err)), {}) as AwsError);
}

function statusOf(err: unknown): number | undefined {
  return asAwsError(err).$metadata?.httpStatusCode;
}

function isNetworkFailure(err: unknown): boolean {
  const e = asAwsError(err);
  return (
    (e.code !== undefined && NETWORK_CODES.has(e.code)) ||
    e.name === 'TimeoutError' ||
    // The SDK reports a response it could not read at all with no HTTP status.
    (e.$metadata !== undefined && e.$metadata.httpStatusCode === undefined && e.name !== 'AbortError')
  );
}

function isNotFound(err: unknown): boolean {
  const e = asAwsError(err);
  return e.name === 'NoSuchKey' || e.name === 'NotFound' || (statusOf(err) === 404 && e.name !== 'NoSuchBucket');
}

/** Servers without multipart listing or abort (s3rver answers 405 and 501) are tolerated, not failed. */
function isUnsupported(err: unknown): boolean {
  const e = asAwsError(err);
  const status = statusOf(err);
  return e.name === 'NotImplemented' || e.name === 'MethodNotAllowed' || status === 405 || status === 501;
}

function normalizePrefix(prefix: string): string {
  const trimmed = prefix.replace(/^\/+/, '');
  if (trimmed === '') return '';
  const withSlash = trimmed.endsWith('/') ? trimmed : `${trimmed}/`;
  validatePrefix(withSlash);
  return withSlash;
}

/** The endpoint as shown in messages: never with a user or password, even if the URL had one. */
function endpointLabel(endpoint: string | undefined, region: string): string {
  if (!endpoint) return `AWS ${region}`;
  try {
    const url = new URL(endpoint);
    url.username = '';
    url.password = '';
    return url.toString().replace(/\/$/, '');
  } catch {
    return endpoint;
  }
}

interface UploadMarker {
  key: string;
  uploadId: string;
  startedAt: string;
}

export class S3ObjectStore implements ObjectStore {
  readonly location: string;
  /** The bucket, as configured. */
  readonly bucket: string;
  /** The key prefix inside the bucket: '' or ending with '/'. */
  readonly prefix: string;
  /** The endpoint as named in messages ("http://127.0.0.1:9000" or "AWS eu-west-1"). */
  readonly endpointLabel: string;
  private readonly client: S3Client;
  private readonly partSizeBytes: number;
  private readonly partConcurrency: number;

  constructor(options: S3ObjectStoreOptions) {
    if (!Number.isInteger(options.partSizeBytes) || options.partSizeBytes < 1) {
      throw new LifeboatError('INVALID_CONFIG', `S3 part size ${options.partSizeBytes} is not a positive integer`, {
        hint: 'set store.partSizeMiB between 5 and 512',
      });
    }
    this.bucket = options.bucket;
    this.prefix = normalizePrefix(options.prefix);
    this.endpointLabel = endpointLabel(options.endpoint, options.region);
    this.location = `s3://${this.bucket}/${this.prefix}`;
    this.partSizeBytes = options.partSizeBytes;
    this.partConcurrency = Math.max(1, options.partConcurrency ?? 3);
    this.client = new S3Client({
      region: options.region,
      ...(options.endpoint ? { endpoint: options.endpoint } : {}),
      forcePathStyle: options.forcePathStyle,
      ...(options.credentials ? { credentials: options.credentials } : {}),
      // With the SDK's default checksums, s3rver stores the aws-chunked framing inside the object.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      // Bounded so an unreachable endpoint fails in seconds; socketTimeout is idle time, not a
      // limit on how long a large part may take to send.
      maxAttempts: 3,
      requestHandler: { connectionTimeout: 5_000, socketTimeout: 60_000 },
    });
  }

  async check(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }), {
        abortSignal: AbortSignal.timeout(CHECK_TIMEOUT_MS),
      });
    } catch (err) {
      const e = asAwsError(err);
      if (e.name === 'AbortError' || e.name === 'TimeoutError') {
        throw this.unreachable(`no answer within ${CHECK_TIMEOUT_MS / 1000} s`, err);
      }
      if (statusOf(err) === 404 || e.name === 'NotFound') throw this.noSuchBucket('checking the store', err);
      throw this.toStoreError(err, 'checking the store');
    }
  }

  async put(key: string, body: ByteStream | Uint8Array, options: PutOptions = {}): Promise<{ size: number }> {
    validateKey(key);
    const { signal, onProgress } = options;
    signal?.throwIfAborted();
    const fullKey = this.prefix + key;
    // Aborted when a part fails, too, so a source that is slow to send does not delay the failure.
    const stop = new AbortController();
    const readSignal = signal ? AbortSignal.any([signal, stop.signal]) : stop.signal;
    const parts = fixedSizeParts(readChunks(body, readSignal), this.partSizeBytes)[Symbol.asyncIterator]();
    try {
      const first = await parts.next();
      const firstPart = first.done ? Buffer.alloc(0) : first.value;
      if (firstPart.length < this.partSizeBytes) {
        await this.call(
          `writing ${this.url(fullKey)}`,
          (o) => this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: fullKey, Body: firstPart }), o),
          signal,
        );
        onProgress?.(firstPart.length);
        return { size: firstPart.length };
      }
      return await this.putMultipart(fullKey, firstPart, parts, stop, options);
    } finally {
      await parts.return?.(undefined);
    }
  }

  async get(key: string): Promise<ByteStream> {
    validateKey(key);
    const fullKey = this.prefix + key;
    const res = await this.call(
      `reading ${this.url(fullKey)}`,
      (o) => this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: fullKey }), o),
      undefined,
      fullKey,
    );
    if (!res.Body) throw new LifeboatError('STORE_ERROR', `reading ${this.url(fullKey)}: the server sent no body`);
    // In Node the body is an http.IncomingMessage: a Readable, so an AsyncIterable of Buffers.
    return res.Body as unknown as ByteStream;
  }

  async getBytes(key: string): Promise<Uint8Array> {
    validateKey(key);
    return this.getBytesRaw(this.prefix + key, true);
  }

  async head(key: string): Promise<ObjectInfo | null> {
    validateKey(key);
    const fullKey = this.prefix + key;
    try {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: fullKey }));
      return { key, size: res.ContentLength ?? 0, lastModified: res.LastModified ?? new Date(0) };
    } catch (err) {
      if (isNotFound(err)) return null;
      throw this.toStoreError(err, `reading the size of ${this.url(fullKey)}`);
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    validatePrefix(prefix);
    for await (const object of this.listRaw(this.prefix + prefix)) {
      if (object.key.endsWith(UPLOAD_MARKER_SUFFIX)) continue;
      yield { ...object, key: object.key.slice(this.prefix.length) };
    }
  }

  async delete(key: string): Promise<void> {
    validateKey(key);
    await this.deleteRaw(this.prefix + key);
  }

  async cleanupIncomplete(prefix: string, olderThanMs: number): Promise<string[]> {
    validatePrefix(prefix);
    const cutoff = Date.now() - olderThanMs;
    const removed = new Set<string>();

    // (a) Our own markers: they work on every server, including those that cannot list uploads.
    for await (const object of this.listRaw(this.prefix + prefix)) {
      if (!object.key.endsWith(UPLOAD_MARKER_SUFFIX)) continue;
      const fullKey = object.key.slice(0, -UPLOAD_MARKER_SUFFIX.length);
      const key = fullKey.slice(this.prefix.length);
      if (!key.startsWith(prefix)) continue;
      const marker = await this.readMarker(object.key);
      if (marker === 'gone') continue; // its upload finished or was cleaned up meanwhile
      const startedAt = marker ? Date.parse(marker.startedAt) : Number.NaN;
      const started = Number.isNaN(startedAt) ? object.lastModified.getTime() : startedAt;
      if (started > cutoff) continue;
      if (marker?.uploadId) await this.abortUpload(fullKey, marker.uploadId);
      await this.deleteRaw(object.key);
      removed.add(key);
    }

    // (b) Uploads the server lists, such as ones that crashed before writing their marker.
    try {
      let keyMarker: string | undefined;
      let uploadIdMarker: string | undefined;
      do {
        const page = await this.client.send(
          new ListMultipartUploadsCommand({
            Bucket: this.bucket,
            Prefix: this.prefix + prefix,
            KeyMarker: keyMarker,
            UploadIdMarker: uploadIdMarker,
          }),
        );
        for (const upload of page.Uploads ?? []) {
          if (!upload.Key || !upload.UploadId) continue;
          if ((upload.Initiated?.getTime() ?? 0) > cutoff) continue;
          await this.abortUpload(upload.Key, upload.UploadId);
          removed.add(upload.Key.slice(this.prefix.length));
        }
        keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
        uploadIdMarker = page.IsTruncated ? page.NextUploadIdMarker : undefined;
      } while (keyMarker);
    } catch (err) {
      if (!isUnsupported(err))
        throw this.toStoreError(err, `listing incomplete uploads under ${this.url(this.prefix + prefix)}`);
    }
    return [...removed].sort(compareKeys);
  }

  /** Releases the client's sockets; the store is unusable afterwards. */
  destroy(): void {
    this.client.destroy();
  }

  private async putMultipart(
    fullKey: string,
    firstPart: Buffer,
    rest: AsyncIterator<Buffer>,
    stop: AbortController,
    { signal, onProgress }: PutOptions,
  ): Promise<{ size: number }> {
    const target = this.url(fullKey);
    const created = await this.call(
      `starting the upload of ${target}`,
      (o) => this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: fullKey }), o),
      signal,
    );
    const uploadId = created.UploadId;
    if (!uploadId)
      throw new LifeboatError('STORE_ERROR', `starting the upload of ${target}: the server sent no upload id`);
    const markerKey = fullKey + UPLOAD_MARKER_SUFFIX;
    // Stops sibling parts and the reading when one part fails, and everything when the caller aborts.
    const partSignal = signal ? AbortSignal.any([signal, stop.signal]) : stop.signal;
    const completed: CompletedPart[] = [];
    const inFlight = new Set<Promise<void>>();
    let failure: { error: unknown } | undefined;
    let uploaded = 0;
    let partNumber = 0;

    const upload = (part: Buffer) => {
      const number = ++partNumber;
      const task = this.call(
        `uploading part ${number} of ${target}`,
        (o) =>
          this.client.send(
            new UploadPartCommand({
              Bucket: this.bucket,
              Key: fullKey,
              UploadId: uploadId,
              PartNumber: number,
              Body: part,
            }),
            o,
          ),
        partSignal,
      ).then(
        (res) => {
          completed.push({ PartNumber: number, ETag: res.ETag });
          uploaded += part.length;
          onProgress?.(uploaded);
        },
        (error: unknown) => {
          // Parts cut short by our own stop are not the cause of anything.
          if (!stop.signal.aborted) failure ??= { error };
          stop.abort();
        },
      );
      inFlight.add(task);
      void task.finally(() => inFlight.delete(task));
    };

    try {
      const marker: UploadMarker = { key: fullKey, uploadId, startedAt: new Date().toISOString() };
      await this.call(
        `writing the upload marker of ${target}`,
        (o) =>
          this.client.send(
            new PutObjectCommand({
              Bucket: this.bucket,
              Key: markerKey,
              Body: Buffer.from(JSON.stringify(marker)),
              ContentType: 'application/json',
            }),
            o,
          ),
        signal,
      );
      upload(firstPart);
      while (!failure) {
        if (inFlight.size >= this.partConcurrency) {
          await Promise.race(inFlight);
          continue;
        }
        const next = await rest.next();
        if (next.done) break;
        upload(next.value);
      }
      await Promise.all(inFlight);
      if (failure) throw failure.error;
      completed.sort((a, b) => (a.PartNumber ?? 0) - (b.PartNumber ?? 0));
      await this.call(
        `completing the upload of ${target}`,
        (o) =>
          this.client.send(
            new CompleteMultipartUploadCommand({
              Bucket: this.bucket,
              Key: fullKey,
              UploadId: uploadId,
              MultipartUpload: { Parts: completed },
            }),
            o,
          ),
        signal,
      );
    } catch (err) {
      stop.abort();
      // Parts still in flight would outlive an abort issued now; wait for them first.
      await Promise.allSettled(inFlight);
      await this.abortUpload(fullKey, uploadId).catch(() => {});
      await this.deleteRaw(markerKey).catch(() => {});
      if (signal?.aborted) throw signal.reason;
      // Once a part failed, the abort it caused in the reading is not the story: the part is.
      throw failure ? failure.error : err;
    }
    // The object is complete; a marker left by a failed delete is removed by cleanupIncomplete.
    await this.deleteRaw(markerKey).catch(() => {});
    return { size: uploaded };
  }

  /**
   * Runs one S3 request, turning its failure into a LifeboatError that names the step; a
   * caller's abort surfaces as the abort reason. notFoundKey makes a 404 a NOT_FOUND for it.
   */
  private async call<T>(
    step: string,
    request: (options: { abortSignal?: AbortSignal }) => Promise<T>,
    signal?: AbortSignal,
    notFoundKey?: string,
  ): Promise<T> {
    try {
      return await request(signal ? { abortSignal: signal } : {});
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      throw this.toStoreError(err, step, notFoundKey);
    }
  }

  private async *listRaw(fullPrefix: string): AsyncGenerator<ObjectInfo> {
    // ListObjects (v1) with Marker, not v2: s3rver's v2 continuation tokens use DES, which
    // OpenSSL 3 lacks, so any truncated v2 page fails there with a 500.
    let marker: string | undefined;
    do {
      const page = await this.call(`listing ${this.url(fullPrefix)}`, (o) =>
        this.client.send(new ListObjectsCommand({ Bucket: this.bucket, Prefix: fullPrefix, Marker: marker }), o),
      );
      const objects: ObjectInfo[] = [];
      for (const item of page.Contents ?? []) {
        if (!item.Key?.startsWith(fullPrefix)) continue;
        objects.push({ key: item.Key, size: item.Size ?? 0, lastModified: item.LastModified ?? new Date(0) });
      }
      // S3 and MinIO already answer in key order; s3rver answers in directory-walk order.
      objects.sort((a, b) => compareKeys(a.key, b.key));
      yield* objects;
      marker = page.IsTruncated ? objects.at(-1)?.key : undefined;
    } while (marker);
  }

  private async getBytesRaw(fullKey: string, missingIsNotFound = false): Promise<Uint8Array> {
    const step = `reading ${this.url(fullKey)}`;
    const res = await this.call(
      step,
      (o) => this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: fullKey }), o),
      undefined,
      missingIsNotFound ? fullKey : undefined,
    );
    if (!res.Body) throw new LifeboatError('STORE_ERROR', `${step}: the server sent no body`);
    try {
      return await res.Body.transformToByteArray();
    } catch (err) {
      throw this.toStoreError(err, step);
    }
  }

  private async deleteRaw(fullKey: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: fullKey }));
    } catch (err) {
      if (isNotFound(err)) return;
      throw this.toStoreError(err, `deleting ${this.url(fullKey)}`);
    }
  }

  private async abortUpload(fullKey: string, uploadId: string): Promise<void> {
    try {
      await this.client.send(
        new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: fullKey, UploadId: uploadId }),
      );
    } catch (err) {
      // Already gone (completed or aborted) or a server that cannot abort: nothing more to do here.
      if (asAwsError(err).name === 'NoSuchUpload' || isNotFound(err) || isUnsupported(err)) return;
      throw this.toStoreError(err, `aborting the upload of ${this.url(fullKey)}`);
    }
  }

  /** The marker's content; undefined when it is not ours to read (not JSON), 'gone' when it vanished. */
  private async readMarker(markerKey: string): Promise<UploadMarker | undefined | 'gone'> {
    try {
      const bytes = await this.getBytesRaw(markerKey, true);
      const parsed = JSON.parse(Buffer.from(bytes).toString('utf8')) as Partial<UploadMarker>;
      return typeof parsed.uploadId === 'string' && typeof parsed.startedAt === 'string'
        ? { key: String(parsed.key), uploadId: parsed.uploadId, startedAt: parsed.startedAt }
        : undefined;
    } catch (err) {
      // A marker that is unreadable as JSON is still a leftover; one we cannot fetch is a real failure.
      if (err instanceof SyntaxError) return undefined;
      if (err instanceof LifeboatError && err.code === 'NOT_FOUND') return 'gone';
      throw err;
    }
  }

  private url(fullKey: string): string {
    return `s3://${this.bucket}/${fullKey}`;
  }

  private unreachable(cause: string, err: unknown): LifeboatError {
    return new LifeboatError(
      'STORE_UNREACHABLE',
      `S3 endpoint ${this.endpointLabel} bucket ${this.bucket} unreachable: ${cause}`,
      { hint: UNREACHABLE_HINT, cause: err },
    );
  }

  private noSuchBucket(step: string, err: unknown): LifeboatError {
    return new LifeboatError('STORE_ERROR', `${step}: bucket ${this.bucket} does not exist at ${this.endpointLabel}`, {
      hint: 'create the bucket, or fix store.bucket and store.endpoint',
      cause: err,
      retryable: false,
    });
  }

  private toStoreError(err: unknown, step: string, notFoundKey?: string): LifeboatError {
    if (err instanceof LifeboatError) return err;
    const e = asAwsError(err);
    if (isNetworkFailure(err)) {
      const cause = e.code && !e.message.includes(e.code) ? `${e.code} ${e.message}` : e.message;
      return this.unreachable(cause || e.name, err);
    }
    if (e.name === 'NoSuchBucket') return this.noSuchBucket(step, err);
    if (notFoundKey !== undefined && isNotFound(err)) {
      return new LifeboatError('NOT_FOUND', `object ${this.url(notFoundKey)} not found`, {
        hint: 'is the key right? list the store to see what it holds',
        cause: err,
      });
    }
    const status = statusOf(err);
    if (
      status === 403 ||
      e.name === 'AccessDenied' ||
      e.name === 'InvalidAccessKeyId' ||
      e.name === 'SignatureDoesNotMatch'
    ) {
      return new LifeboatError('STORE_ERROR', `${step}: ${this.endpointLabel} refused access (${e.name})`, {
        hint: `check the credentials and that they may use bucket ${this.bucket}`,
        cause: err,
        retryable: false,
      });
    }
    const detail = e.message && e.message !== 'UnknownError' ? `${e.name}: ${e.message}` : e.name;
    return new LifeboatError('STORE_ERROR', `${step}: ${detail}${status ? ` (HTTP ${status})` : ''}`, {
      hint: `see what ${this.endpointLabel} says about it`,
      cause: err,
    });
  }
}

/**
 * Cuts a stream of chunks into parts of exactly partSize bytes (the last may be shorter),
 * copying each chunk once; equal parts suit every S3 server, some of which require them.
 */
async function* fixedSizeParts(chunks: AsyncIterable<Uint8Array>, partSize: number): AsyncGenerator<Buffer> {
  let part = Buffer.allocUnsafe(partSize);
  let filled = 0;
  for await (const chunk of chunks) {
    let offset = 0;
    while (offset < chunk.byteLength) {
      const n = Math.min(partSize - filled, chunk.byteLength - offset);
      part.set(chunk.subarray(offset, offset + n), filled);
      filled += n;
      offset += n;
      if (filled === partSize) {
        yield part;
        part = Buffer.allocUnsafe(partSize);
        filled = 0;
      }
    }
  }
  if (filled > 0) yield part.subarray(0, filled);
}
