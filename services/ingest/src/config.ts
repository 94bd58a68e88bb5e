import { z } from 'zod';
import { CommonEnvSchema, envBool, envInt, envList, loadConfig } from '@cprec/service-common';

export const IngestEnvSchema = CommonEnvSchema.extend({
  INGEST_PORT: envInt(8101, 1),
  INGEST_GROUP_ID: z.string().min(1).default('cprec-ingest'),
  /** Flush once this many rows are buffered… */
  INGEST_MAX_BATCH_ROWS: envInt(20_000, 1),
  /** …or when the oldest buffered message is this old. */
  INGEST_FLUSH_INTERVAL_MS: envInt(1_000, 1),
  INGEST_MAX_MESSAGE_BYTES: envInt(64 * 1024, 64),
  INGEST_MAX_TITLE_LENGTH: envInt(2_000, 1),
  INGEST_MAX_FUTURE_SKEW_MS: envInt(24 * 3600 * 1000),
  /** Comma-separated accepted domains; empty accepts every well-formed domain. */
  INGEST_DOMAIN_ALLOW_LIST: envList([]),
  INGEST_RECENT_IDS: envInt(500_000),
  INGEST_RETRY_INITIAL_MS: envInt(200, 1),
  INGEST_RETRY_MAX_MS: envInt(10_000, 1),
  /** A new consumer group starts at the oldest retained message (true) or at the newest (false). */
  INGEST_FROM_BEGINNING: envBool(true),
  /** kafkajs `partitionsConsumedConcurrently`: batches of different partitions parsed at once. */
  INGEST_PARTITIONS_CONCURRENTLY: envInt(1, 1),
  /** kafkajs `maxBytesPerPartition`: how much one fetch may return per partition. */
  INGEST_MAX_BYTES_PER_PARTITION: envInt(4 * 1024 * 1024, 1024),
});
export type IngestConfig = z.infer<typeof IngestEnvSchema>;

export const INGEST_CONFIG = Symbol('INGEST_CONFIG');
export const loadIngestConfig = (env: NodeJS.ProcessEnv = process.env): IngestConfig =>
  loadConfig(IngestEnvSchema, env);
