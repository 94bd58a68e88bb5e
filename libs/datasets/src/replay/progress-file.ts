import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { ProgressStore, ReplayProgress } from './model';

/** `.cprec/replay/<hash of the replay key>.json` under `root` (the project folder by default). */
export function replayProgressPath(key: string, root: string = process.cwd()): string {
  const digest = createHash('sha256').update(key).digest('hex').slice(0, 16);
  return join(root, '.cprec', 'replay', `${digest}.json`);
}

/**
 * Progress persisted as a small JSON file, replaced atomically (write a temp file, then rename
 * over the old one: rename is atomic on POSIX file systems), so a crash or SIGKILL mid-write
 * leaves either the previous or the new progress, never a torn file.
 */
export class FileProgressStore implements ProgressStore {
  constructor(private readonly path: string) {}

  async load(): Promise<ReplayProgress | null> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    const value = JSON.parse(text) as Partial<ReplayProgress>;
    if (
      typeof value.key !== 'string' ||
      typeof value.acknowledged !== 'number' ||
      typeof value.done !== 'boolean'
    ) {
      throw new Error(`${this.path}: not a replay progress file`);
    }
    return {
      key: value.key,
      acknowledged: value.acknowledged,
      done: value.done,
      updatedAt: String(value.updatedAt ?? ''),
    };
  }

  async save(progress: ReplayProgress): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true });
    const temp = `${this.path}.${process.pid}.tmp`;
    await writeFile(temp, JSON.stringify(progress, null, 2) + '\n');
    await rename(temp, this.path);
  }
}
