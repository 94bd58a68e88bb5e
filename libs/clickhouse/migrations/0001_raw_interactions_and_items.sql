-- Raw interactions as ingested from cprec.interactions.v1; written only by the ingest service.
--
-- Deduplication: Kafka delivers at least once, so the same event can be inserted more than once.
-- ReplacingMergeTree collapses rows with an equal ORDER BY key (on merge, or at read time with
-- FINAL). The key ends with event_id, and every other key column (domain, user_id, ts_ms) is a
-- field of the event itself, so a redelivered event has an identical key and collapses, while two
-- distinct events never share a key. This assumes an event_id is never reused for a different
-- event. Partitions are by event month (from ts, also part of the event), so duplicates always
-- share a partition, which FINAL and merges require. The key order serves the sequencer's reads
-- (per domain, per user, in time order).
--
-- seq is the event's position in its source log and breaks ties inside one millisecond;
-- ts is ts_ms truncated to seconds (18.16 has no DateTime64). ingested_at is when ingest wrote
-- the row; the ReplacingMergeTree version picks the newest copy of a redelivered event.
CREATE TABLE IF NOT EXISTS interactions (
    event_id String,
    user_id String,
    item_id String,
    domain String,
    ts DateTime,
    ts_ms UInt64,
    seq UInt64,
    platform String,
    title String,
    ingested_at DateTime,
    ingest_version UInt64
) ENGINE = ReplacingMergeTree(ingest_version)
PARTITION BY toYYYYMM(ts)
ORDER BY (domain, user_id, ts_ms, event_id);

-- Item catalogue per domain; the newest version of an item wins (ReplacingMergeTree(version)).
-- attributes holds a JSON object as text (18.16 has no JSON type).
CREATE TABLE IF NOT EXISTS items (
    item_id String,
    domain String,
    title String,
    attributes String,
    updated_at DateTime,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (domain, item_id);
