-- Conversation state: one value per (plugin, platform, chat, user), until it expires.
CREATE TABLE flow_state (
    plugin     TEXT    NOT NULL,
    platform   TEXT    NOT NULL,
    chat_id    TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    expires_at BIGINT  NOT NULL,
    PRIMARY KEY (plugin, platform, chat_id, user_id)
);
CREATE INDEX flow_state_expiry ON flow_state (expires_at);
