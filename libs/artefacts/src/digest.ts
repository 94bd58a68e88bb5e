import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { ManifestEntry } from './store';

/** sha256 of a file, streamed so large checkpoints are never held in memory. */
export async function sha256OfFile(path: string): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(path)) {
    const buf = chunk as Buffer;
    bytes += buf.length;
    hash.update(buf);
  }
  return { sha256: hash.digest('hex'), bytes };
}

/**
 * Every regular file under `dir` with its hash, in path order (code-unit order, so the same on
 * every platform). Symlinks and other special files are refused: an artefact must be
 * self-contained bytes.
 */
export async function directoryManifest(dir: string): Promise<ManifestEntry[]> {
  const out: ManifestEntry[] = [];
  const walk = async (abs: string, rel: string): Promise<void> => {
    const entries = await readdir(abs, { withFileTypes: true });
    for (const e of entries) {
      const childAbs = join(abs, e.name);
      const childRel = rel === '' ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory()) await walk(childAbs, childRel);
      else if (e.isFile()) out.push({ path: childRel, ...(await sha256OfFile(childAbs)) });
      else throw new Error(`${childAbs}: only regular files and directories can be stored as artefacts`);
    }
  };
  await walk(dir, '');
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/**
 * The digest of a directory: sha256 of one line per file, `<sha256>  <bytes>  <path>\n`, in
 * path order. Renaming, adding, removing or changing any file changes it.
 */
export function manifestDigest(files: readonly ManifestEntry[]): string {
  const hash = createHash('sha256');
  for (const f of files) hash.update(`${f.sha256}  ${f.bytes}  ${f.path}\n`);
  return hash.digest('hex');
}

/** Hashes a file or directory: the artefact's sha256 and its manifest. */
export async function digestPath(
  path: string,
): Promise<{ kind: 'file' | 'directory'; sha256: string; bytes: number; files: ManifestEntry[] }> {
  const st = await lstat(path);
  if (st.isFile()) {
    const d = await sha256OfFile(path);
    return { kind: 'file', sha256: d.sha256, bytes: d.bytes, files: [{ path: '', ...d }] };
  }
  if (st.isDirectory()) {
    const files = await directoryManifest(path);
    return {
      kind: 'directory',
      sha256: manifestDigest(files),
      bytes: files.reduce((a, f) => a + f.bytes, 0),
      files,
    };
  }
  throw new Error(`${path} is neither a regular file nor a directory`);
}
