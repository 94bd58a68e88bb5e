import 'reflect-metadata';
import { bootstrapService } from '@cprec/service-common';
import { EvaluatorAppModule } from './app.module';
import { loadEvaluatorConfig } from './config';

async function main(): Promise<void> {
  const config = loadEvaluatorConfig();
  await bootstrapService('evaluator', EvaluatorAppModule, config.EVALUATOR_PORT);
}

void main().catch((err: unknown) => {
  process.stderr.write(`evaluator: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
