import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { createGunzip } from 'node:zlib';
import type { Readable } from 'node:stream';

async function isGzip(path: string): Promise<boolean> {
  const handle = await open(path, 'r');
  try {
    const head = Buffer.alloc(2);
    const { bytesRead } = await handle.read(head, 0, 2, 0);
    return bytesRead === 2 && head[0] === 0x1f && head[1] === 0x8b;
  } finally {
    await handle.close();
  }
}

/**
 * Streams a text file line by line, gunzipping on the fly when the file starts with the gzip
 * magic bytes (so `x.jsonl` and `x.jsonl.gz` both work). Only one chunk is in memory at a time.
 * Empty lines and a trailing `\r` are dropped.
 */
export async function* readLines(path: string): AsyncGenerator<string> {
  const file = createReadStream(path);
  const input: Readable = (await isGzip(path)) ? file.pipe(createGunzip()) : file;
  file.on('error', (err) => input.destroy(err));
  const reader = createInterface({ input, crlfDelay: Infinity });
  try {
    for await (const line of reader) {
      const trimmed = line.endsWith('\r') ? line.slice(0, -1) : line;
      if (trimmed.length > 0) yield trimmed;
    }
  } finally {
    reader.close();
    input.destroy();
    file.destroy();
  }
}

/** Streams a JSON Lines file (optionally gzipped) with the line number in errors. */
export async function* readJsonLines(path: string): AsyncGenerator<unknown> {
  let lineNo = 0;
  for await (const line of readLines(path)) {
    lineNo++;
    try {
      yield JSON.parse(line) as unknown;
    } catch (err) {
      throw new Error(`${path}:${lineNo}: malformed JSON: ${(err as Error).message}`);
    }
  }
}
