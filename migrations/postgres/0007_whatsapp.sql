-- WhatsApp webhook items (one message or one status update each). Meta is answered 200
-- once an item is written here; a worker processes it, and the row stays (without its
-- payload) for the de-duplication window, because Meta redelivers for days.
CREATE TABLE whatsapp_inbox (
    -- The message's wamid; for a status update, wamid/status.
    item_key      TEXT   NOT NULL PRIMARY KEY,
    phone_id      TEXT   NOT NULL,
    -- The WhatsApp user the item is about (the sender, or a status's recipient).
    user_id       TEXT   NOT NULL,
    is_message    BIGINT NOT NULL,
    -- The item's JSON; null once processed.
    payload       TEXT,
    received_ms   BIGINT NOT NULL,
    -- A host working on the item holds it until then; 0: free.
    claimed_until BIGINT NOT NULL DEFAULT 0,
    -- Which host holds it (a host's stop releases its own).
    claimed_by    TEXT   NOT NULL DEFAULT '',
    -- When it was processed; 0: not yet.
    done_ms       BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX whatsapp_inbox_pending ON whatsapp_inbox (done_ms, received_ms);
-- The 24-hour window: a user's last message.
CREATE INDEX whatsapp_inbox_user ON whatsapp_inbox (user_id, is_message, received_ms);

-- The delivery state of the messages the bot sent, as Meta reports it.
CREATE TABLE whatsapp_statuses (
    message_id  TEXT   NOT NULL PRIMARY KEY,
    recipient   TEXT   NOT NULL,
    state       TEXT   NOT NULL,
    -- sent 1, delivered 2, read 3, failed 4: a report arriving late never goes back.
    rank        BIGINT NOT NULL,
    reason      TEXT,
    updated_ms  BIGINT NOT NULL
);

-- Messages Meta could not take (its API failing, the breaker open), sent in order once it
-- answers again.
CREATE TABLE whatsapp_outbox (
    id            BIGSERIAL PRIMARY KEY,
    phone_id      TEXT   NOT NULL,
    recipient     TEXT   NOT NULL,
    body          TEXT   NOT NULL,
    queued_ms     BIGINT NOT NULL,
    claimed_until BIGINT NOT NULL DEFAULT 0
);
