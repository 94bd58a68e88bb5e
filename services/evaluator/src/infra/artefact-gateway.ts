import { existsSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import type { ArtefactStore } from '@cprec/artefacts';
import type { AdapterLineage } from '@cprec/contracts';
import { baseModelChecksum, baseModelFormat, type BaseModelSource } from '@cprec/lm';
import type { BaseModelSpec } from '../evaluation/protocol';
import type { ArtefactPort } from '../ports';

/** Where the trainer stores its tiny random base (services/trainer round-planner TINY_MODEL_KEY). */
export const TINY_MODEL_KEY = 'base-models/tiny-random';

export interface ModelSettings {
  kind: 'checkpoint' | 'tiny-random';
  /** The base by path (ignored for tiny-random). */
  source: BaseModelSource;
}

/**
 * Adapters and base models from the artefact store shared with the trainer: every read is
 * verified (sha256 of every file), an adapter whose published sha256 differs from the stored
 * record is refused, and an adapter trained on another base than the configured one is refused.
 */
export class ArtefactGateway implements ArtefactPort {
  private checkpointSha: string | null = null;

  constructor(
    private readonly store: ArtefactStore,
    private readonly model: ModelSettings,
  ) {}

  async adapterDir(uri: string, sha256: string): Promise<string> {
    const key = this.store.keyOfUri(uri);
    if (key === null) throw new Error(`${uri} is not an artefact of this evaluator's store`);
    const record = await this.store.stat(key);
    if (!record) throw new Error(`artefact ${key} is not in the store`);
    if (record.sha256 !== sha256)
      throw new Error(`artefact ${key} has sha256 ${record.sha256}, but ${sha256} was published`);
    return this.store.localPath(key);
  }

  async baseModel(lineage: Pick<AdapterLineage, 'base_model' | 'base_model_sha256'>): Promise<BaseModelSpec> {
    const spec = await this.configured();
    if (lineage.base_model_sha256 && lineage.base_model_sha256 !== spec.sha256)
      throw new Error(
        `the adapter was trained on base ${lineage.base_model} (sha256 ${lineage.base_model_sha256}); this evaluator runs ${spec.baseModelId} (sha256 ${spec.sha256})`,
      );
    return spec;
  }

  private async configured(): Promise<BaseModelSpec> {
    const m = this.model;
    if (m.kind === 'tiny-random') {
      const record = await this.store.stat(TINY_MODEL_KEY);
      if (!record)
        throw new Error(
          `the tiny-random base ${TINY_MODEL_KEY} is not in the artefact store (the trainer creates it)`,
        );
      const dir = await this.store.localPath(TINY_MODEL_KEY);
      return { kind: 'tiny-random', dir, baseModelId: 'tiny-random', sha256: record.sha256 };
    }
    const { model, tokenizer } = m.source;
    if (!existsSync(model))
      throw new Error(`base model ${model} does not exist (EVALUATOR_BASE_MODEL / CPREC_BASE_MODEL)`);
    if (tokenizer && !existsSync(tokenizer))
      throw new Error(`tokenizer ${tokenizer} does not exist (EVALUATOR_TOKENIZER / CPREC_BASE_TOKENIZER)`);
    baseModelFormat(model);
    this.checkpointSha ??= await baseModelChecksum(m.source);
    return {
      kind: 'checkpoint',
      path: resolve(model),
      ...(tokenizer ? { tokenizer: resolve(tokenizer) } : {}),
      baseModelId: basename(model.replace(/\/+$/, '')),
      sha256: this.checkpointSha,
    };
  }
}
