/** Small typed accessors for decoded JSON rows, failing with the file position in the message. */
export type Row = Record<string, unknown>;

export function asRow(value: unknown, where: string): Row {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Error(`${where}: expected an object`);
  }
  return value as Row;
}

/** Ids arrive as numbers (remapped datasets) or strings (ASINs); events carry them as strings. */
export function idValue(value: unknown, where: string): string {
  if (typeof value === 'string' && value.length > 0) return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  throw new Error(`${where}: must be a non-empty string or number`);
}

export function idField(row: Row, key: string, where: string): string {
  return idValue(row[key], `${where}: field '${key}'`);
}

export function numberValue(value: unknown, where: string): number {
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  if (typeof value === 'string' && value.trim() !== '' && Number.isFinite(Number(value)))
    return Number(value);
  throw new Error(`${where}: must be a number`);
}

export function numberField(row: Row, key: string, where: string): number {
  return numberValue(row[key], `${where}: field '${key}'`);
}

export function arrayField(row: Row, key: string, where: string): unknown[] {
  const value = row[key];
  if (!Array.isArray(value)) throw new Error(`${where}: field '${key}' must be an array`);
  return value;
}

export function optionalString(row: Row, key: string): string | undefined {
  const value = row[key];
  return typeof value === 'string' ? value : undefined;
}

/** Unix seconds (as in every dump in ../shared/data) to epoch milliseconds. */
export function secondsToMs(seconds: number): number {
  return Math.round(seconds * 1000);
}
