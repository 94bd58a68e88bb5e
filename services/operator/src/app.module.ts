import { randomUUID } from 'node:crypto';
import { Module } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import {
  awaitMigrations,
  ClickHouse,
  clickHouseSettingsFromEnv,
  ControlPlaneRepository,
  createClickHouse,
} from '@cprec/clickhouse';
import { createKafka, kafkaSettingsFromEnv } from '@cprec/messaging';
import { HealthRegistry, ObservabilityModule, topicsOf } from '@cprec/service-common';
import { loadOperatorConfig, OPERATOR_CONFIG, type OperatorConfig } from './config';
import { AdaptersController } from './http/adapters.controller';
import { UseCaseErrorFilter } from './http/errors.filter';
import { MonitoringController } from './http/monitoring.controller';
import { OperatorTokenGuard } from './http/operator-token.guard';
import { RoundsController } from './http/rounds.controller';
import { KafkaCommandPublisher } from './kafka/kafka-command.publisher';
import { CLOCK, COMMAND_PUBLISHER, CONTROL_PLANE_LOOKUP, ID_GENERATOR } from './ports';
import { CONTROL_PLANE_REPOSITORY, OperatorQueries } from './queries/operator.queries';
import { ClickHouseStreamClock, STREAM_CLOCK } from './queries/stream-clock';
import { CancelRound } from './use-cases/cancel-round/cancel-round.usecase';
import { PromoteAdapter } from './use-cases/promote-adapter/promote-adapter.usecase';
import { RollbackServing } from './use-cases/rollback-serving/rollback-serving.usecase';
import { TriggerRound } from './use-cases/trigger-round/trigger-round.usecase';

const CLICKHOUSE = Symbol('CLICKHOUSE');

@Module({
  imports: [ObservabilityModule.forService('operator')],
  controllers: [RoundsController, AdaptersController, MonitoringController],
  providers: [
    { provide: OPERATOR_CONFIG, useFactory: () => loadOperatorConfig() },
    {
      provide: CLICKHOUSE,
      useFactory: async () => {
        const settings = clickHouseSettingsFromEnv(process.env, 'operator');
        // Read-only on ClickHouse: the writers (and infra/local/up) migrate, the operator waits.
        await awaitMigrations(settings);
        return createClickHouse(settings);
      },
    },
    {
      provide: CONTROL_PLANE_REPOSITORY,
      inject: [CLICKHOUSE],
      useFactory: (ch: ClickHouse) => new ControlPlaneRepository(ch),
    },
    { provide: CONTROL_PLANE_LOOKUP, useExisting: CONTROL_PLANE_REPOSITORY },
    {
      provide: STREAM_CLOCK,
      inject: [CLICKHOUSE],
      useFactory: (ch: ClickHouse) => new ClickHouseStreamClock(ch),
    },
    {
      provide: KafkaCommandPublisher,
      inject: [OPERATOR_CONFIG],
      useFactory: (config: OperatorConfig) =>
        new KafkaCommandPublisher(
          createKafka(kafkaSettingsFromEnv('cprec-operator', process.env, 'operator')),
          topicsOf(config),
        ),
    },
    { provide: COMMAND_PUBLISHER, useExisting: KafkaCommandPublisher },
    { provide: CLOCK, useValue: { now: () => Date.now() } },
    { provide: ID_GENERATOR, useValue: { next: () => randomUUID() } },
    { provide: APP_FILTER, useClass: UseCaseErrorFilter },
    OperatorTokenGuard,
    OperatorQueries,
    TriggerRound,
    CancelRound,
    PromoteAdapter,
    RollbackServing,
    {
      provide: 'OPERATOR_HEALTH_REGISTRATION',
      inject: [HealthRegistry, KafkaCommandPublisher, CLICKHOUSE],
      useFactory: (health: HealthRegistry, kafka: KafkaCommandPublisher, ch: ClickHouse) => {
        health.register(kafka);
        health.register({
          name: 'clickhouse',
          check: async () => ((await ch.ping()) ? null : 'ping failed'),
        });
        return true;
      },
    },
  ],
})
export class OperatorAppModule {}
