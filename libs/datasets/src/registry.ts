import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { DatasetFormat, Dataset } from './model';
import { amazon2014LinkedDataset } from './loaders/amazon2014-linked';
import { amazonRawDataset } from './loaders/amazon-raw';
import { detectRecBolePrefix, recBoleDataset } from './loaders/recbole';
import { seqRecJsonlDataset } from './loaders/seqrec-jsonl';
import { domainSlug } from './text';

export interface DatasetSpec {
  /** A dataset folder, e.g. `../shared/data/amazon2018-game`. */
  path: string;
  /** Detected from the folder's files when omitted. */
  format?: Exclude<DatasetFormat, 'synthetic'>;
  /** Name used in event ids; default: the folder name. */
  name?: string;
  /** Domain slug for single-domain formats; default: derived from the name (`amazon2018-game` → `game`). */
  domain?: string;
  /** Domain filter for amazon2014-linked (e.g. only the titled ones). */
  domains?: readonly string[];
  platform?: string;
}

/** Which layout a folder holds, judged by its file names. */
export function detectFormat(path: string): Exclude<DatasetFormat, 'synthetic'> {
  if (!existsSync(path) || !statSync(path).isDirectory()) throw new Error(`${path}: not a folder`);
  if (
    existsSync(join(path, 'derived', 'interactions.jsonl.gz')) &&
    existsSync(join(path, 'derived', 'items.jsonl.gz'))
  ) {
    return 'amazon2014-linked';
  }
  if (existsSync(join(path, 'derived', 'user2item.jsonl.gz'))) return 'seqrec-jsonl';
  const files = readdirSync(path);
  if (files.some((f) => f.endsWith('.inter'))) return 'recbole';
  if (files.some((f) => /\.json(\.gz)?$/u.test(f))) return 'amazon-raw-json';
  throw new Error(
    `${path}: unknown dataset layout (expected derived/user2item.jsonl.gz, derived/interactions.jsonl.gz, *.inter or Amazon *.json[.gz] files)`,
  );
}

/**
 * Amazon raw folders: the metadata file is the one named `meta_*`; the reviews file is the other
 * JSON dump (`reviews_*` for 2014, `<Category>.json[.gz]` / `<Category>_5.json[.gz]` for 2018).
 */
function amazonRawFiles(path: string): { reviews: string; meta?: string } {
  const dumps = readdirSync(path)
    .filter((f) => /\.json(\.gz)?$/u.test(f))
    .sort();
  const meta = dumps.find((f) => f.startsWith('meta'));
  const reviews = dumps.filter((f) => f !== meta);
  if (reviews.length !== 1)
    throw new Error(
      `${path}: expected exactly one reviews dump besides meta_*, found ${reviews.join(', ') || 'none'}`,
    );
  return { reviews: join(path, reviews[0]!), ...(meta ? { meta: join(path, meta) } : {}) };
}

/** Opens a dataset folder as event streams; `--dataset PATH` in the CLI goes through here. */
export function openDataset(spec: DatasetSpec): Dataset {
  const path = resolve(spec.path);
  const format = spec.format ?? detectFormat(path);
  const name = spec.name ?? basename(path);
  const platform = spec.platform;
  const common = platform === undefined ? {} : { platform };
  switch (format) {
    case 'seqrec-jsonl':
      return seqRecJsonlDataset({
        dir: path,
        dataset: name,
        domain: spec.domain ?? domainSlug(name),
        ...common,
      });
    case 'amazon2014-linked':
      return amazon2014LinkedDataset({
        dir: path,
        dataset: name,
        ...(spec.domains ? { domains: spec.domains } : {}),
        ...common,
      });
    case 'recbole': {
      const prefix = detectRecBolePrefix(path);
      if (!prefix) throw new Error(`${path}: no RecBole .inter file found`);
      return recBoleDataset({
        dir: path,
        prefix,
        dataset: name,
        domain: spec.domain ?? domainSlug(prefix),
        ...common,
      });
    }
    case 'amazon-raw-json':
      return amazonRawDataset({
        ...amazonRawFiles(path),
        dataset: name,
        domain: spec.domain ?? domainSlug(name),
        ...common,
      });
  }
}
