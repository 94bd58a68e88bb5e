import 'reflect-metadata';
import { bootstrapService } from '@cprec/service-common';
import { SequencerAppModule } from './app.module';
import { loadSequencerConfig } from './config';

async function main(): Promise<void> {
  const config = loadSequencerConfig();
  await bootstrapService('sequencer', SequencerAppModule, config.SEQUENCER_PORT);
}

void main().catch((err: unknown) => {
  process.stderr.write(`sequencer: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
