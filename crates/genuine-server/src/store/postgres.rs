//! The cluster store: every node shares one PostgreSQL database.
//!
//! Writes that change an account's state as the attestation plane caches it
//! also run `pg_notify('genuine_changes', account)` in their transaction, so
//! the notification is delivered exactly when the write commits; other nodes
//! receive it through a [`ChangeListener`] and drop their cached copy.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};

use super::{
    AccountRow, AdminTokenRow, ApiRow, AppAttestKeyRow, AppPlatformRow, CountKey, DeviceRow,
    KeyRow, RegistrationRow, Store, StoreError,
};

/// The channel on which account changes are announced.
const CHANNEL: &str = "genuine_changes";

/// How long to wait for a connection before failing: an outage answers fast
/// instead of holding requests.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// [`Store`] on PostgreSQL, for cluster mode.
///
/// Every method is atomic; the multi-statement ones run in one transaction.
/// Rotations of one API are serialized by row locks, so nodes rotating at
/// once leave exactly one active signing key (a partial unique index makes
/// that an invariant of the schema too). Every write to an account's cached
/// state is announced on the channel `genuine_changes` with the account name
/// as payload; see [`PostgresStore::change_listener`].
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound,
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
            StoreError::Corrupt(e.to_string())
        }
        _ => StoreError::Unavailable(e.to_string()),
    }
}

/// Removes the password of a PostgreSQL URL (in the user info or as the
/// `password` query parameter, raw or percent-decoded) from a message.
fn redact(message: String, url: &str) -> String {
    let mut secrets = Vec::new();
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if let Some((userinfo, _)) = authority.rsplit_once('@')
        && let Some((_, password)) = userinfo.split_once(':')
    {
        secrets.push(password);
    }
    if let Some((_, query)) = url.split_once('?') {
        let query = query.split('#').next().unwrap_or_default();
        secrets.extend(
            query
                .split('&')
                .filter_map(|pair| pair.strip_prefix("password=")),
        );
    }
    let mut message = message;
    for secret in secrets.into_iter().filter(|s| !s.is_empty()) {
        for form in [secret.to_owned(), percent_decode(secret)] {
            if !form.is_empty() {
                message = message.replace(&form, "***");
            }
        }
    }
    message
}

fn percent_decode(s: &str) -> String {
    let hex = |b: &u8| char::from(*b).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let escaped = (b == b'%')
            .then(|| Some((hex(bytes.get(i + 1)?)?, hex(bytes.get(i + 2)?)?)))
            .flatten();
        match escaped.and_then(|(h, l)| u8::try_from(h * 16 + l).ok()) {
            Some(v) => {
                out.push(v);
                i += 3;
            }
            None => {
                out.push(if b == b'+' { b' ' } else { b });
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl PostgresStore {
    /// Connects a pool of at most `pool_size` connections to the database at
    /// `url` (`postgres://user[:password]@host[:port]/database[?options]`)
    /// and applies the migrations of `migrations/postgres`.
    ///
    /// Nodes starting at once are safe: sqlx's migrator holds a PostgreSQL
    /// advisory lock while it migrates. Waiting for a connection times out
    /// after 2 s, so an outage fails fast instead of hanging.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the URL is invalid or the database cannot
    /// be reached or migrated. Messages never contain the password.
    pub async fn connect(url: &str, pool_size: u32) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(|e| {
            StoreError::Unavailable(redact(format!("invalid PostgreSQL URL: {e}"), url))
        })?;
        let pool = PgPoolOptions::new()
            .max_connections(pool_size.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| match map_err(e) {
                StoreError::Unavailable(m) => StoreError::Unavailable(redact(m, url)),
                other => other,
            })?;
        if let Err(e) = sqlx::migrate!("./migrations/postgres").run(&pool).await {
            // Closing drops the migrator's connection, and with it any advisory lock it held.
            pool.close().await;
            return Err(StoreError::Unavailable(redact(
                format!("migration failed: {e}"),
                url,
            )));
        }
        Ok(Self { pool })
    }

    /// Closes the pool, waiting for connections in use to come back.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A new LISTEN connection on the channel `genuine_changes` (its own
    /// connection, not one of the pool's). Notifications committed before
    /// this returns are not seen: make the listener first, then load state.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the database cannot be reached.
    pub async fn change_listener(&self) -> Result<ChangeListener, StoreError> {
        let options = (*self.pool.connect_options()).clone();
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(map_err)?;
        let mut inner = PgListener::connect_with(&pool).await.map_err(map_err)?;
        // A lost connection is reported at once (`Ok(None)`), not hidden behind
        // a reconnection: the caller must assume it missed notifications.
        inner.eager_reconnect(false);
        inner.listen(CHANNEL).await.map_err(map_err)?;
        Ok(ChangeListener { inner })
    }

    /// Sends a heartbeat on the change channel: an empty payload, which no
    /// account name can be. A node that sees its own heartbeats come back on
    /// its [`ChangeListener`] knows that connection still delivers.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the database cannot be reached.
    pub async fn heartbeat(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(CHANNEL)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(map_err)
    }

    /// A transaction at READ COMMITTED whatever the server's default: the
    /// concurrency arguments below rely on each statement seeing the latest
    /// commits (and waiting on locked rows instead of failing to serialize).
    async fn begin(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.pool
            .begin_with("BEGIN ISOLATION LEVEL READ COMMITTED")
            .await
            .map_err(map_err)
    }
}

/// A LISTEN connection on the channel `genuine_changes`.
pub struct ChangeListener {
    inner: PgListener,
}

impl fmt::Debug for ChangeListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangeListener")
            .field("channel", &CHANNEL)
            .finish_non_exhaustive()
    }
}

