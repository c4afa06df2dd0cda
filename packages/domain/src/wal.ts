// PostgreSQL's write-ahead log as a chain of named files: segment names and their arithmetic,
// log sequence numbers, timeline history, and which archived segments a recovery can replay
// from a base backup before it runs out. Pure: the store is read elsewhere.

// Base backup manifests are sealed as backup manifests are; `wal push` loads only this module.
export { manifestSealProblem, sealManifest } from './schemas/seal.js';
export * from './schemas/wal.js';

/** PostgreSQL's default segment size (`initdb --wal-segsize` changes it: 1 MiB to 1 GiB, a power of two). */
export const DEFAULT_WAL_SEGMENT_SIZE = 16 * 1024 * 1024;

/** What PostgreSQL hands archive_command: a segment, a timeline history file, a backup history file, a partial segment. */
export type WalFileKind = 'segment' | 'history' | 'backup' | 'partial';

export interface WalFileName {
  name: string;
  kind: WalFileKind;
  timeline: number;
  /** The two halves of a segment's position (`XXXXXXXX` and `YYYYYYYY`); absent for history files. */
  log?: number;
  seg?: number;
}

const SEGMENT = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$/;
const PARTIAL = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})\.partial$/;
const BACKUP = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})\.[0-9A-F]{8}\.backup$/;
const HISTORY = /^([0-9A-F]{8})\.history$/;

/** Parses a file name PostgreSQL archives, or returns null for any other name. */
export function parseWalFileName(name: string): WalFileName | null {
  const history = HISTORY.exec(name);
  if (history) {
    const timeline = Number.parseInt(history[1] as string, 16);
    return timeline > 0 ? { name, kind: 'history', timeline } : null;
  }
  for (const [kind, re] of [
    ['segment', SEGMENT],
    ['partial', PARTIAL],
    ['backup', BACKUP],
  ] as const) {
    const m = re.exec(name);
    if (!m) continue;
    const timeline = Number.parseInt(m[1] as string, 16);
    if (timeline === 0) return null;
    return {
      name,
      kind,
      timeline,
      log: Number.parseInt(m[2] as string, 16),
      seg: Number.parseInt(m[3] as string, 16),
    };
  }
  return null;
}

/** Checks a segment size: a power of two from 1 MiB to 1 GiB, as initdb allows. */
export function isValidSegmentSize(bytes: number): boolean {
  return Number.isInteger(bytes) && bytes >= 1 << 20 && bytes <= 1 << 30 && (bytes & (bytes - 1)) === 0;
}

/** Segments per `XXXXXXXX` log: 256 for 16 MiB segments, 4096 for 1 MiB ones. */
export function segmentsPerLog(segmentSize: number): number {
  return 0x1_0000_0000 / segmentSize;
}

/** The segment number (its position counted from zero) of a parsed segment name. */
export function segmentNumber(file: Pick<WalFileName, 'log' | 'seg' | 'name'>, segmentSize: number): number {
  if (file.log === undefined || file.seg === undefined) throw new Error(`${file.name} is not a WAL segment`);
  const perLog = segmentsPerLog(segmentSize);
  if (file.seg >= perLog) {
    throw new Error(`${file.name} cannot be a segment of ${segmentSize} bytes (at most ${perLog} per log)`);
  }
  return file.log * perLog + file.seg;
}

/** The file name of segment `segno` on `timeline` (PostgreSQL's XLogFileName). */
export function walSegmentName(timeline: number, segno: number, segmentSize: number): string {
  const perLog = segmentsPerLog(segmentSize);
  const hex = (n: number) => n.toString(16).toUpperCase().padStart(8, '0');
  return `${hex(timeline)}${hex(Math.floor(segno / perLog))}${hex(segno % perLog)}`;
}

/** A log sequence number (`16/B374D848`) as a byte position. Positions past 2^53 are refused. */
export function parseLsn(lsn: string): number {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(lsn.trim());
  if (!m) throw new Error(`"${lsn}" is not a log sequence number (like 0/3000028)`);
  const value = Number.parseInt(m[1] as string, 16) * 0x1_0000_0000 + Number.parseInt(m[2] as string, 16);
  if (!Number.isSafeInteger(value)) throw new Error(`log sequence number ${lsn} is beyond what Lifeboat handles`);
  return value;
}

