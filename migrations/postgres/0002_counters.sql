-- Write-behind counters: one running total per (plugin, counter, subject), with the thread
-- it belongs to (a new thread restarts the total).
CREATE TABLE counters (
    plugin     TEXT    NOT NULL,
    counter    TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    thread_id  TEXT    NOT NULL,
    total      BIGINT  NOT NULL,
    updated_at BIGINT  NOT NULL,
    PRIMARY KEY (plugin, counter, subject)
);
