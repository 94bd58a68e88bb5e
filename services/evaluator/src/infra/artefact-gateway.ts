import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import type { ArtefactStore } from '@cprec/artefacts';
import type { AdapterLineage } from '@cprec/contracts';
import { sha256File } from '@cprec/lm';
import type { BaseModelSpec } from '../evaluation/protocol';
import type { ArtefactPort } from '../ports';

/** Where the trainer stores its tiny random base (services/trainer round-planner TINY_MODEL_KEY). */
export const TINY_MODEL_KEY = 'base-models/tiny-random';

export interface ModelSettings {
  kind: 'llama2c' | 'tiny-random';
  checkpoint: string;
  tokenizer: string;
}

/**
 * Adapters and base models from the artefact store shared with the trainer: every read is
 * verified (sha256 of every file), an adapter whose published sha256 differs from the stored
 * record is refused, and an adapter trained on another base than the configured one is refused.
 */
export class ArtefactGateway implements ArtefactPort {
  private llama2cSha: string | null = null;

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
    if (!existsSync(m.checkpoint))
      throw new Error(`base model ${m.checkpoint} does not exist (EVALUATOR_BASE_MODEL)`);
    if (!existsSync(m.tokenizer))
      throw new Error(`tokenizer ${m.tokenizer} does not exist (EVALUATOR_TOKENIZER)`);
    this.llama2cSha ??= await sha256File(m.checkpoint);
    return {
      kind: 'llama2c',
      checkpoint: m.checkpoint,
      tokenizer: m.tokenizer,
      baseModelId: basename(m.checkpoint),
      sha256: this.llama2cSha,
    };
  }
}
