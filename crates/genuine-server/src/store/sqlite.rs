//! The embedded store: one SQLite file in the data dir.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::{
    AccountRow, AdminTokenRow, ApiRow, AppAttestKeyRow, AppPlatformRow, CountKey, DeviceRow,
    KeyRow, RegistrationRow, Store, StoreError,
};

/// [`Store`] on SQLite (WAL journal, `synchronous = FULL`, foreign keys on).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
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

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies migrations.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the file cannot be opened or migrated.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite:")
            .map_err(map_err)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        Self::connect(options, 8).await
    }

    /// An in-memory database (tests, benchmarks).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if SQLite fails.
    pub async fn in_memory() -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(map_err)?
            .foreign_keys(true);
        // One connection: every connection to :memory: is its own database.
        Self::connect(options, 1).await
    }

    async fn connect(options: SqliteConnectOptions, max: u32) -> Result<Self, StoreError> {
        let pool = SqlitePoolOptions::new()
            .max_connections(max)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(map_err)?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Unavailable(format!("migration failed: {e}")))?;
        Ok(Self { pool })
    }

    /// Closes the pool, checkpointing the WAL.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(map_err)
    }

    async fn create_account(&self, row: &AccountRow) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO accounts (name, policy, created_at) VALUES (?, ?, ?)")
            .bind(&row.name)
            .bind(&row.policy)
            .bind(row.created_at)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(map_err)
    }

    async fn account(&self, name: &str) -> Result<Option<AccountRow>, StoreError> {
        sqlx::query_as("SELECT name, policy, created_at FROM accounts WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn set_policy(&self, account: &str, policy: &str) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE accounts SET policy = ? WHERE name = ?")
            .bind(policy)
            .bind(account)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn set_policy_if(
        &self,
        account: &str,
        expected: &str,
        policy: &str,
    ) -> Result<bool, StoreError> {
        // Write first, so the transaction holds the write lock from its first statement.
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let done = sqlx::query("UPDATE accounts SET policy = ? WHERE name = ? AND policy = ?")
            .bind(policy)
            .bind(account)
            .bind(expected)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if done.rows_affected() == 0 {
            let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM accounts WHERE name = ?")
                .bind(account)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
            return match exists {
                Some(_) => Ok(false),
                None => Err(StoreError::NotFound),
            };
        }
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }

    async fn insert_admin_token(&self, row: &AdminTokenRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO admin_tokens (id, account, role, token_hash, label, created_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
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
             FROM admin_tokens WHERE token_hash = ?",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)
    }

    async fn insert_api(&self, api: &ApiRow, keys: &[KeyRow]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        sqlx::query(
            "INSERT INTO apis (account, domain, alg, ttl_secs, created_at) VALUES (?, ?, ?, ?, ?)",
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
        tx.commit().await.map_err(map_err)
    }

    async fn apis(&self, account: &str) -> Result<Vec<ApiRow>, StoreError> {
        sqlx::query_as(
            "SELECT account, domain, alg, ttl_secs, created_at FROM apis \
             WHERE account = ? ORDER BY domain",
        )
        .bind(account)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)
    }

    async fn delete_api(&self, account: &str, domain: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM apis WHERE account = ? AND domain = ?")
            .bind(account)
            .bind(domain)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn rotate_key(
        &self,
        new_key: &KeyRow,
        retired_at: i64,
        publish_until: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let done = sqlx::query(
            "UPDATE api_keys SET retired_at = ?, publish_until = ? \
             WHERE account = ? AND domain = ? AND purpose = 'signing' AND retired_at IS NULL",
        )
        .bind(retired_at)
        .bind(publish_until)
        .bind(&new_key.account)
        .bind(&new_key.domain)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        insert_key(&mut tx, new_key).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn keys(&self, account: &str) -> Result<Vec<KeyRow>, StoreError> {
        sqlx::query_as(
            "SELECT kid, account, domain, purpose, alg, private_enc, created_at, retired_at, \
             publish_until FROM api_keys WHERE account = ? ORDER BY domain, created_at",
        )
        .bind(account)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)
    }

    async fn insert_registration(&self, row: &RegistrationRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO registrations \
             (id, account, app_id, platform, alg, digest, version, created_at, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn registrations(
        &self,
        account: &str,
        app_id: Option<&str>,
    ) -> Result<Vec<RegistrationRow>, StoreError> {
        sqlx::query_as(
            "SELECT id, account, app_id, platform, alg, digest, version, created_at, expires_at \
             FROM registrations WHERE account = ? AND (? IS NULL OR app_id = ?) \
             ORDER BY app_id, created_at, id",
        )
        .bind(account)
        .bind(app_id)
        .bind(app_id)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)
    }

    async fn delete_registration(&self, account: &str, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM registrations WHERE account = ? AND id = ?")
            .bind(account)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn upsert_device(&self, row: &DeviceRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO devices (account, device_id, action, note, updated_at) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (account, device_id) DO UPDATE SET \
             action = excluded.action, note = excluded.note, updated_at = excluded.updated_at",
        )
        .bind(&row.account)
        .bind(&row.device_id)
        .bind(&row.action)
        .bind(&row.note)
        .bind(row.updated_at)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn delete_device(&self, account: &str, device_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM devices WHERE account = ? AND device_id = ?")
            .bind(account)
            .bind(device_id)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn devices(&self, account: &str) -> Result<Vec<DeviceRow>, StoreError> {
        sqlx::query_as(
            "SELECT account, device_id, action, note, updated_at FROM devices \
             WHERE account = ? ORDER BY device_id",
        )
        .bind(account)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)
    }

    async fn put_app_platform(&self, row: &AppPlatformRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO app_platforms (account, app_id, kind, settings, secret_enc, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (account, app_id, kind) DO UPDATE SET \
             settings = excluded.settings, secret_enc = excluded.secret_enc, \
             updated_at = excluded.updated_at",
        )
        .bind(&row.account)
        .bind(&row.app_id)
        .bind(&row.kind)
        .bind(&row.settings)
        .bind(&row.secret_enc)
        .bind(row.updated_at)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn delete_app_platform(
        &self,
        account: &str,
        app_id: &str,
        kind: &str,
    ) -> Result<bool, StoreError> {
        let done =
            sqlx::query("DELETE FROM app_platforms WHERE account = ? AND app_id = ? AND kind = ?")
                .bind(account)
                .bind(app_id)
                .bind(kind)
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn app_platforms(&self, account: &str) -> Result<Vec<AppPlatformRow>, StoreError> {
        sqlx::query_as(
            "SELECT account, app_id, kind, settings, secret_enc, updated_at FROM app_platforms \
             WHERE account = ? ORDER BY app_id, kind",
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
             created_at, updated_at FROM appattest_keys WHERE account = ? AND device_id = ?",
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
             environment, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (account, device_id) DO UPDATE SET app_id = excluded.app_id, \
             key_id = excluded.key_id, public_key = excluded.public_key, \
             counter = excluded.counter, environment = excluded.environment, \
             created_at = excluded.created_at, updated_at = excluded.updated_at",
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
            "UPDATE appattest_keys SET counter = ?, updated_at = ? \
             WHERE account = ? AND device_id = ? AND key_id = ? AND counter < ?",
        )
        .bind(counter)
        .bind(now)
        .bind(account)
        .bind(device_id)
        .bind(key_id)
        .bind(counter)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn add_counts(&self, counts: &[(CountKey, i64)]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        for (k, n) in counts {
            sqlx::query(
                "INSERT INTO attestation_counts (account, hour, outcome, reason, count) \
                 VALUES (?, ?, ?, ?, ?) ON CONFLICT (account, hour, outcome, reason) \
                 DO UPDATE SET count = count + excluded.count",
            )
            .bind(&k.account)
            .bind(k.hour)
            .bind(&k.outcome)
            .bind(&k.reason)
            .bind(n)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)
    }

    async fn counts_since(
        &self,
        account: &str,
        from_hour: i64,
    ) -> Result<Vec<(CountKey, i64)>, StoreError> {
        let rows: Vec<(String, i64, String, String, i64)> = sqlx::query_as(
            "SELECT account, hour, outcome, reason, count FROM attestation_counts \
             WHERE account = ? AND hour >= ? ORDER BY hour",
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
        sqlx::query(
            "INSERT INTO shared_secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(candidate)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        // Secrets are never deleted, so the row read is the one that won.
        sqlx::query_scalar("SELECT value FROM shared_secrets WHERE name = ?")
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn put_sketch(
        &self,
        account: &str,
        period: &str,
        bucket: i64,
        sketch: &[u8],
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO device_sketches (account, period, bucket, sketch) VALUES (?, ?, ?, ?) \
             ON CONFLICT (account, period, bucket) DO UPDATE SET sketch = excluded.sketch",
        )
        .bind(account)
        .bind(period)
        .bind(bucket)
        .bind(sketch)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(map_err)
    }

    async fn sketch(
        &self,
        account: &str,
        period: &str,
        bucket: i64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        sqlx::query_scalar(
            "SELECT sketch FROM device_sketches WHERE account = ? AND period = ? AND bucket = ?",
        )
        .bind(account)
        .bind(period)
        .bind(bucket)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)
    }
}

async fn insert_key(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    k: &KeyRow,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO api_keys (kid, account, domain, purpose, alg, private_enc, created_at, \
         retired_at, publish_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
