-- Layer queue database, version 5: minted API keys (the standalone key store).
--
-- Only one-way hashes of tokens are stored (`lookup_hash`, `sha256:<hex>`); the raw token is
-- returned once, by the mint call, and never persisted. `epoch` counts changes to the table
-- (mint, revoke, delete), so every gateway replica can tell in one cheap read whether to reload
-- its in-memory key map.
CREATE TABLE api_keys (
    key_id       text        PRIMARY KEY,
    name         text        NOT NULL UNIQUE,
    owner        text,
    description  text,
    entitlements jsonb       NOT NULL,
    expires_after text       NOT NULL,
    expires_at   timestamptz,
    lookup_hash  text        NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz,
    last_seen_at timestamptz
);

CREATE TABLE api_key_epoch (
    id    integer PRIMARY KEY CHECK (id = 1),
    epoch bigint  NOT NULL
);
INSERT INTO api_key_epoch (id, epoch) VALUES (1, 0);
