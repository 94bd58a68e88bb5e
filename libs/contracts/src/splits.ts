/**
 * Identity of the frozen evaluation splits every actor agrees on. The evaluator scores adapters
 * on the leave-one-out *test* examples of `looSplitId(domain, epoch, seed)`, and the trainer
 * fine-tunes on the *validation* side of the very same split, so a round never trains on a
 * target the evaluator will test (both read the split the sequencer froze under this id).
 */

/** Default epoch of the frozen test split (bump it to freeze a new one). */
export const DEFAULT_SPLIT_EPOCH = '1';

/** Default seed recorded with frozen splits (candidates derive from it). */
export const DEFAULT_SPLIT_SEED = 20_240_501;

/** Split epochs become part of split ids and artefact keys, so they are path- and id-safe. */
export const SPLIT_EPOCH_PATTERN = /^[A-Za-z0-9._-]{1,32}$/;

/** The frozen leave-one-out split of a domain: one per (domain, epoch, seed), shared by every adapter. */
export const looSplitId = (domain: string, epoch: string, seed: number): string =>
  `loo-${domain}-e${epoch}-s${seed}`;
