import { GgufFile, GgufValue } from './gguf-file';

/**
 * Typed access to GGUF metadata. Each getter throws "missing metadata key X" when the key is absent
 * and no fallback is given, and names the key and the type found when the value has the wrong type.
 */

function describe(v: GgufValue): string {
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}`;
  return `${typeof v} ${String(v)}`;
}

function get(file: GgufFile, key: string): GgufValue {
  const v = file.metadata.get(key);
  if (v === undefined) throw new Error(`GGUF file ${file.path}: missing metadata key ${key}`);
  return v;
}

function wrongType(file: GgufFile, key: string, want: string, v: GgufValue): Error {
  return new Error(`GGUF file ${file.path}: metadata key ${key} should be ${want}, but is ${describe(v)}`);
}

export function ggufHas(file: GgufFile, key: string): boolean {
  return file.metadata.has(key);
}

export function ggufString(file: GgufFile, key: string, fallback?: string): string {
  if (fallback !== undefined && !file.metadata.has(key)) return fallback;
  const v = get(file, key);
  if (typeof v !== 'string') throw wrongType(file, key, 'a string', v);
  return v;
}

/** Any numeric value (bigints only when exactly representable as a number). */
export function ggufNumber(file: GgufFile, key: string, fallback?: number): number {
  if (fallback !== undefined && !file.metadata.has(key)) return fallback;
  const v = get(file, key);
  if (typeof v === 'bigint')
    throw new Error(`GGUF file ${file.path}: metadata key ${key} = ${v} does not fit a number`);
  if (typeof v !== 'number') throw wrongType(file, key, 'a number', v);
  return v;
}

export function ggufBool(file: GgufFile, key: string, fallback?: boolean): boolean {
  if (fallback !== undefined && !file.metadata.has(key)) return fallback;
  const v = get(file, key);
  if (typeof v !== 'boolean') throw wrongType(file, key, 'a bool', v);
  return v;
}

export function ggufArray(file: GgufFile, key: string, fallback?: GgufValue[]): GgufValue[] {
  if (fallback !== undefined && !file.metadata.has(key)) return fallback;
  const v = get(file, key);
  if (!Array.isArray(v)) throw wrongType(file, key, 'an array', v);
  return v;
}

export function ggufStringArray(file: GgufFile, key: string, fallback?: string[]): string[] {
  if (fallback !== undefined && !file.metadata.has(key)) return fallback;
  const v = ggufArray(file, key);
  const bad = v.findIndex((x) => typeof x !== 'string');
  if (bad >= 0)
    throw new Error(
      `GGUF file ${file.path}: metadata key ${key}[${bad}] should be a string, but is ${describe(v[bad])}`,
    );
  return v as string[];
}

export function ggufNumberArray(file: GgufFile, key: string, fallback?: number[]): number[] {
  if (fallback !== undefined && !file.metadata.has(key)) return fallback;
  const v = ggufArray(file, key);
  const bad = v.findIndex((x) => typeof x !== 'number');
  if (bad >= 0)
    throw new Error(
      `GGUF file ${file.path}: metadata key ${key}[${bad}] should be a number, but is ${describe(v[bad])}`,
    );
  return v as number[];
}
