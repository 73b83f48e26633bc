-- Plugins installed from packages (`wasmbot plugin install`). Every version stays, with its
-- archive, so a rollback needs no registry and every host verifies and loads the same bytes.
CREATE TABLE plugin_versions (
    name         TEXT   NOT NULL,
    -- The OCI manifest's digest: the version's identity.
    digest       TEXT   NOT NULL,
    version      TEXT   NOT NULL,
    -- Where it came from: an index's name, an OCI reference, or "file".
    source       TEXT   NOT NULL,
    -- The REGISTRY/REPO:TAG it was resolved from; '' for a file.
    reference    TEXT   NOT NULL DEFAULT '',
    -- The id of the key that signed it; '' when installed unsigned.
    signer       TEXT   NOT NULL DEFAULT '',
    -- What it asks for: {"capabilities": [...], "http_hosts": [...]}.
    asks         TEXT   NOT NULL,
    -- 1 once the operator approved what it asks for.
    approved     BIGINT NOT NULL DEFAULT 0,
    archive      BYTEA  NOT NULL,
    installed_ms BIGINT NOT NULL,
    PRIMARY KEY (name, digest)
);

-- What each host serves: one row per installed plugin.
CREATE TABLE plugin_installs (
    name     TEXT   NOT NULL PRIMARY KEY,
    -- The serving version's digest; '' while the first install waits for approval.
    active   TEXT   NOT NULL DEFAULT '',
    -- A version waiting for the operator's approval; ''.
    pending  TEXT   NOT NULL DEFAULT '',
    -- 1: `update` leaves it where it is.
    pinned   BIGINT NOT NULL DEFAULT 0,
    -- Bumped by every change, so a host sees at a glance whether it is behind.
    revision BIGINT NOT NULL DEFAULT 0
);
