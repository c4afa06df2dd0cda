import { describe, expect, it } from 'vitest';
import {
  followChain,
  formatLsn,
  parseLsn,
  parseTimelineHistory,
  parseWalFileName,
  segmentBefore,
  segmentNumber,
  segmentOf,
  timelineGaps,
  type WalArchiveIndex,
  walSegmentName,
} from './wal.js';

const MiB16 = 16 * 1024 * 1024;

function index(
  segments: Record<number, number[]>,
  histories: Record<number, string> = {},
  size = MiB16,
): WalArchiveIndex {
  return {
    segmentSize: size,
    segments: new Map(Object.entries(segments).map(([t, s]) => [Number(t), new Set(s)])),
    histories: new Map(Object.entries(histories).map(([t, text]) => [Number(t), parseTimelineHistory(text)])),
  };
}

describe('WAL file names', () => {
  it('parses the four kinds PostgreSQL archives and nothing else', () => {
    expect(parseWalFileName('000000010000000A000000FF')).toMatchObject({
      kind: 'segment',
      timeline: 1,
      log: 10,
      seg: 255,
    });
    expect(parseWalFileName('00000002.history')).toMatchObject({ kind: 'history', timeline: 2 });
    expect(parseWalFileName('000000010000000000000003.00000028.backup')).toMatchObject({ kind: 'backup', seg: 3 });
    expect(parseWalFileName('000000010000000000000003.partial')).toMatchObject({ kind: 'partial' });
    for (const bad of ['00000000000000000000001', '000000010000000000000003.gz', 'x', '00000000.history', '../x']) {
      expect(parseWalFileName(bad)).toBeNull();
    }
  });

  it('counts 256 segments per log at 16 MiB and 4096 at 1 MiB', () => {
    const name = parseWalFileName('00000001000000020000000F');
    expect(name && segmentNumber(name, MiB16)).toBe(2 * 256 + 15);
    expect(name && segmentNumber(name, 1 << 20)).toBe(2 * 4096 + 15);
    expect(walSegmentName(1, 2 * 256 + 15, MiB16)).toBe('00000001000000020000000F');
    expect(walSegmentName(3, 256, MiB16)).toBe('000000030000000100000000');
    const tooFar = parseWalFileName('000000010000000000000100');
    expect(() => tooFar && segmentNumber(tooFar, MiB16)).toThrow(/at most 256 per log/);
  });

  it('maps log sequence numbers to segments, the end of a range to the segment before a boundary', () => {
    expect(parseLsn('0/3000028')).toBe(0x3000028);
    expect(parseLsn('16/B374D848')).toBe(0x16 * 2 ** 32 + 0xb374d848);
    expect(formatLsn(parseLsn('16/B374D848'))).toBe('16/B374D848');
    expect(segmentOf(parseLsn('0/3000028'), MiB16)).toBe(3);
    expect(segmentBefore(parseLsn('0/4000000'), MiB16)).toBe(3);
    expect(segmentBefore(parseLsn('0/4000001'), MiB16)).toBe(4);
    expect(() => parseLsn('3000028')).toThrow(/not a log sequence number/);
  });
});

describe('the WAL chain', () => {
  it('finds the gaps of each timeline', () => {
    expect(timelineGaps(index({ 1: [1, 2, 3, 6, 8], 2: [4, 5] }))).toEqual([
      { timeline: 1, from: '000000010000000000000004', to: '000000010000000000000005', missing: 2 },
      { timeline: 1, from: '000000010000000000000007', to: '000000010000000000000007', missing: 1 },
    ]);
  });

  it('follows one timeline to its first missing segment and counts what lies beyond', () => {
    const chain = followChain(index({ 1: [2, 3, 4, 6, 7] }), 1, 2);
    expect(chain.last?.name).toBe('000000010000000000000004');
    expect(chain.firstMissing.name).toBe('000000010000000000000005');
    expect(chain.unreachable).toBe(2);
    expect(chain.nextArchived?.name).toBe('000000010000000000000006');
    expect(chain.newest?.name).toBe('000000010000000000000007');
  });

  it('switches to the newest timeline at the segment holding the switch point', () => {
    // Timeline 2 branched off timeline 1 inside segment 5; timeline 1 went on to 7 (not followed).
    const idx = index({ 1: [3, 4, 5, 6, 7], 2: [5, 6, 8] }, { 2: '1\t0/5000158\tno recovery target specified\n' });
    const chain = followChain(idx, 1, 3);
    expect(chain.targetTimeline).toBe(2);
    expect(chain.last?.name).toBe('000000020000000000000006');
    expect(chain.firstMissing.name).toBe('000000020000000000000007');
    expect(chain.unreachable).toBe(1);
  });
});
