-- The message a parked change came in, so that a change which fails once its restaurant
-- is configured is dead-lettered as itself (its topic, partition, offset, key, bytes and
-- headers), not as the restaurant's configuration. NULL for changes parked before this.
ALTER TABLE parked_changes
    ADD COLUMN source_topic         text,
    ADD COLUMN source_partition     integer,
    ADD COLUMN source_offset        bigint,
    ADD COLUMN source_timestamp_ms  bigint,
    ADD COLUMN source_key           bytea,
    ADD COLUMN source_value         bytea,
    ADD COLUMN source_header_names  text[],
    ADD COLUMN source_header_values bytea[];
