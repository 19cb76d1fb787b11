-- Pruning past retention takes the oldest rows first, by their age (storage.retention).
-- Without an index on it each small batch searched the table, which holds the whole dedupe
-- window's traffic (bench.soak: ~100 rows read per change after five minutes).
-- On a large existing table, create these CONCURRENTLY before upgrading: IF NOT EXISTS
-- then makes this migration a no-op instead of a write lock for the build.
CREATE INDEX IF NOT EXISTS processed_events_by_age ON processed_events (processed_at);
CREATE INDEX IF NOT EXISTS submissions_by_age ON submissions (created_at);
