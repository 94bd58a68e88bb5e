import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';

/**
 * Writes `text` to `path` so that a reader (or a resumed run) sees either the old file or the
 * complete new one, never a torn write: the text goes to a sibling temp file, is flushed to disk,
 * and is renamed over `path` (rename is atomic within a file system).
 */
export function atomicWrite(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

export function atomicWriteJson(path: string, value: unknown): void {
  atomicWrite(path, JSON.stringify(value, null, 1) + '\n');
}

export function readJson<T>(path: string): T {
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}

export function readJsonIfExists<T>(path: string): T | null {
  return existsSync(path) ? readJson<T>(path) : null;
}

/**
 * Appends one JSON line and flushes it: the per-case log of a long evaluation. A kill can leave
 * only the last line torn; `readJsonLines` drops such a line, so that case is simply redone.
 */
export function appendJsonLine(path: string, value: unknown): void {
  mkdirSync(dirname(path), { recursive: true });
  const fd = openSync(path, 'a');
  try {
    writeSync(fd, JSON.stringify(value) + '\n');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** The complete lines of a JSON-lines file (a torn last line is ignored); [] when absent. */
export function readJsonLines<T>(path: string): T[] {
  if (!existsSync(path)) return [];
  const out: T[] = [];
  const lines = readFileSync(path, 'utf8').split('\n');
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      out.push(JSON.parse(line) as T);
    } catch (err) {
      // Only the last line can be torn by a kill; anything else is real corruption.
      if (i < lines.length - 1 && lines.slice(i + 1).some((l) => l.trim() !== '')) throw err;
    }
  });
  return out;
}

/** A stage or row id as a file name: `game/cprec/n1024/seed1` → `game__cprec__n1024__seed1`. */
export function fileSafe(id: string): string {
  return id.replace(/\//g, '__').replace(/[^A-Za-z0-9_.-]/g, '-');
}