impl ChangeListener {
    /// Waits for the next change.
    ///
    /// `Ok(Some(account))`: that account changed (an empty name is a
    /// [`PostgresStore::heartbeat`]). `Ok(None)`: the connection
    /// was lost, so notifications may have been missed; drop this listener and
    /// make a new one. Several writes to one account in one transaction give
    /// one notification; writes of other stores sharing the database (another
    /// schema) are seen too, which only costs a reload.
    ///
    /// Cancel-safe (sqlx reads a notification only whole), so it can be
    /// awaited in `tokio::select!`.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the connection failed otherwise (for
    /// example, the server terminated it); notifications may have been missed
    /// as well: drop this listener and make a new one.
    pub async fn next(&mut self) -> Result<Option<String>, StoreError> {
        match self.inner.try_recv().await {
            Ok(Some(n)) => Ok(Some(n.payload().to_owned())),
            Ok(None) => Ok(None),
            Err(e) => Err(map_err(e)),
        }
    }
}

/// Announces a change of `account` on commit of `tx`.
async fn notify(tx: &mut Transaction<'_, Postgres>, account: &str) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(account)
        .execute(&mut **tx)
        .await
        .map(|_| ())
        .map_err(map_err)
}

#[async_trait]
impl Store for PostgresStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(map_err)
    }

    async fn create_account(&self, row: &AccountRow) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO accounts (name, policy, created_at) VALUES ($1, $2, $3)")
            .bind(&row.name)
            .bind(&row.policy)
            .bind(row.created_at)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        notify(&mut tx, &row.name).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn account(&self, name: &str) -> Result<Option<AccountRow>, StoreError> {
        sqlx::query_as("SELECT name, policy, created_at FROM accounts WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn set_policy(&self, account: &str, policy: &str) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("UPDATE accounts SET policy = $1 WHERE name = $2")
            .bind(policy)
            .bind(account)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        notify(&mut tx, account).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn set_policy_if(
        &self,
        account: &str,
        expected: &str,
        policy: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        // A concurrent writer holds the row lock; once it commits, PostgreSQL
        // re-checks `policy = $3` on the new row version, so only one of two
        // writers with the same `expected` succeeds.
        let done = sqlx::query("UPDATE accounts SET policy = $1 WHERE name = $2 AND policy = $3")
            .bind(policy)
            .bind(account)
            .bind(expected)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if done.rows_affected() == 0 {
            let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM accounts WHERE name = $1")
                .bind(account)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
            return match exists {
                Some(_) => Ok(false),
                None => Err(StoreError::NotFound),
            };
        }
        notify(&mut tx, account).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }

    async fn insert_admin_token(&self, row: &AdminTokenRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO admin_tokens (id, account, role, token_hash, label, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&row.id)
        .bind(&row.account)
        .bind(&row.role)
        .bind(&row.token_hash)
        .bind(&row.label)
        .bind(row.created_at)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn admin_token_by_hash(&self, hash: &[u8]) -> Result<Option<AdminTokenRow>, StoreError> {
        sqlx::query_as(
            "SELECT id, account, role, token_hash, label, created_at \
             FROM admin_tokens WHERE token_hash = $1",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)
    }

    async fn insert_api(&self, api: &ApiRow, keys: &[KeyRow]) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO apis (account, domain, alg, ttl_secs, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&api.account)
        .bind(&api.domain)
        .bind(&api.alg)
        .bind(api.ttl_secs)
        .bind(api.created_at)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        for k in keys {
            insert_key(&mut tx, k).await?;
        }
        notify(&mut tx, &api.account).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn apis(&self, account: &str) -> Result<Vec<ApiRow>, StoreError> {
        sqlx::query_as(
            "SELECT account, domain, alg, ttl_secs, created_at FROM apis \
             WHERE account = $1 ORDER BY domain",
        )
        .bind(account)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)
    }

    async fn delete_api(&self, account: &str, domain: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("DELETE FROM apis WHERE account = $1 AND domain = $2")
            .bind(account)
            .bind(domain)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        notify(&mut tx, account).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }

    async fn rotate_key(
        &self,
        new_key: &KeyRow,
        retired_at: i64,
        publish_until: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        // Serialize the rotations of this API: a second rotation waits here
        // until the first commits, then (READ COMMITTED: each statement sees
        // the latest commits) finds and retires the key the first installed.
        let api: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM apis WHERE account = $1 AND domain = $2 FOR NO KEY UPDATE",
        )
        .bind(&new_key.account)
        .bind(&new_key.domain)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        if api.is_none() {
            return Err(StoreError::NotFound);
        }
        let current: Option<String> = sqlx::query_scalar(
            "SELECT kid FROM api_keys \
             WHERE account = $1 AND domain = $2 AND purpose = 'signing' AND retired_at IS NULL \
             FOR UPDATE",
        )
        .bind(&new_key.account)
        .bind(&new_key.domain)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let Some(current) = current else {
            return Err(StoreError::NotFound);
        };
        sqlx::query(
            "UPDATE api_keys SET retired_at = $1, publish_until = $2 \
             WHERE account = $3 AND domain = $4 AND kid = $5 AND purpose = 'signing'",
        )
        .bind(retired_at)
        .bind(publish_until)
        .bind(&new_key.account)
        .bind(&new_key.domain)
        .bind(&current)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        insert_key(&mut tx, new_key).await?;
        notify(&mut tx, &new_key.account).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn keys(&self, account: &str) -> Result<Vec<KeyRow>, StoreError> {
        sqlx::query_as(
            "SELECT kid, account, domain, purpose, alg, private_enc, created_at, retired_at, \
             publish_until FROM api_keys WHERE account = $1 ORDER BY domain, created_at",
        )
        .bind(account)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)
    }

    async fn insert_registration(&self, row: &RegistrationRow) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO registrations \
             (id, account, app_id, platform, alg, digest, version, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&row.id)
        .bind(&row.account)
        .bind(&row.app_id)
        .bind(&row.platform)
        .bind(&row.alg)
        .bind(&row.digest)
        .bind(&row.version)
        .bind(row.created_at)
        .bind(row.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        notify(&mut tx, &row.account).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn registrations(
        &self,
        account: &str,
        app_id: Option<&str>,
    ) -> Result<Vec<RegistrationRow>, StoreError> {
        sqlx::query_as(
            "SELECT id, account, app_id, platform, alg, digest, version, created_at, expires_at \
             FROM registrations WHERE account = $1 AND ($2::text IS NULL OR app_id = $2) \
             ORDER BY app_id, created_at, id",
        )
        .bind(account)
        .bind(app_id)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)
    }

    async fn delete_registration(&self, account: &str, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("DELETE FROM registrations WHERE account = $1 AND id = $2")
            .bind(account)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        notify(&mut tx, account).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }

    async fn upsert_device(&self, row: &DeviceRow) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO devices (account, device_id, action, note, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (account, device_id) DO UPDATE SET \
             action = EXCLUDED.action, note = EXCLUDED.note, updated_at = EXCLUDED.updated_at",
        )
        .bind(&row.account)
        .bind(&row.device_id)
        .bind(&row.action)
        .bind(&row.note)
        .bind(row.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        notify(&mut tx, &row.account).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn delete_device(&self, account: &str, device_id: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("DELETE FROM devices WHERE account = $1 AND device_id = $2")
            .bind(account)
            .bind(device_id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        notify(&mut tx, account).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }

    async fn devices(&self, account: &str) -> Result<Vec<DeviceRow>, StoreError> {
        sqlx::query_as(
            "SELECT account, device_id, action, note, updated_at FROM devices \
             WHERE account = $1 ORDER BY device_id",
        )
        .bind(account)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)
    }

    async fn put_app_platform(&self, row: &AppPlatformRow) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO app_platforms (account, app_id, kind, settings, secret_enc, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (account, app_id, kind) DO UPDATE SET \
             settings = EXCLUDED.settings, secret_enc = EXCLUDED.secret_enc, \
             updated_at = EXCLUDED.updated_at",
        )
        .bind(&row.account)
        .bind(&row.app_id)
        .bind(&row.kind)
        .bind(&row.settings)
        .bind(&row.secret_enc)
        .bind(row.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        notify(&mut tx, &row.account).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn delete_app_platform(
        &self,
        account: &str,
        app_id: &str,
        kind: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "DELETE FROM app_platforms WHERE account = $1 AND app_id = $2 AND kind = $3",
        )
        .bind(account)
        .bind(app_id)
        .bind(kind)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        notify(&mut tx, account).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }

    async fn app_platforms(&self, account: &str) -> Result<Vec<AppPlatformRow>, StoreError> {
        sqlx::query_as(
            "SELECT account, app_id, kind, settings, secret_enc, updated_at FROM app_platforms \
             WHERE account = $1 ORDER BY app_id, kind",
        )
        .bind(account)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)
    }

    async fn appattest_key(
        &self,
        account: &str,
        device_id: &str,
    ) -> Result<Option<AppAttestKeyRow>, StoreError> {
        sqlx::query_as(
            "SELECT account, device_id, app_id, key_id, public_key, counter, environment, \
             created_at, updated_at FROM appattest_keys WHERE account = $1 AND device_id = $2",
        )
        .bind(account)
        .bind(device_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)
    }

    async fn put_appattest_key(&self, row: &AppAttestKeyRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO appattest_keys (account, device_id, app_id, key_id, public_key, counter, \
             environment, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (account, device_id) DO UPDATE SET app_id = EXCLUDED.app_id, \
             key_id = EXCLUDED.key_id, public_key = EXCLUDED.public_key, \
             counter = EXCLUDED.counter, environment = EXCLUDED.environment, \
             created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at",
        )
        .bind(&row.account)
        .bind(&row.device_id)
        .bind(&row.app_id)
        .bind(&row.key_id)
        .bind(&row.public_key)
        .bind(row.counter)
        .bind(&row.environment)
        .bind(row.created_at)
        .bind(row.updated_at)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn advance_appattest_counter(
        &self,
        account: &str,
        device_id: &str,
        key_id: &[u8],
        counter: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE appattest_keys SET counter = $1, updated_at = $2 \
             WHERE account = $3 AND device_id = $4 AND key_id = $5 AND counter < $1",
        )
        .bind(counter)
        .bind(now)
        .bind(account)
        .bind(device_id)
        .bind(key_id)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn add_counts(&self, counts: &[(CountKey, i64)]) -> Result<(), StoreError> {
        // One upsert over the cells merged per key (an upsert may not touch a
        // row twice), locking rows in one order (ORDER BY) so that nodes
        // flushing the same cells at once cannot deadlock.
        let mut merged: BTreeMap<(&str, i64, &str, &str), i64> = BTreeMap::new();
        for (k, n) in counts {
            let cell = merged
                .entry((&k.account, k.hour, &k.outcome, &k.reason))
                .or_default();
            *cell = cell.saturating_add(*n);
        }
        if merged.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        let mut accounts = Vec::with_capacity(merged.len());
        let mut hours = Vec::with_capacity(merged.len());
        let mut outcomes = Vec::with_capacity(merged.len());
        let mut reasons = Vec::with_capacity(merged.len());
        let mut ns = Vec::with_capacity(merged.len());
        for ((account, hour, outcome, reason), n) in merged {
            accounts.push(account);
            hours.push(hour);
            outcomes.push(outcome);
            reasons.push(reason);
            ns.push(n);
        }
        sqlx::query(
            "INSERT INTO attestation_counts (account, hour, outcome, reason, count) \
             SELECT account, hour, outcome, reason, count \
             FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[], $5::bigint[]) \
             AS t (account, hour, outcome, reason, count) \
             ORDER BY account, hour, outcome, reason \
             ON CONFLICT (account, hour, outcome, reason) \
             DO UPDATE SET count = attestation_counts.count + EXCLUDED.count",
        )
        .bind(accounts)
        .bind(hours)
        .bind(outcomes)
        .bind(reasons)
        .bind(ns)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    async fn counts_since(
        &self,
        account: &str,
        from_hour: i64,
    ) -> Result<Vec<(CountKey, i64)>, StoreError> {
        let rows: Vec<(String, i64, String, String, i64)> = sqlx::query_as(
            "SELECT account, hour, outcome, reason, count FROM attestation_counts \
             WHERE account = $1 AND hour >= $2 ORDER BY hour",
        )
        .bind(account)
        .bind(from_hour)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(rows
            .into_iter()
            .map(|(account, hour, outcome, reason, count)| {
                (
                    CountKey {
                        account,
                        hour,
                        outcome,
                        reason,
                    },
                    count,
                )
            })
            .collect())
    }

    async fn shared_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
        let mut tx = self.begin().await?;
        // A concurrent insert of the same name makes this one wait for it to
        // commit, then do nothing; the SELECT (a new statement, so at READ
        // COMMITTED a new snapshot) then reads the winner's value.
        sqlx::query(
            "INSERT INTO shared_secrets (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(candidate)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        let value = sqlx::query_scalar("SELECT value FROM shared_secrets WHERE name = $1")
            .bind(name)
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(value)
    }

    async fn put_sketch(
        &self,
        account: &str,
        period: &str,
        bucket: i64,
        sketch: &[u8],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO device_sketches (account, period, bucket, sketch) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (account, period, bucket) DO UPDATE SET sketch = EXCLUDED.sketch",
        )
        .bind(account)
        .bind(period)
        .bind(bucket)
        .bind(sketch)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    async fn sketch(
        &self,
        account: &str,
        period: &str,
        bucket: i64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        sqlx::query_scalar(
            "SELECT sketch FROM device_sketches \
             WHERE account = $1 AND period = $2 AND bucket = $3",
        )
        .bind(account)
        .bind(period)
        .bind(bucket)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)
    }
}

async fn insert_key(tx: &mut Transaction<'_, Postgres>, k: &KeyRow) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO api_keys (kid, account, domain, purpose, alg, private_enc, created_at, \
         retired_at, publish_until) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&k.kid)
    .bind(&k.account)
    .bind(&k.domain)
    .bind(&k.purpose)
    .bind(&k.alg)
    .bind(&k.private_enc)
    .bind(k.created_at)
    .bind(k.retired_at)
    .bind(k.publish_until)
    .execute(&mut **tx)
    .await
    .map(|_| ())
    .map_err(map_err)
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_redacted() {
        let url = "postgres://genuine:s%3Acret@db:5432/g?password=other";
        let m = redact(
            "failed for s%3Acret, s:cret and other at postgres://genuine:s%3Acret@db".into(),
            url,
        );
        assert!(!m.contains("cret") && !m.contains("other"), "{m}");
        assert_eq!(redact("no secret".into(), "postgres://u@h/d"), "no secret");
    }
}
