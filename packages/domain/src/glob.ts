// A small glob matcher for the target's file rules: `*` within a path segment, `**` across
// segments, `?` for one character. Paths are relative and use forward slashes.

const cache = new Map<string, RegExp>();

export function globToRegExp(pattern: string): RegExp {
  const cached = cache.get(pattern);
  if (cached) return cached;
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '*') {
      if (pattern[i + 1] === '*') {
        // `**/` matches zero or more whole segments; a trailing `**` matches the rest.
        if (pattern[i + 2] === '/') {
          re += '(?:.*/)?';
          i += 2;
        } else {
          re += '.*';
          i += 1;
        }
      } else {
        re += '[^/]*';
      }
    } else if (c === '?') {
      re += '[^/]';
    } else {
      re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
    }
  }
  const compiled = new RegExp(`^${re}$`);
  cache.set(pattern, compiled);
  return compiled;
}

/** True when the path matches the pattern, or lies inside a directory the pattern names. */
export function matchesGlob(path: string, pattern: string): boolean {
  const p = pattern.replace(/\/+$/, '');
  if (globToRegExp(p).test(path)) return true;
  // `reports` and `reports/` both mean everything below reports/.
  return !/[*?]/.test(p) && path.startsWith(`${p}/`);
}

export function matchesAny(path: string, patterns: readonly string[]): boolean {
  return patterns.some((p) => matchesGlob(path, p));
}
