// PostgreSQL WAL as the shipper streamed it (`lifeboat ship`, docs/FORMAT.md §10): per
// segment, pieces of the bytes the server had flushed, named by the offset they start at. The
// archive (archive_command) holds whole segments once the server closes them; the stream holds
// the segment being written, a second behind the server. A restore takes a segment from the
// archive when it is there and from the stream otherwise. Loaded by `wal fetch`, so it keeps
// to the light adapters.
import { decodeStreamSegment, type LightRuntime } from '@lifeboat/adapters/light';
import { LifeboatError } from '@lifeboat/domain/errors';
import { compactUtcMs, layout, parseSegmentName } from '@lifeboat/domain/layout';
import { parseWalFileName } from '@lifeboat/domain/wal';

export const PG_STREAM_PIECE_FORMAT = 'lifeboat.postgres-wal-piece/v1';

export interface PgStreamPieceHeader {
  format: typeof PG_STREAM_PIECE_FORMAT;
  /** The segment's file name (timeline and position). */
  segment: string;
  segmentSize: number;
  /** Where the piece's bytes go in the segment. */
  offset: number;
  length: number;
  shippedAt: string;
  /** The server's system identifier, from the segment's first page: one cluster per target. */
  systemIdentifier?: string;
}

export interface StreamedPiece {
  key: string;
  offset: number;
  shippedAt: Date;
  encrypted: boolean;
}

/** A segment's pieces in the store, by offset then time; only those shipped by `shippedBy` when given. */
export async function listStreamedPieces(
  runtime: LightRuntime,
  target: string,
  options: { shippedBy?: Date } = {},
): Promise<Map<string, StreamedPiece[]>> {
  const prefix = layout.streamPostgresPrefix(target);
  const out = new Map<string, StreamedPiece[]>();
  for await (const o of runtime.store.list(prefix)) {
    const [segment, name] = o.key.slice(prefix.length).split('/');
    const parsed = name ? parseSegmentName(name) : null;
    if (!segment || !parsed || parseWalFileName(segment)?.kind !== 'segment') continue;
    if (options.shippedBy && parsed.shippedAt.getTime() > options.shippedBy.getTime()) continue;
    const pieces = out.get(segment) ?? [];
    pieces.push({ key: o.key, offset: parsed.seq, shippedAt: parsed.shippedAt, encrypted: parsed.encrypted });
    out.set(segment, pieces);
  }
  for (const pieces of out.values()) {
    pieces.sort((a, b) => a.offset - b.offset || a.shippedAt.getTime() - b.shippedAt.getTime());
  }
  return out;
}

export interface StreamedSegment {
  name: string;
  /** The whole segment: the streamed bytes from its start, then zeros (as PostgreSQL pads a segment it has not filled). */
  bytes: Buffer;
  /** How many bytes from the start were streamed. */
  covered: number;
  segmentSize: number;
  /** When the newest piece used was shipped. */
  shippedAt: Date;
  pieces: number;
}

/**
 * A segment rebuilt from its streamed pieces, contiguous from byte 0, or null when no piece
 * starts it. Pieces that overlap (two shippers, or one restarted) hold the same bytes where
 * they overlap: the server streams each position once.
 */
export async function readStreamedSegment(
  runtime: LightRuntime,
  target: string,
  name: string,
  options: { shippedBy?: Date; pieces?: StreamedPiece[] } = {},
): Promise<StreamedSegment | null> {
  const pieces =
    options.pieces ??
    (await listPiecesOf(runtime, target, name)).filter(
      (p) => !options.shippedBy || p.shippedAt.getTime() <= options.shippedBy.getTime(),
    );
  if (pieces[0]?.offset !== 0) return null;
  let bytes: Buffer | null = null;
  let covered = 0;
  let segmentSize = 0;
  let shippedAt = new Date(0);
  let used = 0;
  for (const p of pieces) {
    if (p.offset > covered) break;
    const { header, payload } = await decodeStreamSegment(
      await runtime.store.getBytes(p.key),
      p.encrypted,
      () => runtime.identities(),
      `streamed WAL piece ${p.key}`,
    );
    const h = header as unknown as PgStreamPieceHeader;
    if (h.format !== PG_STREAM_PIECE_FORMAT || h.segment !== name || h.offset !== p.offset) {
      throw new LifeboatError('VERIFY_FAILED', `streamed WAL piece ${p.key} does not describe itself as its key does`);
    }
    if (!bytes) {
      segmentSize = h.segmentSize;
      bytes = Buffer.alloc(segmentSize);
    } else if (h.segmentSize !== segmentSize) {
      throw new LifeboatError(
        'VERIFY_FAILED',
        `streamed WAL pieces of ${name} disagree on the segment size (${segmentSize}, ${h.segmentSize})`,
      );
    }
    if (h.offset + payload.length > segmentSize) {
      throw new LifeboatError('VERIFY_FAILED', `streamed WAL piece ${p.key} goes past the end of its segment`);
    }
    payload.copy(bytes, h.offset);
    covered = Math.max(covered, h.offset + payload.length);
    if (p.shippedAt > shippedAt) shippedAt = p.shippedAt;
    used++;
  }
  if (!bytes) return null;
  return { name, bytes, covered, segmentSize, shippedAt, pieces: used };
}

async function listPiecesOf(runtime: LightRuntime, target: string, name: string): Promise<StreamedPiece[]> {
  const prefix = layout.streamPostgresSegmentPrefix(target, name);
  const out: StreamedPiece[] = [];
  for await (const o of runtime.store.list(prefix)) {
    const parsed = parseSegmentName(o.key.slice(prefix.length));
    if (parsed) out.push({ key: o.key, offset: parsed.seq, shippedAt: parsed.shippedAt, encrypted: parsed.encrypted });
  }
  return out.sort((a, b) => a.offset - b.offset || a.shippedAt.getTime() - b.shippedAt.getTime());
}

/** The key of a piece shipped now. */
export function streamPieceKey(runtime: LightRuntime, target: string, segment: string, offset: number, at: Date) {
  return layout.streamPostgresPiece(target, segment, offset, compactUtcMs(at), runtime.recipients.length > 0);
}
