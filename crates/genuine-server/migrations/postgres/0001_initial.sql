-- Genuine cluster store (PostgreSQL), schema version 1: the same tables as
-- migrations/sqlite 0001 and 0002 (BYTEA for blobs, BIGINT for integers).
CREATE TABLE accounts (
    name        TEXT PRIMARY KEY,
    policy      TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- Admin tokens are stored only as SHA-256 hashes.
CREATE TABLE admin_tokens (
    id          TEXT PRIMARY KEY,
    account     TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
    role        TEXT NOT NULL,
    token_hash  BYTEA NOT NULL UNIQUE,
    label       TEXT,
    created_at  BIGINT NOT NULL
);

CREATE TABLE apis (
    account     TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
    domain      TEXT NOT NULL,
    alg         TEXT NOT NULL,
    ttl_secs    BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (account, domain)
);

-- Signing and decoy keys. Private halves are AES-256-GCM encrypted under the
-- master key. publish_until is set when a signing key is retired.
CREATE TABLE api_keys (
    kid           TEXT NOT NULL,
    account       TEXT NOT NULL,
    domain        TEXT NOT NULL,
    purpose       TEXT NOT NULL,
    alg           TEXT NOT NULL,
    private_enc   BYTEA NOT NULL,
    created_at    BIGINT NOT NULL,
    retired_at    BIGINT,
    publish_until BIGINT,
    PRIMARY KEY (account, domain, kid, purpose),
    FOREIGN KEY (account, domain) REFERENCES apis(account, domain) ON DELETE CASCADE
);

-- At most one active (unretired) signing key per API, whatever the nodes do.
CREATE UNIQUE INDEX one_active_signing_key ON api_keys (account, domain)
    WHERE purpose = 'signing' AND retired_at IS NULL;

CREATE TABLE registrations (
    id          TEXT PRIMARY KEY,
    account     TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
    app_id      TEXT NOT NULL,
    platform    TEXT NOT NULL,
    alg         TEXT NOT NULL,
    digest      BYTEA NOT NULL,
    version     TEXT,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT
);
CREATE INDEX registrations_by_app ON registrations (account, app_id, platform);

CREATE TABLE devices (
    account     TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
    device_id   TEXT NOT NULL,
    action      TEXT NOT NULL,
    note        TEXT,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (account, device_id)
);

-- Attestation counters, aggregated per hour.
CREATE TABLE attestation_counts (
    account     TEXT NOT NULL,
    hour        BIGINT NOT NULL,
    outcome     TEXT NOT NULL,
    reason      TEXT NOT NULL,
    count       BIGINT NOT NULL,
    PRIMARY KEY (account, hour, outcome, reason)
);

-- Cluster-wide secrets by name: the first writer wins, every node reads the
-- same value.
CREATE TABLE shared_secrets (
    name        TEXT PRIMARY KEY,
    value       BYTEA NOT NULL
);

-- Serialized unique-device sketches (HyperLogLog), one per account, period
-- and bucket.
CREATE TABLE device_sketches (
    account     TEXT NOT NULL,
    period      TEXT NOT NULL,
    bucket      BIGINT NOT NULL,
    sketch      BYTEA NOT NULL,
    PRIMARY KEY (account, period, bucket)
);
