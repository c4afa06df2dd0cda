// Pairs the exchange's rows with the books' by id without hashing millions of ids when it
// can: both sides usually list rows in one order — the same, one of them newest first, or one
// of them symbol by symbol — so a row is first looked for where the previous pair says.
import type { StringIndex } from './string-index.js';

export interface Pairing {
  /** For each row of mine, the row of theirs it pairs with, or -1. */
  pairOfMine: number[];
  /** For each row of theirs, the row of mine it pairs with, or -1. */
  pairOfTheirs: number[];
  /** Rows of theirs whose id belongs to a row of mine that is already paired: the other side's repeats. */
  repeats: Array<{ theirs: number; mine: number }>;
}

export interface PairingSide {
  length: number;
  id(row: number): string;
  /** The symbol: rows of one symbol are often listed in order even when the lists are not. */
  group(row: number): string;
}

/** Each row's neighbours within its group, in list order, and each group's first and last row. */
function groupLinks(side: PairingSide) {
  const next = new Array<number>(side.length).fill(-1);
  const prev = new Array<number>(side.length).fill(-1);
  const first = new Map<string, number>();
  const last = new Map<string, number>();
  for (let i = 0; i < side.length; i++) {
    const g = side.group(i);
    const before = last.get(g);
    if (before === undefined) first.set(g, i);
    else {
      next[before] = i;
      prev[i] = before;
    }
    last.set(g, i);
  }
  return { next, prev, first, last };
}

/**
 * Pairs `theirs` with `mine` by id. Rows of mine for which `usable` is false (an id the books
 * use twice) pair with nothing; an empty id on their side pairs with nothing. `index` is an
 * index of mine's ids when one was already built (mine's ids were not all distinct by
 * order); without one, mine's ids are distinct and what prediction leaves is found with one
 * pass over mine.
 */
export function pairById(
  mine: PairingSide,
  theirs: PairingSide,
  usable: (row: number) => boolean,
  index: StringIndex | undefined,
): Pairing {
  const n = mine.length;
  const pairOfMine = new Array<number>(n).fill(-1);
  const pairOfTheirs = new Array<number>(theirs.length).fill(-1);
  const repeats: Array<{ theirs: number; mine: number }> = [];
  const left: number[] = [];
  const fits = (i: number, id: string): boolean =>
    i >= 0 && i < n && pairOfMine[i] === -1 && mine.id(i) === id && usable(i);

  let links: ReturnType<typeof groupLinks> | undefined;
  const lastInGroup = new Map<string, number>();
  /** Follows a symbol's rows from `from` (itself included) along `step`, to get past a few rows the other side lacks. */
  const walk = (from: number, step: number[], id: string): number => {
    let c = from;
    for (let k = 0; k < 8 && c !== -1; k++, c = step[c]!) if (fits(c, id)) return c;
    return -1;
  };
  let prev = -1;
  let misses = 0;
  let windowHits = 0;
  let predicting = true;
  for (let j = 0; j < theirs.length; j++) {
    const id = theirs.id(j);
    if (id === '') continue;
    // Every guess reads a row of mine; in unrelated orders that is a read from anywhere in the
    // heap, so guessing stops when most guesses of a stretch of rows miss.
    if ((j & 4095) === 0 && j > 0) {
      if (windowHits < 1024) predicting = false;
      windowHits = 0;
    }
    if (!predicting) {
      left.push(j);
      continue;
    }
    // Guesses, nearest first: after the last pair, before it (lists in opposite orders); then
    // within the symbol, after or before its last pair (lists given symbol by symbol); then
    // the same or the mirrored position, which start a run but are reads from far away.
    let i = prev + 1;
    if (!fits(i, id)) {
      i = prev - 1;
      if (!fits(i, id)) i = -1;
    }
    // Linking rows by symbol costs a pass over mine: not for the one miss that starts lists
    // in opposite orders. The walk gets past the rows missed before.
    if (i === -1 && ++misses > 3) {
      links ??= groupLinks(mine);
      const g = theirs.group(j);
      const last = lastInGroup.get(g);
      if (last === undefined) {
        i = walk(links.first.get(g) ?? -1, links.next, id);
        if (i === -1) i = walk(links.last.get(g) ?? -1, links.prev, id);
      } else {
        i = walk(links.next[last]!, links.next, id);
        if (i === -1) i = walk(links.prev[last]!, links.prev, id);
      }
    }
    if (i === -1) {
      i = j;
      if (!fits(i, id)) {
        i = n - 1 - j;
        if (!fits(i, id)) i = -1;
      }
    }
    if (i === -1) {
      left.push(j);
      continue;
    }
    pairOfMine[i] = j;
    pairOfTheirs[j] = i;
    prev = i;
    windowHits++;
    lastInGroup.set(theirs.group(j), i);
  }
  if (left.length === 0) return { pairOfMine, pairOfTheirs, repeats };

  const settle = (i: number, j: number): void => {
    if (pairOfMine[i] === -1 && usable(i)) {
      pairOfMine[i] = j;
      pairOfTheirs[j] = i;
    } else if (pairOfMine[i] !== -1) {
      repeats.push({ theirs: j, mine: i });
    }
  };
  if (index) {
    for (const j of left) {
      const i = index.get(theirs.id(j));
      if (i !== -1) settle(i, j);
    }
  } else {
    // Index what is left, and walk mine once in its own order.
    const wanted = new Map<string, number[]>();
    for (const j of left) {
      const id = theirs.id(j);
      const list = wanted.get(id);
      if (list) list.push(j);
      else wanted.set(id, [j]);
    }
    for (let i = 0; i < n; i++) {
      const list = wanted.get(mine.id(i));
      if (list) for (const j of list) settle(i, j);
    }
  }
  return { pairOfMine, pairOfTheirs, repeats };
}
