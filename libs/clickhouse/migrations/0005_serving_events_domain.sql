-- Serving holds one adapter per target domain: every switch / rollback / refused load names the
-- domain it applies to. Rows written before this migration keep domain '' and mean "every
-- domain" (serving then had one adapter for all of them); readers treat them so.
-- The domain joins the sorting key so that one adapter switched in for two domains in the same
-- millisecond stays two rows under FINAL. Plain ADD COLUMN without DEFAULT and without IF NOT
-- EXISTS: ClickHouse 18.16 refuses both here (a defaulted column cannot enter the sorting key,
-- and IF NOT EXISTS is newer syntax); the migration runner applies each version once.
ALTER TABLE serving_events
    ADD COLUMN domain String AFTER event,
    MODIFY ORDER BY (ts_ms, event, adapter_id, domain);
