import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ArtefactStore } from '@cprec/artefacts';
import {
  baseModelChecksum,
  loadBaseModel,
  randomWeights,
  selectBackend,
  type BackendReport,
  type BaseModelSource,
  type LlamaConfig,
} from '@cprec/lm';
import { baseModelSource } from '@cprec/service-common';
import type { BaseModel } from '@cprec/training';
import { WordTokenizer } from '@cprec/training/testing';
import type { ServingConfig } from './config';

/** Where the trainer stores its tiny-random base (services/trainer round-planner: TINY_MODEL_KEY). */
export const TINY_MODEL_KEY = 'base-models/tiny-random';
export const TINY_MODEL_FILE = 'tiny-model.json';

/** `tiny-model.json` as the trainer writes it: enough to rebuild the same weights bit for bit. */
interface TinyModelSpec {
  format: 'cprec-tiny-random/1';
  config: Omit<LlamaConfig, 'vocabSize'>;
  seed: number;
  titles: string[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The base model serving must share with the trainer (adapters name its sha256):
 * - checkpoint: SERVING_BASE_MODEL or CPREC_BASE_MODEL (its sha256, as the trainer computes it);
 * - tiny-random: rebuilt from the trainer's verified artefact (sha256 = the artefact's), waiting
 *   up to SERVING_BASE_WAIT_MS for the trainer to create it.
 */
/** The base's sha256 (what adapters name) without loading its weights. */
export async function servingBaseChecksum(config: ServingConfig, artefacts: ArtefactStore): Promise<string> {
  if (config.SERVING_MODEL !== 'tiny-random') return baseModelChecksum(checkedSource(config));

  return (await awaitTinyModel(config, artefacts)).sha256;
}

/** The trainer's tiny-random base record, waited for up to SERVING_BASE_WAIT_MS. */
async function awaitTinyModel(config: ServingConfig, artefacts: ArtefactStore) {
  const deadline = Date.now() + config.SERVING_BASE_WAIT_MS;
  let record = await artefacts.stat(TINY_MODEL_KEY);
  while (!record) {
    if (Date.now() > deadline)
      throw new Error(
        `the tiny-random base model (${TINY_MODEL_KEY}) is not in the artefact store; start the trainer first`,
      );
    await sleep(1_000);
    record = await artefacts.stat(TINY_MODEL_KEY);
  }
  return record;
}

export async function loadServingBase(config: ServingConfig, artefacts: ArtefactStore): Promise<BaseModel> {
  if (config.SERVING_MODEL !== 'tiny-random') return loadBaseModel(checkedSource(config));
  const record = await awaitTinyModel(config, artefacts);
  const dir = await artefacts.localPath(TINY_MODEL_KEY);
  const spec = JSON.parse(readFileSync(join(dir, TINY_MODEL_FILE), 'utf8')) as TinyModelSpec;
  if (spec.format !== 'cprec-tiny-random/1') throw new Error(`${dir}: not a tiny-random model spec`);
  const tokenizer = WordTokenizer.forTitles(spec.titles);
  return {
    weights: randomWeights({ ...spec.config, vocabSize: tokenizer.vocabSize }, spec.seed),
    tokenizer,
    baseModelId: 'tiny-random',
    baseChecksum: record.sha256,
  };
}

/**
 * Makes SERVING_BACKEND active; for `auto`, the backend measured fastest for this base model when
 * ranking (a decision holds for a model and workload: the trainer's would be for training).
 */
export async function selectServingBackend(config: ServingConfig): Promise<BackendReport> {
  if (config.SERVING_MODEL === 'tiny-random')
    return selectBackend(config.SERVING_BACKEND, { workload: 'infer' });
  return selectBackend(config.SERVING_BACKEND, { model: checkedSource(config).model, workload: 'infer' });
}

/** SERVING_BASE_MODEL / SERVING_TOKENIZER, else the installation's CPREC_BASE_MODEL, checked to exist. */
function checkedSource(config: ServingConfig): BaseModelSource {
  const source = baseModelSource(config, {
    model: config.SERVING_BASE_MODEL,
    tokenizer: config.SERVING_TOKENIZER,
  });
  if (!existsSync(source.model))
    throw new Error(`base model ${source.model} does not exist (SERVING_BASE_MODEL / CPREC_BASE_MODEL)`);
  if (source.tokenizer && !existsSync(source.tokenizer))
    throw new Error(
      `tokenizer ${source.tokenizer} does not exist (SERVING_TOKENIZER / CPREC_BASE_TOKENIZER)`,
    );
  return source;
}
