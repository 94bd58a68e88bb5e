import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { digestPath } from './digest';
import {
  ArtefactConflictError,
  ArtefactIntegrityError,
  ArtefactNotFoundError,
  ArtefactRecord,
  ArtefactStore,
  checkKey,
  ManifestEntry,
  PutOptions,
} from './store';

/** Names inside a key's folder; '@' cannot occur in a key, so they never clash with nested keys. */
const CONTENT = '@content';
const RECORD = '@artefact.json';
const STAGING = '.staging';

/** Where the local store lives: `$CPREC_HOME/artefacts` (default `.cprec/artefacts`). */
export function defaultArtefactRoot(env: NodeJS.ProcessEnv = process.env): string {
  return resolve(env.CPREC_HOME ?? '.cprec', 'artefacts');
}

/**
 * The artefact store on a local filesystem: `<root>/<key>/@content` (the file or directory) and
 * `<root>/<key>/@artefact.json` (its record with every file's sha256).
 *
 * Writes are atomic: content is copied into `<root>/.staging`, hashed there (the copy, not the
 * source, so a source changing during the copy cannot slip through), renamed into place, and
 * only then is the record written (itself temp + rename). An artefact exists once its record
 * does; a crash before leaves at most an orphan that the next put of that key clears.
 * Every read re-hashes the content and refuses it on any difference.
 */
export class LocalArtefactStore implements ArtefactStore {
  readonly root: string;

  constructor(
    root: string = defaultArtefactRoot(),
    private readonly now: () => number = Date.now,
  ) {
    this.root = resolve(root);
  }

  private dirOf(key: string): string {
    return join(this.root, ...checkKey(key).split('/'));
  }

  async put(key: string, sourcePath: string, options: PutOptions = {}): Promise<ArtefactRecord> {
    const dir = this.dirOf(key);
    const staging = join(this.root, STAGING, `${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`);
    await mkdir(staging, { recursive: true });
    try {
      const stagedContent = join(staging, CONTENT);
      await cp(resolve(sourcePath), stagedContent, { recursive: true, errorOnExist: true, force: false });
      const digest = await digestPath(stagedContent);
      const existing = await this.stat(key);
      if (existing) {
        if (existing.sha256 !== digest.sha256)
          throw new ArtefactConflictError(key, existing.sha256, digest.sha256);
        return existing;
      }
      const record: ArtefactRecord = {
        format: 'cprec-artefact/1',
        key,
        kind: digest.kind,
        uri: pathToFileURL(join(dir, CONTENT)).href,
        sha256: digest.sha256,
        bytes: digest.bytes,
        files: digest.files,
        createdMs: this.now(),
        metadata: options.metadata ?? {},
      };
      await mkdir(dir, { recursive: true });
      // An orphan from a crashed put (content without record) is replaced.
      await rm(join(dir, CONTENT), { recursive: true, force: true });
      await rename(stagedContent, join(dir, CONTENT));
      const tmpRecord = join(staging, RECORD);
      await writeFile(tmpRecord, JSON.stringify(record, null, 2) + '\n');
      await rename(tmpRecord, join(dir, RECORD));
      return record;
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
  }

  async stat(key: string): Promise<ArtefactRecord | null> {
    const file = join(this.dirOf(key), RECORD);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    let record: ArtefactRecord;
    try {
      record = JSON.parse(text) as ArtefactRecord;
    } catch (err) {
      throw new ArtefactIntegrityError(key, [`record ${file} is not valid JSON (${(err as Error).message})`]);
    }
    if (record.format !== 'cprec-artefact/1' || record.key !== key) {
      throw new ArtefactIntegrityError(key, [`record ${file} does not describe this key`]);
    }
    return record;
  }

  async verify(key: string): Promise<ArtefactRecord> {
    const record = await this.stat(key);
    if (!record) throw new ArtefactNotFoundError(key);
    const content = join(this.dirOf(key), CONTENT);
    if (!existsSync(content)) throw new ArtefactIntegrityError(key, [`content ${content} is missing`]);
    let actual: Awaited<ReturnType<typeof digestPath>>;
    try {
      actual = await digestPath(content);
    } catch (err) {
      throw new ArtefactIntegrityError(key, [(err as Error).message]);
    }
    const problems = compareManifests(record, actual.kind, actual.files);
    if (problems.length === 0 && actual.sha256 !== record.sha256) {
      problems.push(`sha256 ${actual.sha256} differs from the recorded ${record.sha256}`);
    }
    if (problems.length > 0) throw new ArtefactIntegrityError(key, problems);
    return record;
  }

  async localPath(key: string): Promise<string> {
    await this.verify(key);
    return join(this.dirOf(key), CONTENT);
  }

  async list(prefix = ''): Promise<ArtefactRecord[]> {
    const out: ArtefactRecord[] = [];
    const walk = async (abs: string, keyPrefix: string): Promise<void> => {
      let entries;
      try {
        entries = await readdir(abs, { withFileTypes: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw err;
      }
      for (const e of entries) {
        if (e.name === RECORD && keyPrefix !== '') {
          const record = await this.stat(keyPrefix);
          if (record) out.push(record);
        } else if (e.isDirectory() && e.name !== CONTENT && e.name !== STAGING) {
          await walk(join(abs, e.name), keyPrefix === '' ? e.name : `${keyPrefix}/${e.name}`);
        }
      }
    };
    await walk(this.root, '');
    return out
      .filter((r) => r.key.startsWith(prefix))
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  keyOfUri(uri: string): string | null {
    if (!uri.startsWith('file://')) return null;
    let path: string;
    try {
      path = fileURLToPath(uri);
    } catch {
      return null;
    }
    const rel = relative(this.root, path);
    if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) return null;
    const parts = rel.split(sep);
    if (parts.length < 2 || parts[parts.length - 1] !== CONTENT) return null;
    const key = parts.slice(0, -1).join('/');
    try {
      return checkKey(key);
    } catch {
      return null;
    }
  }
}

function compareManifests(
  record: ArtefactRecord,
  kind: 'file' | 'directory',
  files: readonly ManifestEntry[],
): string[] {
  if (kind !== record.kind) return [`content is a ${kind}, recorded as a ${record.kind}`];
  const problems: string[] = [];
  const actual = new Map(files.map((f) => [f.path, f]));
  const label = (path: string): string => (path === '' ? 'the file' : `file ${path}`);
  for (const expected of record.files) {
    const got = actual.get(expected.path);
    if (!got) problems.push(`${label(expected.path)} is missing`);
    else if (got.sha256 !== expected.sha256 || got.bytes !== expected.bytes)
      problems.push(
        `${label(expected.path)} has sha256 ${got.sha256} (${got.bytes} bytes), recorded ${expected.sha256} (${expected.bytes} bytes)`,
      );
    actual.delete(expected.path);
  }
  for (const extra of actual.keys()) problems.push(`unexpected ${label(extra)}`);
  return problems;
}
