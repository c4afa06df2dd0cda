// The seal of a stored manifest (docs/FORMAT.md §3): the sha256 of its canonical JSON, and
// with a configured key an HMAC-SHA256 of the same bytes, so a manifest edited after it was
// written is refused instead of believed.
import { z } from 'zod';
import { canonicalJson, type Sha256Hex } from '../audit.js';

const Hex256 = z.string().regex(/^[0-9a-f]{64}$/, 'a sha256 is 64 lowercase hex digits');

export const ManifestSeal = z
  .object({
    /** sha256 of the canonical JSON of the manifest without `seal`. */
    sha256: Hex256,
    /** HMAC-SHA256 of the same bytes; `key` names where the key was read from (an environment variable), never the key. */
    hmac: z
      .object({ key: z.string().min(1), sha256: Hex256 })
      .strict()
      .optional(),
  })
  .strict();
export type ManifestSeal = z.infer<typeof ManifestSeal>;

/** The key manifests are sealed with. The domain does no crypto: the adapters make one. */
export interface ManifestKey {
  /** What the seal records as `hmac.key`: the environment variable's name. */
  name: string;
  /** HMAC-SHA256 of a UTF-8 string with the key, as 64 lowercase hex digits. */
  hmac(text: string): string;
}

/** The bytes a seal covers: the canonical JSON (audit.ts) of the manifest without its `seal`. */
export function sealedText(manifest: Readonly<Record<string, unknown>>): string {
  const { seal: _ignored, ...rest } = manifest;
  return canonicalJson(rest);
}

/** The manifest with its seal (a `seal` already there is replaced). */
export function sealManifest<T extends object>(
  manifest: T,
  sha256hex: Sha256Hex,
  key: ManifestKey | null,
): T & { seal: ManifestSeal } {
  const text = sealedText(manifest as Record<string, unknown>);
  const seal: ManifestSeal = {
    sha256: sha256hex(text),
    ...(key ? { hmac: { key: key.name, sha256: key.hmac(text) } } : {}),
  };
  return { ...manifest, seal };
}

/** Compares two hex strings in time that does not depend on where they differ. */
function sameHex(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/**
 * Why a manifest, as read (the parsed JSON, before any schema touched it), must not be
 * believed; null when its seal holds. Without a key, a manifest with no seal (written before
 * seals) passes and an HMAC is not checked; with one, the manifest must carry a matching HMAC.
 */
export function manifestSealProblem(raw: unknown, sha256hex: Sha256Hex, key: ManifestKey | null): string | null {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return 'it is not a JSON object';
  const record = raw as Record<string, unknown>;
  if (record.seal === undefined) {
    return key
      ? `it is not sealed, and a manifest key is configured (${key.name}): every manifest must carry its HMAC`
      : null;
  }
  const parsed = ManifestSeal.safeParse(record.seal);
  if (!parsed.success) return 'its seal does not parse';
  const text = sealedText(record);
  if (!sameHex(sha256hex(text), parsed.data.sha256)) {
    return 'its checksum does not match its content (seal.sha256): it was changed after it was written';
  }
  if (!key) return null;
  if (!parsed.data.hmac) {
    return `its seal carries no HMAC, and a manifest key is configured (${key.name}): it was not sealed with the key`;
  }
  if (!sameHex(key.hmac(text), parsed.data.hmac.sha256)) {
    return `its HMAC does not match the key in ${key.name}: it was changed after it was written, or sealed with another key`;
  }
  return null;
}
