import { Module } from '@nestjs/common';
import { awaitMigrations, clickHouseSettingsFromEnv, createClickHouse } from '@cprec/clickhouse';
import { HealthRegistry, ObservabilityModule } from '@cprec/service-common';
import { loadServingConfig, SERVING_CONFIG } from './config';
import { ServingController } from './serving.controller';
import { CLICKHOUSE, ServingService } from './serving.service';
import { ServingTokenGuard } from './serving-token.guard';

@Module({
  imports: [ObservabilityModule.forService('serving')],
  controllers: [ServingController],
  providers: [
    { provide: SERVING_CONFIG, useFactory: () => loadServingConfig() },
    {
      provide: CLICKHOUSE,
      useFactory: async () => {
        const settings = clickHouseSettingsFromEnv(process.env, 'serving');
        // Read-only on ClickHouse: the writers (and infra/local/up) migrate, serving waits.
        await awaitMigrations(settings);
        return createClickHouse(settings);
      },
    },
    ServingService,
    ServingTokenGuard,
    {
      provide: 'SERVING_HEALTH_REGISTRATION',
      inject: [HealthRegistry, ServingService, CLICKHOUSE],
      useFactory: (
        health: HealthRegistry,
        serving: ServingService,
        ch: ReturnType<typeof createClickHouse>,
      ) => {
        health.register(serving);
        health.register({
          name: 'clickhouse',
          check: async () => ((await ch.ping()) ? null : 'ping failed'),
        });
        return true;
      },
    },
  ],
})
export class ServingAppModule {}
