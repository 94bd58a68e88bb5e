import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface MigrationFile {
  /** From the NNNN prefix of the file name; applied in ascending order. */
  version: number;
  /** The rest of the file name without `.sql`, e.g. `raw_interactions_and_items`. */
  name: string;
  fileName: string;
  /** sha256 of the file text with line endings normalised, recorded when applied. */
  checksum: string;
  statements: string[];
}

export class MigrationFileError extends Error {
  override readonly name = 'MigrationFileError';
}

const FILE_NAME = /^(\d{4,})_([a-z0-9_]+)\.sql$/;

export function parseMigrationFileName(fileName: string): { version: number; name: string } {
  const match = FILE_NAME.exec(fileName);
  if (!match) {
    throw new MigrationFileError(
      `migration file ${JSON.stringify(fileName)} must be named NNNN_lowercase_name.sql (at least four digits)`,
    );
  }
  const version = Number(match[1]);
  if (!Number.isSafeInteger(version) || version <= 0) {
    throw new MigrationFileError(`migration file ${JSON.stringify(fileName)} must have a positive version`);
  }
  return { version, name: match[2] };
}

export function migrationChecksum(text: string): string {
  return createHash('sha256').update(text.replace(/\r\n/g, '\n'), 'utf8').digest('hex');
}

/**
 * Splits a migration file into statements at every `;` that is outside quotes and comments.
 * Hand-written because no maintained JS package splits ClickHouse SQL: it must know
 * '...' strings with backslash escapes, `...` and "..." identifiers, -- line comments and
 * block comments. Statements that are only whitespace or comments are dropped.
 */
export function splitSqlStatements(text: string): string[] {
  const statements: string[] = [];
  let current = '';
  let hasCode = false;
  let i = 0;
  const flush = (): void => {
    if (hasCode) statements.push(current.trim());
    current = '';
    hasCode = false;
  };
  while (i < text.length) {
    const ch = text[i];
    const next = text[i + 1];
    if (ch === '-' && next === '-') {
      const end = text.indexOf('\n', i);
      const stop = end === -1 ? text.length : end;
      current += text.slice(i, stop);
      i = stop;
    } else if (ch === '/' && next === '*') {
      const end = text.indexOf('*/', i + 2);
      if (end === -1) throw new MigrationFileError('unterminated /* comment');
      current += text.slice(i, end + 2);
      i = end + 2;
    } else if (ch === "'" || ch === '`' || ch === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== ch) {
        j += text[j] === '\\' ? 2 : 1;
      }
      if (j >= text.length) throw new MigrationFileError(`unterminated ${ch} quote starting at offset ${i}`);
      current += text.slice(i, j + 1);
      hasCode = true;
      i = j + 1;
    } else if (ch === ';') {
      flush();
      i += 1;
    } else {
      current += ch;
      if (!/\s/.test(ch)) hasCode = true;
      i += 1;
    }
  }
  flush();
  return statements;
}

export function parseMigration(fileName: string, text: string): MigrationFile {
  const { version, name } = parseMigrationFileName(fileName);
  let statements: string[];
  try {
    statements = splitSqlStatements(text);
  } catch (err) {
    throw new MigrationFileError(`${fileName}: ${(err as Error).message}`);
  }
  if (statements.length === 0) throw new MigrationFileError(`${fileName}: contains no SQL statement`);
  return { version, name, fileName, checksum: migrationChecksum(text), statements };
}

/** Reads every *.sql file of a directory, ordered by version; duplicate versions are an error. */
export async function loadMigrations(directory: string): Promise<MigrationFile[]> {
  const fileNames = (await readdir(directory)).filter((f) => f.endsWith('.sql')).sort();
  const migrations: MigrationFile[] = [];
  for (const fileName of fileNames) {
    migrations.push(parseMigration(fileName, await readFile(join(directory, fileName), 'utf8')));
  }
  migrations.sort((a, b) => a.version - b.version);
  for (let k = 1; k < migrations.length; k++) {
    if (migrations[k].version === migrations[k - 1].version) {
      throw new MigrationFileError(
        `migrations ${migrations[k - 1].fileName} and ${migrations[k].fileName} share version ${migrations[k].version}`,
      );
    }
  }
  return migrations;
}

/** The migrations shipped with libs/clickhouse. */
export const DEFAULT_MIGRATIONS_DIR = join(__dirname, '..', '..', 'migrations');
