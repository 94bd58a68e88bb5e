import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { LlamaModel, LoraConfig, Trainer } from '@cprec/lm';
import { loadLoraAdapter, parseSafetensors, saveLoraAdapter, serializeSafetensors } from '@cprec/lm';
import type { DataVariant } from '../schedule';

export const CHECKPOINT_STATE_FILE = 'state.json';
export const OPTIMIZER_FILE = 'optimizer.safetensors';

/** Everything needed to continue training exactly where a checkpoint was taken. */
export interface CheckpointState {
  format: 'cprec-training-checkpoint/1';
  /** trunk: end of a stable phase (what the next round resumes); progress: mid-phase. */
  kind: 'trunk' | 'progress';
  roundId: string;
  phase: 'stable' | 'annealing';
  /** Optimizer updates since the very first round (the WSA step t of the trunk). */
  globalStep: number;
  /** Steps taken in the current phase of this round. */
  phaseStep: number;
  /** Samples consumed from the current phase's source (resume position). */
  dataPosition: number;
  /** W of the WSA schedule, fixed by the first round. */
  warmupSteps: number;
  /** S and A of this round's schedule (global step numbers). */
  stableEnd: number;
  annealEnd: number;
  /** Interactions up to this watermark are absorbed by the trunk. */
  watermark: number;
  variant: DataVariant;
  lora: LoraConfig;
  baseModelId: string;
  baseChecksum: string;
  createdAt: string;
  /** Trunk lineage: the trunk this one continued from. */
  parentTrunk: string | null;
}

/**
 * Writes adapter weights, optimizer moments and state into `dir` atomically: everything goes to a
 * sibling temp directory that is renamed over `dir`, so a crash mid-write leaves the previous
 * checkpoint intact and never a half-written one.
 */
export function saveCheckpoint(
  dir: string,
  model: LlamaModel,
  trainer: Trainer,
  state: CheckpointState,
): void {
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  saveLoraAdapter(model, tmp, {
    baseModelId: state.baseModelId,
    baseChecksum: state.baseChecksum,
    lineage: { roundId: state.roundId, kind: state.kind, globalStep: state.globalStep },
  });
  const { step, tensors } = trainer.optimizer.stateTensors();
  writeFileSync(join(tmp, OPTIMIZER_FILE), serializeSafetensors(tensors, { step: String(step) }));
  writeFileSync(join(tmp, CHECKPOINT_STATE_FILE), JSON.stringify(state, null, 2) + '\n');
  mkdirSync(dirname(dir), { recursive: true });
  const old = `${dir}.old-${process.pid}`;
  if (existsSync(dir)) renameSync(dir, old);
  renameSync(tmp, dir);
  rmSync(old, { recursive: true, force: true });
}

/**
 * A kill between the two renames of `saveCheckpoint` leaves only `<dir>.old-<pid>`: that complete
 * previous checkpoint is then the one to resume from.
 */
function existingCheckpointDir(dir: string): string {
  if (existsSync(join(dir, CHECKPOINT_STATE_FILE))) return dir;
  const parent = dirname(dir);
  const prefix = `${basename(dir)}.old-`;
  if (existsSync(parent)) {
    const old = readdirSync(parent).find(
      (f) => f.startsWith(prefix) && existsSync(join(parent, f, CHECKPOINT_STATE_FILE)),
    );
    if (old) {
      renameSync(join(parent, old), dir);
      return dir;
    }
  }
  return dir;
}

export function readCheckpointState(dir: string): CheckpointState {
  dir = existingCheckpointDir(dir);
  const state = JSON.parse(readFileSync(join(dir, CHECKPOINT_STATE_FILE), 'utf8')) as CheckpointState;
  if (state.format !== 'cprec-training-checkpoint/1') {
    throw new Error(`${dir}: not a cprec training checkpoint (format ${String(state.format)})`);
  }
  return state;
}

export function hasCheckpoint(dir: string): boolean {
  return existsSync(join(existingCheckpointDir(dir), CHECKPOINT_STATE_FILE));
}

/** Restores adapter weights and optimizer moments from `dir` into `model` and `trainer`. */
export function loadCheckpoint(dir: string, model: LlamaModel, trainer: Trainer): CheckpointState {
  const state = readCheckpointState(dir);
  loadLoraAdapter(model, dir, { expectedBaseChecksum: state.baseChecksum });
  const file = parseSafetensors(readFileSync(join(dir, OPTIMIZER_FILE)));
  const m: Record<string, { shape: number[]; data: Float32Array }> = {};
  const v: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [name, t] of file.tensors) {
    const entry = { shape: [...t.shape], data: t.data };
    if (name.startsWith('m.')) m[name.slice(2)] = entry;
    else if (name.startsWith('v.')) v[name.slice(2)] = entry;
  }
  const step = Number(file.metadata?.step ?? '0');
  trainer.optimizer.setState({ step, m, v });
  return state;
}
