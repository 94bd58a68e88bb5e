/**
 * Every Kafka topic in one place. Each topic is a mailbox of one actor (or a stream of facts
 * one actor publishes); the `.v1` suffix versions the payload schema, so an incompatible
 * schema change gets a new topic rather than breaking old consumers.
 */
export const TOPICS = {
  /** Raw user–item interactions sent by platforms. Consumed by ingest. */
  interactions: 'cprec.interactions.v1',
  /** Item catalogue updates (titles, attributes). Consumed by ingest. */
  items: 'cprec.items.v1',
  /** Input that could not be accepted, with the original bytes and the reason. */
  deadLetter: 'cprec.dead-letter.v1',
  /** Corpus statistics published by the sequencer (new interactions since a watermark). */
  corpusStats: 'cprec.corpus-stats.v1',
  /** Requests to the sequencer (freeze an evaluation split): the sequencer's mailbox. */
  sequencerCommands: 'cprec.sequencer-commands.v1',
  /** Round commands (trigger, cancel): the trainer's mailbox. */
  roundCommands: 'cprec.round-commands.v1',
  /** Round progress and outcome, published by the trainer. */
  roundEvents: 'cprec.round-events.v1',
  /** Adapter lifecycle: published by the trainer, promoted/rejected by the evaluator. */
  adapters: 'cprec.adapters.v1',
  /** Evaluator control: manual promotion requests from the operator. */
  evaluatorCommands: 'cprec.evaluator-commands.v1',
  /** Serving control: rollback requests from the operator. */
  servingCommands: 'cprec.serving-commands.v1',
  /** Drift alerts and HR@1 observations from the evaluator. */
  drift: 'cprec.drift.v1',
} as const;

export type TopicName = (typeof TOPICS)[keyof typeof TOPICS];
export const ALL_TOPICS: readonly TopicName[] = Object.values(TOPICS);
