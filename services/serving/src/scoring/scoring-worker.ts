import { resolve } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { LocalArtefactStore } from '@cprec/artefacts';
import type { LoadedRecommender, RecommenderRuntime } from '@cprec/training';
import { loadServingBase, selectServingBackend } from '../base-model';
import type { FromWorker, ScoringWorkerData, ToWorker } from './scoring-protocol';
import { loadSmokeTested, servingRuntime } from './serving-runtime';

/**
 * A scoring thread: its own tfjs engine, base model and loaded adapters (by handle), ranking the
 * batches the pool sends it. Messages are handled one at a time in arrival order, so a `dispose`
 * sent after a `rank` never pulls the model from under it.
 */
async function main(): Promise<void> {
  const port = parentPort;
  if (!port) throw new Error('scoring-worker must run as a worker thread');
  const { config } = workerData as ScoringWorkerData;
  const post = (m: FromWorker): void => port.postMessage(m);
  let runtime: RecommenderRuntime;
  try {
    const backend = await selectServingBackend(config);
    const base = await loadServingBase(
      config,
      new LocalArtefactStore(resolve(config.CPREC_HOME, 'artefacts')),
    );
    runtime = servingRuntime(base, config);
    post({ kind: 'ready', backend: backend.backend });
  } catch (err) {
    post({ kind: 'fatal', error: (err as Error).message });
    return;
  }
  const loaded = new Map<number, LoadedRecommender>();
  port.on('message', (m: ToWorker) => {
    if (m.kind === 'dispose') {
      loaded.get(m.handle)?.dispose();
      loaded.delete(m.handle);
      return;
    }
    try {
      if (m.kind === 'load') {
        loaded.set(m.handle, loadSmokeTested(runtime, m.adapterId, m.dir));
        post({ kind: 'loaded', id: m.id });
        return;
      }
      const model = loaded.get(m.handle);
      if (!model) throw new Error(`adapter handle ${m.handle} is not loaded in this worker`);
      post({ kind: 'ranked', id: m.id, results: model.rankBatch(m.requests) });
    } catch (err) {
      post({ kind: 'failed', id: m.id, error: (err as Error).message });
    }
  });
}

void main();
