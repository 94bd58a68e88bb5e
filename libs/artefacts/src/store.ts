/**
 * Artefact store: immutable, checksummed blobs (a file or a directory tree) under a key.
 * The local filesystem implementation lives in `local-store.ts`; an object store (S3, GCS…) can
 * implement the same interface later — `localPath` then downloads into a cache before verifying.
 */

export type ArtefactKind = 'file' | 'directory';

/** One file of a directory artefact. */
export interface ManifestEntry {
  /** Relative path with `/` separators. */
  path: string;
  bytes: number;
  sha256: string;
}

/** What is recorded about an artefact when it is written. */
export interface ArtefactRecord {
  format: 'cprec-artefact/1';
  key: string;
  kind: ArtefactKind;
  /** Where the artefact can be read from (`file:///abs/path` for the local store). */
  uri: string;
  /**
   * sha256 (hex) of the file's bytes; for a directory, of its manifest text (see
   * `manifestDigest`), so one value pins every file's path and contents.
   */
  sha256: string;
  bytes: number;
  /** Files of a directory artefact in path order (a file artefact has one entry, path ''). */
  files: ManifestEntry[];
  createdMs: number;
  /** Caller's description (lineage, watermark…), stored verbatim. */
  metadata: Record<string, unknown>;
}

export interface PutOptions {
  metadata?: Record<string, unknown>;
}

export interface ArtefactStore {
  /**
   * Copies a file or a directory into the store under `key` atomically. Artefacts are immutable:
   * putting the same content again under the same key returns the existing record (so a retried
   * publication is harmless); different content under an existing key is refused.
   */
  put(key: string, sourcePath: string, options?: PutOptions): Promise<ArtefactRecord>;
  /** The record of `key` (not verified), or null when absent. */
  stat(key: string): Promise<ArtefactRecord | null>;
  /**
   * A local path holding the artefact's content, after verifying every checksum.
   * Throws ArtefactNotFoundError or ArtefactIntegrityError.
   */
  localPath(key: string): Promise<string>;
  /** Records whose key starts with `prefix` (all when omitted), in key order. */
  list(prefix?: string): Promise<ArtefactRecord[]>;
  /** Re-hashes the artefact; throws ArtefactIntegrityError naming what differs. */
  verify(key: string): Promise<ArtefactRecord>;
  /** The key of an artefact URI this store issued, or null when it is not one of ours. */
  keyOfUri(uri: string): string | null;
}

export class ArtefactNotFoundError extends Error {
  constructor(readonly key: string) {
    super(`artefact "${key}" is not in the store`);
    this.name = 'ArtefactNotFoundError';
  }
}

export class ArtefactIntegrityError extends Error {
  constructor(
    readonly key: string,
    readonly problems: readonly string[],
  ) {
    super(`artefact "${key}" is corrupted and was refused: ${problems.join('; ')}`);
    this.name = 'ArtefactIntegrityError';
  }
}

export class ArtefactConflictError extends Error {
  constructor(
    readonly key: string,
    existing: string,
    offered: string,
  ) {
    super(
      `artefact "${key}" already exists with sha256 ${existing}; refusing different content (sha256 ${offered}) — artefacts are immutable, use a new key`,
    );
    this.name = 'ArtefactConflictError';
  }
}

const KEY_SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** Keys are `/`-separated segments of safe characters: they become paths and object names. */
export function checkKey(key: string): string {
  const segments = key.split('/');
  if (
    key.length === 0 ||
    key.length > 512 ||
    !segments.every((s) => KEY_SEGMENT.test(s) && !/^\.+$/.test(s))
  ) {
    throw new RangeError(
      `artefact key "${key}" is invalid: use '/'-separated segments of letters, digits, '.', '_' and '-' (not starting with '.' or '-')`,
    );
  }
  return key;
}
