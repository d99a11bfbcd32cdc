//! Persistent state behind the service: the [`Store`] trait and its two
//! implementations, [`SqliteStore`] (embedded mode: one file in the data dir)
//! and [`PostgresStore`] (cluster mode: every node shares one database).
//!
//! Every method is one atomic operation; a method that returned `Ok` has made
//! its write durable (SQLite WAL with `synchronous = FULL`; a PostgreSQL
//! commit). The trait deals in plain rows: encryption of private keys and
//! hashing of admin tokens happen above it, so both implementations store the
//! same bytes. Schemas: `migrations/sqlite` and `migrations/postgres`, applied
//! when a store is opened.
//!
//! In cluster mode, other nodes change accounts too: [`PostgresStore`]
//! announces every write to an account's cached state on the PostgreSQL
//! channel `genuine_changes` (committed with the write), which a
//! [`ChangeListener`] receives.

mod postgres;
mod sqlite;

pub use postgres::{ChangeListener, PostgresStore};
pub use sqlite::SqliteStore;

use async_trait::async_trait;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The engine could not be reached or failed; the operation may be retried.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A row with the same key exists.
    #[error("already exists")]
    Conflict,
    /// A referenced row does not exist.
    #[error("not found")]
    NotFound,
    /// A stored value could not be decoded.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// An account row.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AccountRow {
    /// Account name.
    pub name: String,
    /// The policy, as JSON.
    pub policy: String,
    /// Creation time, Unix seconds.
    pub created_at: i64,
}

/// An admin token row (hash only).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AdminTokenRow {
    /// Token id (public).
    pub id: String,
    /// Account the token belongs to.
    pub account: String,
    /// `admin` or `dev`.
    pub role: String,
    /// SHA-256 of the token text.
    pub token_hash: Vec<u8>,
    /// Free label.
    pub label: Option<String>,
    /// Creation time, Unix seconds.
    pub created_at: i64,
}

/// An API domain row.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ApiRow {
    /// Account.
    pub account: String,
    /// API domain (the tokens' `aud`).
    pub domain: String,
    /// `ES256`, `EdDSA` or `HS256`.
    pub alg: String,
    /// Token lifetime, seconds.
    pub ttl_secs: i64,
    /// Creation time, Unix seconds.
    pub created_at: i64,
}

/// A key of an API's key set.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct KeyRow {
    /// Key id.
    pub kid: String,
    /// Account.
    pub account: String,
    /// API domain.
    pub domain: String,
    /// `signing` (published, signs valid tokens) or `decoy` (never published).
    pub purpose: String,
    /// Algorithm.
    pub alg: String,
    /// The private key (PKCS#8 or HMAC secret), encrypted under the master key.
    pub private_enc: Vec<u8>,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// When a signing key stopped signing (rotation).
    pub retired_at: Option<i64>,
    /// Until when a retired signing key stays published.
    pub publish_until: Option<i64>,
}

/// A registration of an app digest.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RegistrationRow {
    /// Registration id.
    pub id: String,
    /// Account.
    pub account: String,
    /// App id.
    pub app_id: String,
    /// Platform, e.g. `linux`.
    pub platform: String,
    /// Measurement algorithm.
    pub alg: String,
    /// The 32-byte digest.
    pub digest: Vec<u8>,
    /// App version label.
    pub version: Option<String>,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// Expiry, Unix seconds; `None` never expires.
    pub expires_at: Option<i64>,
}

/// A per-device override.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeviceRow {
    /// Account.
    pub account: String,
    /// Device id.
    pub device_id: String,
    /// `allow` or `block`.
    pub action: String,
    /// Free note.
    pub note: Option<String>,
    /// Last change, Unix seconds.
    pub updated_at: i64,
}

/// An app's settings for one platform attestation family (`apple`,
/// `android` or `play`).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AppPlatformRow {
    /// Account.
    pub account: String,
    /// App id.
    pub app_id: String,
    /// `apple`, `android` or `play`.
    pub kind: String,
    /// The settings, as JSON (no secrets).
    pub settings: String,
    /// A secret of the settings (Play's decryption key), encrypted under the
    /// master key.
    pub secret_enc: Option<Vec<u8>>,
    /// Last change, Unix seconds.
    pub updated_at: i64,
}

/// The App Attest key of one device (installation), after its attestation.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AppAttestKeyRow {
    /// Account.
    pub account: String,
    /// Device id (of the Genuine device key the attestation was bound to).
    pub device_id: String,
    /// App id.
    pub app_id: String,
    /// App Attest key id: SHA-256 of the public point (32 bytes).
    pub key_id: Vec<u8>,
    /// The attested public key: SEC1 uncompressed point (65 bytes).
    pub public_key: Vec<u8>,
    /// The highest counter seen.
    pub counter: i64,
    /// `development` or `production`.
    pub environment: String,
    /// When the key was attested, Unix seconds.
    pub created_at: i64,
    /// When the counter last moved, Unix seconds.
    pub updated_at: i64,
}

/// One attestation counter cell.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CountKey {
    /// Account.
    pub account: String,
    /// Hour bucket: Unix seconds / 3600.
    pub hour: i64,
    /// `valid` or `decoy`.
    pub outcome: String,
    /// A reason name, or empty for the outcome total.
    pub reason: String,
}

