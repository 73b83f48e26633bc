-- Plugins' timers (capability `schedule`). A due timer is claimed by one host, which
-- delivers it and then deletes it (one-shot) or moves it to its next time (repeating);
-- a claim that runs out (its host stopped or crashed) lets another host take it.
CREATE TABLE timers (
    -- Short and random, so a user can type it (`!remind cancel ID`).
    id            TEXT   NOT NULL PRIMARY KEY,
    plugin        TEXT   NOT NULL,
    -- Where it was set and by whom: the conversation its event answers.
    platform      TEXT   NOT NULL,
    -- '' outside a guild.
    guild_id      TEXT   NOT NULL,
    channel_id    TEXT   NOT NULL,
    user_id       TEXT   NOT NULL,
    user_name     TEXT   NOT NULL,
    payload       TEXT   NOT NULL,
    -- When it fires next, in milliseconds since the Unix epoch.
    due_ms        BIGINT NOT NULL,
    -- How it repeats: every so many milliseconds, or a cron expression; 0 and '': never.
    every_ms      BIGINT NOT NULL DEFAULT 0,
    cron          TEXT   NOT NULL DEFAULT '',
    -- A host delivering it holds it until then; 0: free.
    claimed_until BIGINT NOT NULL DEFAULT 0,
    claimed_by    TEXT   NOT NULL DEFAULT '',
    created_ms    BIGINT NOT NULL
);
CREATE INDEX timers_due ON timers (due_ms);
CREATE INDEX timers_plugin ON timers (plugin, guild_id, channel_id);
