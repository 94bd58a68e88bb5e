-- Behavioural corpus: sequences, rebuild watermarks and frozen evaluation splits.
-- One writer for every table here: the sequencer service (docs/sequencer.md). Readers (trainer,
-- evaluator) use FINAL or the repositories in libs/clickhouse/src/repositories.
--
-- Sequences are snapshots rebuilt per touched user with INSERT ... SELECT from `interactions`;
-- a rebuilt row replaces the previous one of the same key (ReplacingMergeTree(version), version =
-- the rebuild's number, strictly increasing). Parallel arrays hold one entry per item in the
-- documented order (ts_ms, seq, event_id) after the exact-duplicate rule; ingested_ms is the
-- ingest_version of the event's latest copy (the one merges keep), which is what "samples since
-- watermark w" filters on.

-- Per (user, domain): the user's items of that domain. Keyed by domain first: readers scan one
-- or a few domains at a time.
CREATE TABLE IF NOT EXISTS domain_sequences (
    domain String,
    user_id String,
    item_ids Array(String),
    ts_ms Array(UInt64),
    seqs Array(UInt64),
    event_ids Array(String),
    ingested_ms Array(UInt64),
    n UInt32,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (domain, user_id);

-- Per user: the items of every domain merged in the same order; domains[i] is item i's domain.
CREATE TABLE IF NOT EXISTS mixed_sequences (
    user_id String,
    domains Array(String),
    item_ids Array(String),
    ts_ms Array(UInt64),
    seqs Array(UInt64),
    event_ids Array(String),
    ingested_ms Array(UInt64),
    n UInt32,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY user_id;

-- One row per completed rebuild (a log; the row with the highest version is current).
-- watermark_ms: every interaction first ingested at or before it is in the sequence tables.
CREATE TABLE IF NOT EXISTS sequencer_watermarks (
    version UInt64,
    watermark_ms UInt64,
    previous_watermark_ms UInt64,
    max_ingest_ms UInt64,
    full_rebuild UInt8,
    users_rebuilt UInt64,
    duration_ms UInt64,
    created_ms UInt64,
    created_at DateTime
) ENGINE = MergeTree
ORDER BY version;

-- Frozen evaluation splits: one row per split (written after all its examples, so a split whose
-- row exists is complete).
CREATE TABLE IF NOT EXISTS eval_splits (
    split_id String,
    split_kind String,
    domains Array(String),
    seed Int64,
    window_start_ms UInt64,
    window_end_ms UInt64,
    watermark_ms UInt64,
    examples UInt64,
    created_ms UInt64
) ENGINE = ReplacingMergeTree(created_ms)
ORDER BY split_id;

-- The examples of each split: kind 'loo-test' | 'loo-valid' | 'window'; candidates = target +
-- negatives, shuffled with `seed` (derived per example from the split's seed, libs/corpus).
CREATE TABLE IF NOT EXISTS eval_examples (
    split_id String,
    kind String,
    domain String,
    user_id String,
    history Array(String),
    target String,
    target_event_id String,
    target_ts_ms UInt64,
    candidates Array(String),
    seed Int64,
    window_start_ms UInt64,
    window_end_ms UInt64,
    created_ms UInt64
) ENGINE = ReplacingMergeTree(created_ms)
ORDER BY (split_id, domain, kind, user_id);
