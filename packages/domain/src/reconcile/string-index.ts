// An index from the ids of a list to their first position: open addressing over an array
// of positions, several times cheaper to build than a Map once there are millions of ids.

/** FNV-1a over every character, then a final mix so the low bits used for slots are well spread. */
export function hashString(s: string): number {
  let h = 0x811c9dc5 ^ s.length;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return h >>> 0;
}

export class StringIndex {
  readonly #ids: readonly string[];
  readonly #slots: number[];
  readonly #mask: number;

  /** Indexes ids[0..n); `onRepeat(i, first)` is told of every id seen before. */
  constructor(ids: readonly string[], onRepeat?: (i: number, first: number) => void) {
    this.#ids = ids;
    let capacity = 16;
    // At most half full, so a probe rarely looks at more than two slots.
    while (capacity < ids.length * 2) capacity *= 2;
    // A plain array, not an Int32Array: typed arrays live outside the heap, and that much
    // external memory makes V8 run a full collection over the whole books at once.
    this.#slots = new Array<number>(capacity).fill(-1);
    this.#mask = capacity - 1;
    for (let i = 0; i < ids.length; i++) {
      const first = this.#insert(i);
      if (first !== -1) onRepeat?.(i, first);
    }
  }

  #insert(i: number): number {
    const id = this.#ids[i]!;
    const slots = this.#slots;
    let h = hashString(id) & this.#mask;
    for (;;) {
      const v = slots[h]!;
      if (v === -1) {
        slots[h] = i;
        return -1;
      }
      if (this.#ids[v] === id) return v;
      h = (h + 1) & this.#mask;
    }
  }

  /** The first position of id, or -1. */
  get(id: string): number {
    const slots = this.#slots;
    let h = hashString(id) & this.#mask;
    for (;;) {
      const v = slots[h]!;
      if (v === -1 || this.#ids[v] === id) return v;
      h = (h + 1) & this.#mask;
    }
  }
}

/**
 * Whether ids rise or fall strictly (shorter first, then as text, so numeric ids compare as
 * numbers). Such ids are all distinct, which spares building an index only to look for repeats.
 */
export function strictlyMonotonic<T>(rows: readonly T[], id: (row: T) => string): boolean {
  let rising = true;
  let falling = true;
  for (let k = 1; k < rows.length && (rising || falling); k++) {
    const a = id(rows[k - 1]!);
    const b = id(rows[k]!);
    const order = a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
    if (order >= 0) rising = false;
    if (order <= 0) falling = false;
  }
  return rising || falling;
}
