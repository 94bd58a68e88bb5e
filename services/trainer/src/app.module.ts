import { Module } from '@nestjs/common';
import {
  clickHouseSettingsFromEnv,
  createClickHouse,
  ensureDatabase,
  runMigrations,
} from '@cprec/clickhouse';
import { HealthRegistry, ObservabilityModule } from '@cprec/service-common';
import { loadTrainerConfig, TRAINER_CONFIG } from './config';
import { CLICKHOUSE, CLICKHOUSE_SETTINGS, TrainerService } from './trainer.service';

@Module({
  imports: [ObservabilityModule.forService('trainer')],
  providers: [
    { provide: TRAINER_CONFIG, useFactory: () => loadTrainerConfig() },
    { provide: CLICKHOUSE_SETTINGS, useFactory: () => clickHouseSettingsFromEnv(process.env, 'trainer') },
    {
      provide: CLICKHOUSE,
      inject: [CLICKHOUSE_SETTINGS],
      useFactory: async (settings: ReturnType<typeof clickHouseSettingsFromEnv>) => {
        await ensureDatabase(settings);
        await runMigrations(settings);
        return createClickHouse(settings);
      },
    },
    TrainerService,
    {
      provide: 'TRAINER_HEALTH_REGISTRATION',
      inject: [HealthRegistry, TrainerService, CLICKHOUSE],
      useFactory: (
        health: HealthRegistry,
        trainer: TrainerService,
        ch: ReturnType<typeof createClickHouse>,
      ) => {
        health.register(trainer);
        health.register({
          name: 'clickhouse',
          check: async () => ((await ch.ping()) ? null : 'ping failed'),
        });
        return true;
      },
    },
  ],
})
export class TrainerAppModule {}
