import { createHash } from 'node:crypto';
import { createReadStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { LORA_TARGET_WEIGHT, LlamaModel, LoraPair, loraKey } from './model';
import { parseSafetensors, serializeSafetensors, TensorToWrite } from './safetensors';
import { ALL_LORA_TARGETS, LoraConfig, LoraTarget, defaultLoraConfig } from './types';
import { mulberry32 } from './weights';

export const ADAPTER_WEIGHTS_FILE = 'adapter.safetensors';
export const ADAPTER_MANIFEST_FILE = 'adapter.json';

/** What an adapter directory says about itself (`adapter.json`). */
export interface LoraManifest {
  format: 'cprec-lora/1';
  /** Identifier of the base model the adapter was trained on (e.g. "stories260K"). */
  baseModelId: string;
  /** sha256 (hex) of the base checkpoint file, so an adapter is never applied to other weights. */
  baseChecksum: string;
  lora: LoraConfig;
  /** ISO-8601 creation time. */
  createdAt: string;
  /** Free-form provenance: round id, parent adapter, data window, metrics... */
  lineage: Record<string, unknown>;
  /** Tensor names stored in adapter.safetensors. */
  tensors: string[];
}

/** sha256 of a file, streamed (checkpoints can be gigabytes). */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  await new Promise<void>((resolve, reject) => {
    createReadStream(path)
      .on('data', (chunk) => hash.update(chunk))
      .on('end', () => resolve())
      .on('error', reject);
  });
  return hash.digest('hex');
}

function targetShape(model: LlamaModel, target: LoraTarget): { out: number; in: number } {
  const s = model.layers[0][LORA_TARGET_WEIGHT[target]].shape as [number, number];
  return { out: s[0], in: s[1] };
}

/**
 * Attaches fresh adapters: A ~ U(−1/√in, 1/√in) (PEFT's kaiming_uniform(a=√5)), B = 0, so the
 * model's outputs are unchanged until B is trained. Replaces any adapters already attached.
 */
export function attachLora(model: LlamaModel, config: Partial<LoraConfig> = {}, seed = 1): LoraConfig {
  const cfg = defaultLoraConfig(config);
  for (const t of cfg.targets)
    if (!ALL_LORA_TARGETS.includes(t))
      throw new Error(`unknown LoRA target "${t}" (expected one of ${ALL_LORA_TARGETS.join(', ')})`);
  if (!Number.isInteger(cfg.rank) || cfg.rank <= 0)
    throw new Error(`LoRA rank must be a positive integer, got ${cfg.rank}`);
  if (cfg.dropout < 0 || cfg.dropout >= 1)
    throw new Error(`LoRA dropout must be in [0, 1), got ${cfg.dropout}`);
  detachLora(model);
  const rand = mulberry32(seed);
  const adapters = new Map<string, LoraPair>();
  for (let l = 0; l < model.config.nLayers; l++) {
    for (const t of cfg.targets) {
      const { out, in: inDim } = targetShape(model, t);
      const bound = 1 / Math.sqrt(inDim);
      const a = new Float32Array(cfg.rank * inDim);
      for (let i = 0; i < a.length; i++) a[i] = (rand() * 2 - 1) * bound;
      adapters.set(loraKey(l, t), {
        a: tf.tidy(() => tf.variable(tf.tensor2d(a, [cfg.rank, inDim]), true)),
        b: tf.tidy(() => tf.variable(tf.zeros([out, cfg.rank]), true)),
      });
    }
  }
  model.lora = { config: cfg, scale: cfg.alpha / cfg.rank, adapters, merged: false, originals: new Map() };
  return cfg;
}

/** Removes adapters (un-merging first if merged) and frees their tensors. */
export function detachLora(model: LlamaModel): void {
  const lora = model.lora;
  if (!lora) return;
  if (lora.merged) unmergeLora(model);
  for (const p of lora.adapters.values()) {
    p.a.dispose();
    p.b.dispose();
  }
  model.lora = null;
}

/**
 * Folds W ← W + (alpha/rank)·B·A into the base weights for serving (one matmul per projection
 * instead of three). The original W are kept so `unmergeLora` restores them exactly. On a model
 * sharing its base with others (`new LlamaModel(base)`) the shared W is never written: the merged
 * projection becomes a private variable of this model and the shared one is what `originals`
 * keeps (so the other models sharing the base are unaffected).
 */