export function formatLsn(position: number): string {
  const hi = Math.floor(position / 0x1_0000_0000);
  const lo = position % 0x1_0000_0000;
  return `${hi.toString(16).toUpperCase()}/${lo.toString(16).toUpperCase()}`;
}

/** The segment holding the byte at `position` (XLByteToSeg): where a base backup starts. */
export function segmentOf(position: number, segmentSize: number): number {
  return Math.floor(position / segmentSize);
}

/**
 * The segment holding the byte just before `position` (XLByteToPrevSeg): the last segment a
 * recovery must read to reach an end position, which may sit exactly on a segment boundary.
 */
export function segmentBefore(position: number, segmentSize: number): number {
  return Math.floor((position - 1) / segmentSize);
}

/** One line of a timeline history file: `parent` was followed until `switchLsn`, where the next timeline began. */
export interface TimelineSwitch {
  parent: number;
  switchLsn: number;
}

/**
 * Parses `<timeline>.history`: one line per ancestor, oldest first
 * (`1<TAB>0/3000158<TAB>no recovery target specified`); `#` comments and blank lines ignored.
 */
export function parseTimelineHistory(text: string): TimelineSwitch[] {
  const out: TimelineSwitch[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const [tli, lsn] = line.split(/\s+/);
    const parent = Number(tli);
    if (!Number.isInteger(parent) || parent <= 0 || !lsn) throw new Error(`timeline history line "${line}" is invalid`);
    out.push({ parent, switchLsn: parseLsn(lsn) });
  }
  return out;
}

/** What the archive holds, by name: segment numbers per timeline, and the history of each timeline that has one. */
export interface WalArchiveIndex {
  segmentSize: number;
  segments: ReadonlyMap<number, ReadonlySet<number>>;
  histories: ReadonlyMap<number, readonly TimelineSwitch[]>;
}

export interface SegmentRef {
  timeline: number;
  segno: number;
  name: string;
}

export interface WalGap {
  timeline: number;
  /** First and last missing segment names (equal for a single one). */
  from: string;
  to: string;
  missing: number;
}

/** Runs of missing segments between the first and the last archived segment of each timeline. */
export function timelineGaps(index: WalArchiveIndex): WalGap[] {
  const gaps: WalGap[] = [];
  for (const timeline of [...index.segments.keys()].sort((a, b) => a - b)) {
    const segnos = [...(index.segments.get(timeline) ?? [])].sort((a, b) => a - b);
    for (let i = 1; i < segnos.length; i++) {
      const prev = segnos[i - 1] as number;
      const next = segnos[i] as number;
      if (next - prev > 1) {
        gaps.push({
          timeline,
          from: walSegmentName(timeline, prev + 1, index.segmentSize),
          to: walSegmentName(timeline, next - 1, index.segmentSize),
          missing: next - prev - 1,
        });
      }
    }
  }
  return gaps;
}

/** The timeline a recovery ends on with recovery_target_timeline = latest: the newest that descends from `start`. */
export function latestTimelineFrom(index: WalArchiveIndex, start: number): number {
  let best = start;
  for (const [timeline, history] of index.histories) {
    if (timeline > best && history.some((h) => h.parent === start)) best = timeline;
  }
  return best;
}

interface TimelineSpan {
  timeline: number;
  /** First segment read from this timeline (the switch segment, copied onto the new timeline). */
  fromSegno: number;
  /** Last segment read from it, or Infinity for the target timeline. */
  toSegno: number;
}

