// String methods at full speed in a process where some library subclasses String.
//
// V8 turns String.prototype into a slow (dictionary-mode) object once an ordinary object
// inherits from it, as the prototype of any `class … extends String` does: ioredis declares
// one, so every process that loads the Redis adapters has it. From then on each charCodeAt,
// slice or indexOf on a string is a generic call, three to four times slower, and a
// reconciliation parses millions of times and decimals and hashes millions of ids with them
// (the four checks of a million orders took twice as long). V8 makes a prototype
// fast again when a property is stored on an object that inherits from it, so one such store
// undoes it. Code compiled while it was slow stays slow, so this is called before the work
// (reading the books, reconciling), not after; it changes nothing else.

/** Makes String.prototype a fast-mode object again (see above); cheap, and safe to call often. */
export function restoreFastStringMethods(): void {
  const heir = Object.create(String.prototype) as { heir?: boolean };
  heir.heir = true;
}
