-- The migrations each plugin shipped that were applied to its tables, and what they said.
CREATE TABLE plugin_migrations (
    plugin        TEXT   NOT NULL,
    version       BIGINT NOT NULL,
    checksum      TEXT   NOT NULL,
    applied_at_ms BIGINT NOT NULL,
    PRIMARY KEY (plugin, version)
);