/** The timelines a recovery reads from `start` to `target`, each with the segments it is valid for. */
function timelineSpans(index: WalArchiveIndex, start: number, target: number): TimelineSpan[] {
  if (target === start) return [{ timeline: start, fromSegno: 0, toSegno: Number.POSITIVE_INFINITY }];
  const history = index.histories.get(target) ?? [];
  const at = history.findIndex((h) => h.parent === start);
  if (at < 0) return [{ timeline: start, fromSegno: 0, toSegno: Number.POSITIVE_INFINITY }];
  const spans: TimelineSpan[] = [];
  let from = 0;
  for (let i = at; i < history.length; i++) {
    const step = history[i] as TimelineSwitch;
    // The segment holding the switch point is read from the next timeline, which has a copy of it.
    const switchSeg = segmentOf(step.switchLsn, index.segmentSize);
    spans.push({ timeline: step.parent, fromSegno: from, toSegno: switchSeg - 1 });
    from = switchSeg;
  }
  spans.push({ timeline: target, fromSegno: from, toSegno: Number.POSITIVE_INFINITY });
  return spans;
}

export interface WalChain {
  /** The timeline the recovery ends on. */
  targetTimeline: number;
  /** The segments a recovery from the start reads, in order, up to the first missing one. */
  reachable: SegmentRef[];
  /** The last of them; null when even the first is missing. */
  last: SegmentRef | null;
  /** The first segment the recovery would need and the archive lacks. */
  firstMissing: SegmentRef;
  /** Archived segments past `firstMissing` on the recovery's timelines: WAL the recovery cannot reach (a gap). */
  unreachable: number;
  /** The first of those, where the archive resumes after the gap. */
  nextArchived: SegmentRef | null;
  /** The newest archived segment on the recovery's timelines, reachable or not. */
  newest: SegmentRef | null;
}

/**
 * Follows the archive from segment `startSegno` of timeline `startTimeline` as a recovery with
 * restore_command would: segment after segment, switching timelines where the target
 * timeline's history says, until one is missing.
 */
export function followChain(
  index: WalArchiveIndex,
  startTimeline: number,
  startSegno: number,
  targetTimeline = latestTimelineFrom(index, startTimeline),
): WalChain {
  const spans = timelineSpans(index, startTimeline, targetTimeline);
  const spanFor = (segno: number) => spans.find((s) => segno >= s.fromSegno && segno <= s.toSegno) as TimelineSpan;
  const ref = (timeline: number, segno: number): SegmentRef => ({
    timeline,
    segno,
    name: walSegmentName(timeline, segno, index.segmentSize),
  });
  let segno = startSegno;
  const reachable: SegmentRef[] = [];
  for (;;) {
    const { timeline } = spanFor(segno);
    if (!index.segments.get(timeline)?.has(segno)) break;
    reachable.push(ref(timeline, segno));
    segno++;
  }
  const last = reachable.at(-1) ?? null;
  const firstMissing = ref(spanFor(segno).timeline, segno);
  let unreachable = 0;
  let nextArchived: SegmentRef | null = null;
  let newest: SegmentRef | null = last;
  for (const span of spans) {
    for (const s of index.segments.get(span.timeline) ?? []) {
      if (s < span.fromSegno || s > span.toSegno || s < startSegno) continue;
      if (s > segno) {
        unreachable++;
        if (!nextArchived || s < nextArchived.segno) nextArchived = ref(span.timeline, s);
      }
      if (!newest || s > newest.segno) newest = ref(span.timeline, s);
    }
  }
  return { targetTimeline, reachable, last, firstMissing, unreachable, nextArchived, newest };
}

/** A base backup id: its start time, compact UTC, and random hex (`20251125T020000Z-base-3f9a`). */
export function makeBaseBackupId(compactStart: string, suffix: string): string {
  if (!/^\d{8}T\d{6}Z$/.test(compactStart)) throw new Error(`"${compactStart}" is not a compact UTC time`);
  if (!/^[0-9a-f]{4,12}$/.test(suffix))
    throw new Error(`base backup id suffix must be 4-12 hex digits, got "${suffix}"`);
  return `${compactStart}-base-${suffix}`;
}

export function isBaseBackupId(value: string): boolean {
  return /^\d{8}T\d{6}Z-base-[0-9a-f]{4,12}$/.test(value);
}
