-- Control plane: rounds, adapters, evaluations, promotions and drift.
-- One writer per table (DEVELOPERS.md): the trainer writes rounds, round_steps and adapters; the
-- evaluator writes evaluations, promotions, drift_series and drift_alerts; serving writes
-- serving_events. Everyone else reads. Timestamps are DateTime plus integer milliseconds
-- (18.16 has no DateTime64); JSON documents are stored as String.

-- Latest state of each round: every state change inserts a new row with a higher version.
CREATE TABLE IF NOT EXISTS rounds (
    round_id String,
    state String,
    step UInt64,
    total_steps UInt64,
    loss Float64,
    lr Float64,
    message String,
    target_domains Array(String),
    requested_by String,
    created_ms UInt64,
    updated_ms UInt64,
    updated_at DateTime,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY round_id;

-- Per-step training curve of a round (loss and learning rate by phase).
CREATE TABLE IF NOT EXISTS round_steps (
    round_id String,
    phase String,
    step UInt64,
    loss Float64,
    lr Float64,
    tokens UInt64,
    ts_ms UInt64,
    ts DateTime
) ENGINE = ReplacingMergeTree(ts_ms)
PARTITION BY toYYYYMM(ts)
ORDER BY (round_id, phase, step);

-- Every adapter the trainer has written (CPT branches and per-domain SFT adapters).
CREATE TABLE IF NOT EXISTS adapters (
    adapter_id String,
    adapter_kind String,
    round_id String,
    target_domains Array(String),
    uri String,
    sha256 String,
    lineage String,
    created_ms UInt64,
    created_at DateTime
) ENGINE = ReplacingMergeTree(created_ms)
ORDER BY adapter_id;

-- Offline evaluation results: one row per (adapter, split, domain) run.
CREATE TABLE IF NOT EXISTS evaluations (
    evaluation_id String,
    adapter_id String,
    split_id String,
    domain String,
    method String,
    samples UInt64,
    hr1 Float64,
    hr1_valid Float64,
    valid_ratio Float64,
    hr3 Float64,
    hr5 Float64,
    ndcg3 Float64,
    ndcg5 Float64,
    report String,
    created_ms UInt64,
    created_at DateTime
) ENGINE = ReplacingMergeTree(created_ms)
ORDER BY (adapter_id, split_id, domain, method, evaluation_id);

-- Gate decisions: promoted or rejected, with reasons (JSON array of strings).
CREATE TABLE IF NOT EXISTS promotions (
    adapter_id String,
    decision String,
    reasons String,
    hr1 String,
    ts_ms UInt64,
    ts DateTime
) ENGINE = ReplacingMergeTree(ts_ms)
ORDER BY (adapter_id, decision, ts_ms);

-- HR@1 of the serving adapter on time-window splits, per domain.
CREATE TABLE IF NOT EXISTS drift_series (
    adapter_id String,
    domain String,
    window_start_ms UInt64,
    window_end_ms UInt64,
    hr1 Float64,
    samples UInt64,
    ts_ms UInt64,
    ts DateTime
) ENGINE = ReplacingMergeTree(ts_ms)
ORDER BY (domain, window_end_ms, adapter_id);

CREATE TABLE IF NOT EXISTS drift_alerts (
    adapter_id String,
    domain String,
    hr1 Float64,
    baseline_hr1 Float64,
    relative_drop Float64,
    samples UInt64,
    refresh_requested UInt8,
    ts_ms UInt64,
    ts DateTime
) ENGINE = ReplacingMergeTree(ts_ms)
ORDER BY (domain, ts_ms, adapter_id);

-- What serving did: adapter switches (hot swap, rollback) and refused loads.
CREATE TABLE IF NOT EXISTS serving_events (
    event String,
    adapter_id String,
    previous_adapter_id String,
    detail String,
    ts_ms UInt64,
    ts DateTime
) ENGINE = ReplacingMergeTree(ts_ms)
ORDER BY (ts_ms, event, adapter_id);
