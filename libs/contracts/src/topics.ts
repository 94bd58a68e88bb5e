/**
 * Every Kafka topic in one place. Each topic is a mailbox of one actor (or a stream of facts
 * one actor publishes); the `.v1` suffix versions the payload schema, so an incompatible
 * schema change gets a new topic rather than breaking old consumers.
 *
 * `TOPICS` holds the base names, which an installation uses as they are. A namespace prefix
 * (`CPREC_TOPIC_PREFIX`, e.g. the test tiers' `t.<run>.<suite>.`) puts a whole installation on
 * topics of its own: `topicsFor(prefix)` gives the names every service of that installation uses.
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
  /**
   * What serving did (switch, rollback, refused load, per domain), keyed by the serving replica so
   * one replica's events stay in order. Published by serving (read-only on ClickHouse), stored in
   * `serving_events` by the evaluator, read back by serving at start for what is not stored yet.
   */
  servingEvents: 'cprec.serving-events.v1',
} as const;

export type TopicName = (typeof TOPICS)[keyof typeof TOPICS];
export type TopicKey = keyof typeof TOPICS;
/** The topic names of one installation (base names, or prefixed ones). */
export type Topics = { readonly [K in TopicKey]: string };

export const ALL_TOPICS: readonly TopicName[] = Object.values(TOPICS);

/** Kafka's topic-name alphabet; a prefix leaves room for the longest base name within 249 characters. */
export const TOPIC_PREFIX_PATTERN = /^[A-Za-z0-9._-]{0,200}$/;

/** Throws when `prefix` cannot start a Kafka topic name. */
export function validateTopicPrefix(prefix: string): string {
  if (!TOPIC_PREFIX_PATTERN.test(prefix))
    throw new Error(
      `topic prefix ${JSON.stringify(prefix)} must be at most 200 characters of [A-Za-z0-9._-] (CPREC_TOPIC_PREFIX)`,
    );
  return prefix;
}

/** The topic names of an installation whose topics carry `prefix` (empty: the base names). */
export function topicsFor(prefix: string): Topics {
  validateTopicPrefix(prefix);
  if (prefix === '') return TOPICS;
  return Object.fromEntries(
    Object.entries(TOPICS).map(([k, v]) => [k, `${prefix}${v}`]),
  ) as unknown as Topics;
}

/** Every topic of an installation, in `TOPICS` order. */
export const allTopics = (topics: Topics): string[] => Object.values(topics);
