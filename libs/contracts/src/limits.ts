/** Acceptance limits applied on top of the schemas; the ingest service reads them from config. */
export interface ContractLimits {
  /** Largest accepted message in bytes (the raw Kafka value). */
  maxMessageBytes: number;
  /** Longest accepted item title in characters. */
  maxTitleLength: number;
  /** How far into the future (ms, relative to `now`) an event timestamp may lie. */
  maxFutureSkewMs: number;
  /** When non-empty, only these domains are accepted. */
  domainAllowList: readonly string[];
  /** Clock used for the future-timestamp check (injectable for tests). */
  now: () => number;
}

export const DEFAULT_LIMITS: ContractLimits = {
  maxMessageBytes: 64 * 1024,
  maxTitleLength: 2000,
  maxFutureSkewMs: 24 * 3600 * 1000,
  domainAllowList: [],
  now: () => Date.now(),
};
