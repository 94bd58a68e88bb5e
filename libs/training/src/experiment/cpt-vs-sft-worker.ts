import { parentPort, workerData } from 'node:worker_threads';
import { selectBackend } from '@cprec/lm';
import { quickSyntheticComparison, runCptVsSft, type CptVsSftResult } from './cpt-vs-sft';

/** What `cpt-vs-sft-worker` takes: the seed of `quickSyntheticComparison`. */
export interface CptVsSftWorkerData {
  seed: number;
}

/** What it posts back, once. */
export type CptVsSftWorkerMessage =
  { kind: 'result'; result: CptVsSftResult } | { kind: 'error'; error: string };

/**
 * One seed of the CPT-vs-SFT comparison in a worker thread (its own tfjs engine), so the unit
 * spec runs its seeds side by side on separate cores and still compares them in one process.
 * Same backend choice as the spec's own thread: `auto`, which must give the native kernels.
 */
async function main(): Promise<void> {
  const port = parentPort;
  if (!port) throw new Error('cpt-vs-sft-worker must run as a worker thread');
  const { seed } = workerData as CptVsSftWorkerData;
  const post = (m: CptVsSftWorkerMessage): void => port.postMessage(m);
  try {
    const backend = await selectBackend('auto');
    if (!backend.nativeKernels)
      throw new Error('the experiment needs the native kernels (bash scripts/build-native.sh)');
    post({ kind: 'result', result: await runCptVsSft(quickSyntheticComparison(seed)) });
  } catch (err) {
    post({ kind: 'error', error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  }
}

void main();
