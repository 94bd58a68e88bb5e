import { Module } from '@nestjs/common';
import { clickHouseSettingsFromEnv, createClickHouse } from '@cprec/clickhouse';
import { HealthRegistry, ObservabilityModule } from '@cprec/service-common';
import {
  loadSequencerConfig,
  SEQUENCER_CONFIG,
  SEQUENCER_LEASE,
  sequencerLease,
  type SequencerConfig,
} from './config';
import { SEQUENCER_CLICKHOUSE, SEQUENCER_CLICKHOUSE_SETTINGS, SequencerService } from './sequencer.service';
import { SplitRequestsService } from './split-requests.service';

@Module({
  imports: [ObservabilityModule.forService('sequencer')],
  providers: [
    { provide: SEQUENCER_CONFIG, useFactory: () => loadSequencerConfig() },
    {
      provide: SEQUENCER_LEASE,
      inject: [SEQUENCER_CONFIG],
      useFactory: (c: SequencerConfig) => sequencerLease(c),
    },
    {
      provide: SEQUENCER_CLICKHOUSE_SETTINGS,
      useFactory: () => clickHouseSettingsFromEnv(process.env, 'sequencer'),
    },
    // Creating the client does not connect: the database may not exist yet (rounds create it).
    {
      provide: SEQUENCER_CLICKHOUSE,
      inject: [SEQUENCER_CLICKHOUSE_SETTINGS],
      useFactory: (settings: ReturnType<typeof clickHouseSettingsFromEnv>) => createClickHouse(settings),
    },
    SequencerService,
    SplitRequestsService,
    {
      provide: 'SEQUENCER_HEALTH_REGISTRATION',
      inject: [HealthRegistry, SequencerService, SplitRequestsService],
      useFactory: (health: HealthRegistry, sequencer: SequencerService, splits: SplitRequestsService) => {
        health.register(sequencer);
        health.register(splits);
        return true;
      },
    },
  ],
})
export class SequencerAppModule {}
