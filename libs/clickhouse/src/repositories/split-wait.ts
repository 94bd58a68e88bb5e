import type { EvalSplitRepository } from './splits';

export interface SplitWaitOptions {
  /** Give up after this long (the sequencer may not be running). */
  readonly timeoutMs: number;
  /** How often the split table is read while waiting. */
  readonly pollMs: number;
  /** The request is sent again this often (at least every poll) in case one was lost. Default 10 s. */
  readonly resendMs?: number;
  readonly now?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
}

/**
 * Waits until the sequencer — the one writer of evaluation splits — has frozen `splitId`,
 * asking for it on its mailbox through `request(tsMs)` (the caller builds the command; the
 * sequencer handles requests idempotently per split id, so resending is safe). Throws with the
 * sequencer's reason as soon as it refuses a request sent since the first one, and after
 * `timeoutMs` without an answer. Shared by every reader that needs a split (trainer, evaluator).
 */
export async function awaitFrozenSplit(
  splits: Pick<EvalSplitRepository, 'getSplit' | 'refusalSince'>,
  splitId: string,
  request: (tsMs: number) => Promise<void>,
  options: SplitWaitOptions,
): Promise<void> {
  if (await splits.getSplit(splitId)) return;
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const deadline = now() + options.timeoutMs;
  const resendEveryMs = Math.max(options.pollMs, options.resendMs ?? 10_000);
  let lastSent = Number.NEGATIVE_INFINITY;
  let firstSent = Number.NEGATIVE_INFINITY;
  for (;;) {
    if (now() - lastSent >= resendEveryMs) {
      const ts = now();
      await request(ts);
      lastSent = ts;
      if (firstSent === Number.NEGATIVE_INFINITY) firstSent = ts;
    }
    await sleep(options.pollMs);
    if (await splits.getSplit(splitId)) return;
    const refusal = await splits.refusalSince(splitId, firstSent);
    if (refusal !== null) throw new Error(`the sequencer refused split ${splitId}: ${refusal}`);
    if (now() > deadline)
      throw new Error(
        `the sequencer did not freeze split ${splitId} within ${options.timeoutMs} ms (is it running? it is the one writer of splits)`,
      );
  }
}
