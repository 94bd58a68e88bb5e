import { z } from 'zod';
import { GroupLease, leaseValidityFor } from '@cprec/messaging';
import { CommonEnvSchema, envBool, envInt, loadConfig } from '@cprec/service-common';

export const SequencerEnvSchema = CommonEnvSchema.extend({
  SEQUENCER_PORT: envInt(8102, 1),
  /** Pause between incremental rebuilds. */
  SEQUENCER_INTERVAL_MS: envInt(5_000, 1),
  /**
   * Rows ingested this long before the previous watermark are rebuilt again, and the watermark
   * stays this far behind "now" (late-visible inserts, ingest clock skew). See docs/sequencer.md.
   */
  SEQUENCER_SAFETY_MARGIN_MS: envInt(10_000),
  /** Back-off after a failed round (ClickHouse or Kafka outage): doubles up to the max. */
  SEQUENCER_RETRY_INITIAL_MS: envInt(500, 1),
  SEQUENCER_RETRY_MAX_MS: envInt(30_000, 1),
  /** Client id of the CorpusStats producer. */
  SEQUENCER_CLIENT_ID: z.string().min(1).default('cprec-sequencer'),
  /** A new split-request consumer group starts at the oldest retained request (true) or the newest. */
  SEQUENCER_FROM_BEGINNING: envBool(true),
  /**
   * Split requests older than this are dropped (a new consumer group replays the mailbox; a
   * requester still waiting re-sends its request every few polls).
   */
  SEQUENCER_COMMAND_MAX_AGE_MS: envInt(3_600_000, 1),
  /**
   * One active sequencer (docs/scaling.md, "Leases"): the replica Kafka's group assignment gives
   * the split-request partition rebuilds, publishes and freezes splits; the others wait and take
   * over when it dies. Off (the default for a single sequencer; `npm start --replicas
   * sequencer=N` and the cluster tests turn it on): every replica acts, and a start needs no
   * group join before the first rebuild.
   */
  SEQUENCER_LEASE: envBool(false),
  /** Group session timeout: how long a dead active sequencer keeps the lease. */
  SEQUENCER_LEASE_SESSION_MS: envInt(30_000, 1_000),
  SEQUENCER_LEASE_HEARTBEAT_MS: envInt(3_000, 100),
  /** How long the lease counts as held after a confirmation (0 = half the session timeout). */
  SEQUENCER_LEASE_VALIDITY_MS: envInt(0, 0),
});
export type SequencerConfig = z.infer<typeof SequencerEnvSchema>;

export const SEQUENCER_CONFIG = Symbol('SEQUENCER_CONFIG');
export const loadSequencerConfig = (env: NodeJS.ProcessEnv = process.env): SequencerConfig =>
  loadConfig(SequencerEnvSchema, env);

/** The replica's lease (null with SEQUENCER_LEASE off), shared by the loop and the mailbox. */
export interface SequencerLeaseHolder {
  lease: GroupLease | null;
}
export const SEQUENCER_LEASE = Symbol('SEQUENCER_LEASE');

export const sequencerLease = (c: SequencerConfig): SequencerLeaseHolder => ({
  lease: c.SEQUENCER_LEASE
    ? new GroupLease({
        validityMs: leaseValidityFor(c.SEQUENCER_LEASE_SESSION_MS, c.SEQUENCER_LEASE_VALIDITY_MS),
      })
    : null,
});