export function mergeLora(model: LlamaModel): void {
  const lora = model.lora;
  if (!lora || lora.merged) return;
  for (const [key, pair] of lora.adapters) {
    const [, layerStr, target] = key.split('.');
    const params = model.layers[Number(layerStr)];
    const name = LORA_TARGET_WEIGHT[target as LoraTarget];
    const w = params[name];
    if (model.borrows(w)) {
      lora.originals.set(key, w);
      params[name] = tf.tidy(() =>
        tf.variable(tf.add(w, tf.mul(tf.matMul(pair.b, pair.a), lora.scale)), false),
      );
      continue;
    }
    lora.originals.set(key, tf.keep(w.clone()));
    tf.tidy(() => w.assign(tf.add(w, tf.mul(tf.matMul(pair.b, pair.a), lora.scale))));
  }
  lora.merged = true;
}

export function unmergeLora(model: LlamaModel): void {
  const lora = model.lora;
  if (!lora || !lora.merged) return;
  for (const [key, orig] of lora.originals) {
    const [, layerStr, target] = key.split('.');
    const params = model.layers[Number(layerStr)];
    const name = LORA_TARGET_WEIGHT[target as LoraTarget];
    if (model.borrows(orig)) {
      // The merged copy was private: drop it and point back at the shared weight.
      params[name].dispose();
      params[name] = orig as tf.Variable;
      continue;
    }
    params[name].assign(orig);
    orig.dispose();
  }
  lora.originals.clear();
  lora.merged = false;
}

export interface SaveAdapterOptions {
  baseModelId: string;
  baseChecksum: string;
  lineage?: Record<string, unknown>;
  createdAt?: Date;
}

/** Writes `adapter.safetensors` + `adapter.json` into `dir` (created if needed). */
export function saveLoraAdapter(model: LlamaModel, dir: string, opts: SaveAdapterOptions): LoraManifest {
  const lora = model.lora;
  if (!lora) throw new Error('model has no LoRA adapters to save');
  const tensors = new Map<string, TensorToWrite>();
  for (const [name, v] of model.loraVariables())
    tensors.set(name, { shape: v.shape, data: (v.dataSync() as Float32Array).slice() });
  const manifest: LoraManifest = {
    format: 'cprec-lora/1',
    baseModelId: opts.baseModelId,
    baseChecksum: opts.baseChecksum,
    lora: { ...lora.config, targets: [...lora.config.targets] },
    createdAt: (opts.createdAt ?? new Date()).toISOString(),
    lineage: opts.lineage ?? {},
    tensors: [...tensors.keys()].sort(),
  };
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, ADAPTER_WEIGHTS_FILE),
    serializeSafetensors(tensors, {
      format: 'pt',
      base_model: opts.baseModelId,
      base_sha256: opts.baseChecksum,
    }),
  );
  writeFileSync(join(dir, ADAPTER_MANIFEST_FILE), JSON.stringify(manifest, null, 2) + '\n');
  return manifest;
}

export function readLoraManifest(dir: string): LoraManifest {
  const m = JSON.parse(readFileSync(join(dir, ADAPTER_MANIFEST_FILE), 'utf8')) as LoraManifest;
  if (m.format !== 'cprec-lora/1') throw new Error(`${dir}: unknown adapter format ${String(m.format)}`);
  return m;
}

/**
 * Loads an adapter directory onto `model` (replacing current adapters). When `expectedBaseChecksum`
 * is given and differs from the manifest, refuses: the adapter was trained on other weights.
 */
export function loadLoraAdapter(
  model: LlamaModel,
  dir: string,
  opts: { expectedBaseChecksum?: string } = {},
): LoraManifest {
  const manifest = readLoraManifest(dir);
  if (opts.expectedBaseChecksum && opts.expectedBaseChecksum !== manifest.baseChecksum) {
    throw new Error(
      `adapter in ${dir} was trained on base ${manifest.baseModelId} (sha256 ${manifest.baseChecksum}), not on the loaded checkpoint (sha256 ${opts.expectedBaseChecksum})`,
    );
  }
  const file = parseSafetensors(readFileSync(join(dir, ADAPTER_WEIGHTS_FILE)));
  attachLora(model, manifest.lora);
  for (const [name, v] of model.loraVariables()) {
    const t = file.tensors.get(name);
    if (!t) throw new Error(`${dir}: adapter tensor ${name} missing`);
    if (t.shape.join(',') !== v.shape.join(','))
      throw new Error(
        `${dir}: adapter tensor ${name} has shape [${t.shape.join(', ')}], model expects [${v.shape.join(', ')}]`,
      );
    tf.tidy(() => v.assign(tf.tensor(t.data, t.shape)));
  }
  return manifest;
}
