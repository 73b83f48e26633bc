-- Every write of a counter counts up its version: copies of the total cached in Redis by
-- several hosts land in any order, and the latest version wins.
ALTER TABLE counters ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