/// The persistent state of the service. Implementations: [`SqliteStore`] and
/// [`PostgresStore`], both run through the same test suite
/// (`tests/store_suite.rs`).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Checks that the engine answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Creates an account; [`StoreError::Conflict`] if it exists.
    async fn create_account(&self, row: &AccountRow) -> Result<(), StoreError>;
    /// An account by name.
    async fn account(&self, name: &str) -> Result<Option<AccountRow>, StoreError>;
    /// Replaces an account's policy; [`StoreError::NotFound`] if no account.
    async fn set_policy(&self, account: &str, policy: &str) -> Result<(), StoreError>;
    /// Compare-and-set of a policy: writes `policy` only if the stored policy
    /// is still `expected`; `Ok(false)` if it changed meanwhile (the caller
    /// re-reads and retries). [`StoreError::NotFound`] if no account.
    async fn set_policy_if(
        &self,
        account: &str,
        expected: &str,
        policy: &str,
    ) -> Result<bool, StoreError>;

    /// Stores an admin token (hash only).
    async fn insert_admin_token(&self, row: &AdminTokenRow) -> Result<(), StoreError>;
    /// The admin token with this hash.
    async fn admin_token_by_hash(&self, hash: &[u8]) -> Result<Option<AdminTokenRow>, StoreError>;

    /// Creates an API with its initial keys, atomically.
    async fn insert_api(&self, api: &ApiRow, keys: &[KeyRow]) -> Result<(), StoreError>;
    /// The APIs of an account.
    async fn apis(&self, account: &str) -> Result<Vec<ApiRow>, StoreError>;
    /// Deletes an API and its keys; `false` if there was none.
    async fn delete_api(&self, account: &str, domain: &str) -> Result<bool, StoreError>;
    /// Rotation, atomically: retires the current signing key (publishing it
    /// until `publish_until`) and inserts the new signing key.
    /// [`StoreError::NotFound`] if the API has no active signing key.
    /// Concurrent rotations of one API are serialized: each retires the key
    /// the one before it installed, so exactly one signing key stays active.
    async fn rotate_key(
        &self,
        new_key: &KeyRow,
        retired_at: i64,
        publish_until: i64,
    ) -> Result<(), StoreError>;
    /// All keys of an account's APIs.
    async fn keys(&self, account: &str) -> Result<Vec<KeyRow>, StoreError>;

    /// Stores a registration.
    async fn insert_registration(&self, row: &RegistrationRow) -> Result<(), StoreError>;
    /// The registrations of an account, optionally of one app.
    async fn registrations(
        &self,
        account: &str,
        app_id: Option<&str>,
    ) -> Result<Vec<RegistrationRow>, StoreError>;
    /// Deletes a registration; `false` if there was none.
    async fn delete_registration(&self, account: &str, id: &str) -> Result<bool, StoreError>;

    /// Creates or replaces a device override.
    async fn upsert_device(&self, row: &DeviceRow) -> Result<(), StoreError>;
    /// Deletes a device override; `false` if there was none.
    async fn delete_device(&self, account: &str, device_id: &str) -> Result<bool, StoreError>;
    /// The device overrides of an account.
    async fn devices(&self, account: &str) -> Result<Vec<DeviceRow>, StoreError>;

    /// Creates or replaces an app's settings for one platform kind.
    async fn put_app_platform(&self, row: &AppPlatformRow) -> Result<(), StoreError>;
    /// Deletes an app's settings for one kind; `false` if there were none.
    async fn delete_app_platform(
        &self,
        account: &str,
        app_id: &str,
        kind: &str,
    ) -> Result<bool, StoreError>;
    /// The platform settings of every app of an account.
    async fn app_platforms(&self, account: &str) -> Result<Vec<AppPlatformRow>, StoreError>;

    /// The App Attest key of a device.
    async fn appattest_key(
        &self,
        account: &str,
        device_id: &str,
    ) -> Result<Option<AppAttestKeyRow>, StoreError>;
    /// Creates or replaces the App Attest key of a device (after a verified
    /// attestation).
    async fn put_appattest_key(&self, row: &AppAttestKeyRow) -> Result<(), StoreError>;
    /// Moves a device's App Attest counter to `counter` if the stored key is
    /// `key_id` and its counter is below `counter`, atomically; `Ok(false)`
    /// otherwise (a replayed or concurrent assertion, or another key).
    async fn advance_appattest_counter(
        &self,
        account: &str,
        device_id: &str,
        key_id: &[u8],
        counter: i64,
        now: i64,
    ) -> Result<bool, StoreError>;

    /// Adds to attestation counters.
    async fn add_counts(&self, counts: &[(CountKey, i64)]) -> Result<(), StoreError>;
    /// Counter cells of an account from hour bucket `from_hour` on.
    async fn counts_since(
        &self,
        account: &str,
        from_hour: i64,
    ) -> Result<Vec<(CountKey, i64)>, StoreError>;

    /// A cluster-wide secret by name: stores `candidate` if none exists yet
    /// and returns the stored value (the first writer wins; every node then
    /// uses the same value).
    async fn shared_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError>;

    /// Replaces a serialized unique-device sketch (embedded mode persists its
    /// HyperLogLogs here).
    async fn put_sketch(
        &self,
        account: &str,
        period: &str,
        bucket: i64,
        sketch: &[u8],
    ) -> Result<(), StoreError>;
    /// A stored sketch.
    async fn sketch(
        &self,
        account: &str,
        period: &str,
        bucket: i64,
    ) -> Result<Option<Vec<u8>>, StoreError>;
}
