-- The last few messages of each conversation, per plugin, for AI prompts.
CREATE TABLE chat_history (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    plugin    TEXT    NOT NULL,
    platform  TEXT    NOT NULL,
    chat_id   TEXT    NOT NULL,
    user_id   TEXT    NOT NULL,
    role      TEXT    NOT NULL,
    text      TEXT    NOT NULL,
    at        BIGINT  NOT NULL
);
CREATE INDEX chat_history_conversation ON chat_history (plugin, platform, chat_id, user_id, id);
