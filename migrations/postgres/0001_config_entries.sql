-- The config store: one JSON document per (plugin, scope, scope id).
CREATE TABLE config_entries (
    plugin     TEXT    NOT NULL,
    scope      TEXT    NOT NULL,
    scope_id   TEXT    NOT NULL,
    document   TEXT    NOT NULL,
    version    BIGINT  NOT NULL,
    updated_at BIGINT  NOT NULL,
    PRIMARY KEY (plugin, scope, scope_id)
);
