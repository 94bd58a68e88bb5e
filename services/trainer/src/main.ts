import 'reflect-metadata';
import { bootstrapService } from '@cprec/service-common';
import { TrainerAppModule } from './app.module';
import { loadTrainerConfig } from './config';

async function main(): Promise<void> {
  const config = loadTrainerConfig();
  await bootstrapService('trainer', TrainerAppModule, config.TRAINER_PORT);
}

void main().catch((err: unknown) => {
  process.stderr.write(`trainer: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
