-- Genuine cluster store (PostgreSQL), schema version 2: platform attestation.

-- An app's settings per platform attestation family ('apple', 'android',
-- 'play'). settings is JSON without secrets; secret_enc holds Play's
-- decryption key sealed under the master key.
CREATE TABLE app_platforms (
    account     TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
    app_id      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    settings    TEXT NOT NULL,
    secret_enc  BYTEA,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (account, app_id, kind)
);

-- The App Attest key of each device (Genuine device id), with the highest
-- assertion counter seen.
CREATE TABLE appattest_keys (
    account     TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
    device_id   TEXT NOT NULL,
    app_id      TEXT NOT NULL,
    key_id      BYTEA NOT NULL,
    public_key  BYTEA NOT NULL,
    counter     BIGINT NOT NULL,
    environment TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (account, device_id)
);
