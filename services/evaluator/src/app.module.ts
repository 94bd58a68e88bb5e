import { Module } from '@nestjs/common';
import {
  clickHouseSettingsFromEnv,
  createClickHouse,
  ensureDatabase,
  runMigrations,
} from '@cprec/clickhouse';
import { HealthRegistry, ObservabilityModule } from '@cprec/service-common';
import { EVALUATOR_CONFIG, loadEvaluatorConfig } from './config';
import { CLICKHOUSE, EvaluatorService } from './evaluator.service';

@Module({
  imports: [ObservabilityModule.forService('evaluator')],
  providers: [
    { provide: EVALUATOR_CONFIG, useFactory: () => loadEvaluatorConfig() },
    {
      provide: CLICKHOUSE,
      useFactory: async () => {
        const settings = clickHouseSettingsFromEnv(process.env, 'evaluator');
        await ensureDatabase(settings);
        await runMigrations(settings);
        return createClickHouse(settings);
      },
    },
    EvaluatorService,
    {
      provide: 'EVALUATOR_HEALTH_REGISTRATION',
      inject: [HealthRegistry, EvaluatorService, CLICKHOUSE],
      useFactory: (
        health: HealthRegistry,
        evaluator: EvaluatorService,
        ch: ReturnType<typeof createClickHouse>,
      ) => {
        health.register(evaluator);
        health.register({
          name: 'clickhouse',
          check: async () => ((await ch.ping()) ? null : 'ping failed'),
        });
        return true;
      },
    },
  ],
})
export class EvaluatorAppModule {}
