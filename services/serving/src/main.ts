// Before the native kernels load OpenBLAS (it reads this once): a multi-threaded BLAS busy-waits
// its threads between the small matmuls of a request, which doubled the CPU per request on the
// shared 2-core machine (bench/serving/scoring-profile.ts: 146 → 72 ms CPU) and competes with the
// event loop. Parallelism comes from requests, not from inside one small matmul.
process.env.OPENBLAS_NUM_THREADS ??= '1';
import 'reflect-metadata';
import { bootstrapService } from '@cprec/service-common';
import { ServingAppModule } from './app.module';
import { loadServingConfig } from './config';

async function main(): Promise<void> {
  const config = loadServingConfig();
  await bootstrapService('serving', ServingAppModule, config.SERVING_PORT);
}

void main().catch((err: unknown) => {
  process.stderr.write(`serving: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
