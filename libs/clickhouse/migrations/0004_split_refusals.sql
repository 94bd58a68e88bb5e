-- Split requests the sequencer refused, so the requester stops waiting and says why instead of
-- timing out. One writer: the sequencer. A refusal names the requester's own `ts` of the request
-- it answers (request_ts_ms), so a requester only heeds refusals of requests it sent itself after
-- it started waiting, never a stale one (a split refused for lack of data may succeed later).
CREATE TABLE IF NOT EXISTS split_refusals (
    split_id String,
    reason String,
    request_ts_ms UInt64,
    refused_ms UInt64
) ENGINE = ReplacingMergeTree(refused_ms)
ORDER BY (split_id, request_ts_ms);
