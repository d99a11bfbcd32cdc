-- Genuine embedded store, schema version 1.
CREATE TABLE accounts (
    name        TEXT PRIMARY KEY,
    policy      TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

-- Admin tokens are stored only as SHA-256 hashes.
CREATE TABLE admin_tokens (
    id          TEXT PRIMARY KEY,
    account     TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
    role        TEXT NOT NULL,
    token_hash  BLOB NOT NULL UNIQUE,
    label       TEXT,
    created_at  INTEGER NOT NULL
);

CREATE TABLE apis (
    account     TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
    domain      TEXT NOT NULL,
    alg         TEXT NOT NULL,
    ttl_secs    INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (account, domain)
);

-- Signing and decoy keys. Private halves are AES-256-GCM encrypted under the
-- data dir's master key. publish_until is set when a signing key is retired.
CREATE TABLE api_keys (
    kid           TEXT NOT NULL,
    account       TEXT NOT NULL,
    domain        TEXT NOT NULL,
    purpose       TEXT NOT NULL,
    alg           TEXT NOT NULL,
    private_enc   BLOB NOT NULL,
    created_at    INTEGER NOT NULL,
    retired_at    INTEGER,
    publish_until INTEGER,
    PRIMARY KEY (account, domain, kid, purpose),
    FOREIGN KEY (account, domain) REFERENCES apis(account, domain) ON DELETE CASCADE
);

CREATE TABLE registrations (
    id          TEXT PRIMARY KEY,
    account     TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
    app_id      TEXT NOT NULL,
    platform    TEXT NOT NULL,
    alg         TEXT NOT NULL,
    digest      BLOB NOT NULL,
    version     TEXT,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER
);
CREATE INDEX registrations_by_app ON registrations (account, app_id, platform);

CREATE TABLE devices (
    account     TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
    device_id   TEXT NOT NULL,
    action      TEXT NOT NULL,
    note        TEXT,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (account, device_id)
);

-- Attestation counters, aggregated per hour.
CREATE TABLE attestation_counts (
    account     TEXT NOT NULL,
    hour        INTEGER NOT NULL,
    outcome     TEXT NOT NULL,
    reason      TEXT NOT NULL,
    count       INTEGER NOT NULL,
    PRIMARY KEY (account, hour, outcome, reason)
);
