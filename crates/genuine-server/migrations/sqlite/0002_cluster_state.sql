-- Genuine embedded store, schema version 2: state shared by the nodes of a
-- cluster (also used in embedded mode) and one more invariant.

-- Cluster-wide secrets by name: the first writer wins, every node reads the
-- same value.
CREATE TABLE shared_secrets (
    name        TEXT PRIMARY KEY,
    value       BLOB NOT NULL
);

-- Serialized unique-device sketches (HyperLogLog), one per account, period
-- and bucket.
CREATE TABLE device_sketches (
    account     TEXT NOT NULL,
    period      TEXT NOT NULL,
    bucket      INTEGER NOT NULL,
    sketch      BLOB NOT NULL,
    PRIMARY KEY (account, period, bucket)
);

-- At most one active (unretired) signing key per API.
CREATE UNIQUE INDEX one_active_signing_key ON api_keys (account, domain)
    WHERE purpose = 'signing' AND retired_at IS NULL;
