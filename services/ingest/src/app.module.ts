import { Module } from '@nestjs/common';
import {
  clickHouseProblem,
  clickHouseSettingsFromEnv,
  createClickHouse,
  ensureDatabase,
  InteractionRepository,
  ItemRepository,
  runMigrations,
} from '@cprec/clickhouse';
import { HealthRegistry, ObservabilityModule } from '@cprec/service-common';
import { ClickHouseIngestStore } from './clickhouse-ingest.store';
import { INGEST_CONFIG, loadIngestConfig } from './config';
import { INGEST_DEPENDENCIES, INGEST_STORE, IngestConsumerService } from './ingest-consumer.service';

const CLICKHOUSE = Symbol('CLICKHOUSE');

@Module({
  imports: [ObservabilityModule.forService('ingest')],
  providers: [
    { provide: INGEST_CONFIG, useFactory: () => loadIngestConfig() },
    {
      provide: CLICKHOUSE,
      useFactory: async () => {
        const settings = clickHouseSettingsFromEnv(process.env, 'ingest');
        await ensureDatabase(settings);
        await runMigrations(settings);
        return createClickHouse(settings);
      },
    },
    {
      provide: INGEST_STORE,
      inject: [CLICKHOUSE],
      useFactory: (ch: ReturnType<typeof createClickHouse>) =>
        new ClickHouseIngestStore(new InteractionRepository(ch), new ItemRepository(ch)),
    },
    {
      provide: INGEST_DEPENDENCIES,
      inject: [CLICKHOUSE],
      useFactory: (ch: ReturnType<typeof createClickHouse>) => () => clickHouseProblem(() => ch.ping()),
    },
    IngestConsumerService,
    {
      provide: 'INGEST_HEALTH_REGISTRATION',
      inject: [HealthRegistry, IngestConsumerService, CLICKHOUSE],
      useFactory: (
        health: HealthRegistry,
        consumer: IngestConsumerService,
        ch: ReturnType<typeof createClickHouse>,
      ) => {
        health.register(consumer);
        health.register({
          name: 'clickhouse',
          check: async () => ((await ch.ping()) ? null : 'ping failed'),
        });
        return true;
      },
    },
  ],
})
export class IngestAppModule {}
