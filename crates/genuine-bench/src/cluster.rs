//! The `cluster` target: two nodes in cluster mode (the server runtime of
//! this process) sharing PostgreSQL and Redis, in a PostgreSQL schema and
//! under a Redis key prefix of this run's own, both removed at the end.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use genuine_server::Running;
use genuine_server::config::Config;
use genuine_server::service::SystemClock;
use ring::rand::{SecureRandom, SystemRandom};
use sqlx::Connection;

/// PostgreSQL when neither `--database-url` nor `GENUINE_BENCH_DATABASE_URL` names one.
pub(crate) const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// Redis when neither `--redis-url` nor `GENUINE_BENCH_REDIS_URL` names one.
pub(crate) const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
/// Both nodes' `public_url` (the tokens' issuer is `{PUBLIC_URL}/v1/accounts/{account}`).
/// Never contacted: clients reach the nodes at their own addresses.
pub(crate) const PUBLIC_URL: &str = "http://genuine-cluster.loadbench.invalid";

fn random_hex(bytes: usize) -> anyhow::Result<String> {
    let mut b = vec![0u8; bytes];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| anyhow::anyhow!("no randomness"))?;
    Ok(b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    }))
}

/// This run's PostgreSQL schema and Redis key prefix.
pub(crate) struct Engines {
    base_db: String,
    /// `genuine_bench_<12 hex digits>`.
    pub(crate) schema: String,
    /// `base_db` with `options=-c search_path=<schema>`.
    db_url: String,
    redis_url: String,
    /// `genuine-bench-<12 hex digits>:`.
    pub(crate) prefix: String,
    redis: redis::aio::MultiplexedConnection,
}

impl Engines {
    /// Creates the schema and connects to Redis (on the current runtime).
    pub(crate) async fn create(base_db: &str, redis_url: &str) -> anyhow::Result<Self> {
        let hex = random_hex(6)?;
        let schema = format!("genuine_bench_{hex}");
        let mut conn = sqlx::PgConnection::connect(base_db)
            .await
            .context("connecting to PostgreSQL (--database-url)")?;
        // The name is ours: a fixed prefix and hex digits.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&mut conn)
            .await
            .with_context(|| format!("creating schema {schema}"))?;
        conn.close().await?;
        let sep = if base_db.contains('?') { '&' } else { '?' };
        let db_url = format!("{base_db}{sep}options=-c%20search_path%3D{schema}");
        let redis = async {
            redis::Client::open(redis_url)?
                .get_multiplexed_async_connection()
                .await
        }
        .await
        .context("connecting to Redis (--redis-url)");
        let redis = match redis {
            Ok(r) => r,
            Err(e) => {
                let _ = drop_schema(base_db, &schema).await;
                return Err(e);
            }
        };
        Ok(Self {
            base_db: base_db.to_owned(),
            schema,
            db_url,
            redis_url: redis_url.to_owned(),
            prefix: format!("genuine-bench-{hex}:"),
            redis,
        })
    }

    /// Redis's `used_memory` (bytes), from `INFO memory`.
    pub(crate) async fn redis_used_memory(&self) -> Option<u64> {
        let mut conn = self.redis.clone();
        let info: String = redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut conn)
            .await
            .ok()?;
        info.lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
    }

    /// Drops the schema (CASCADE) and deletes this run's Redis keys; the
    /// number of keys deleted.
    pub(crate) async fn remove(&self) -> anyhow::Result<u64> {
        drop_schema(&self.base_db, &self.schema).await?;
        let mut conn = self.redis.clone();
        let pattern = format!("{}*", self.prefix);
        let mut cursor: u64 = 0;
        let mut deleted = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(5000)
                .query_async(&mut conn)
                .await
                .context("SCAN")?;
            if !keys.is_empty() {
                let n: u64 = redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async(&mut conn)
                    .await
                    .context("UNLINK")?;
                deleted += n;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }
}

async fn drop_schema(base_db: &str, schema: &str) -> anyhow::Result<()> {
    let mut conn = sqlx::PgConnection::connect(base_db).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut conn)
        .await
        .with_context(|| format!("dropping schema {schema}"))?;
    conn.close().await?;
    Ok(())
}

/// The two running nodes.
pub(crate) struct Cluster {
    /// Node `a` (it created the master key and the `default` account), then `b`.
    pub(crate) nodes: Vec<Running>,
    /// The bootstrap admin token of `default`.
    pub(crate) admin_token: String,
}

/// Starts two nodes on the current runtime, one after the other: the first
/// creates the master key file (`dir/master.key`) that the second reads, and
/// the `default` account. Each has its own data dir under `dir`.
pub(crate) async fn start(engines: &Engines, dir: &Path) -> anyhow::Result<Cluster> {
    let mut nodes = Vec::new();
    for name in ["a", "b"] {
        let config = Config {
            listen: "127.0.0.1:0".parse()?,
            data_dir: dir.join(format!("node-{name}")),
            public_url: Some(PUBLIC_URL.to_owned()),
            database_url: Some(engines.db_url.clone()),
            redis_url: Some(engines.redis_url.clone()),
            redis_key_prefix: engines.prefix.clone(),
            master_key_file: Some(dir.join("master.key")),
            // The limiter runs (its cost is measured) but never refuses: the
            // load generator is one client address.
            challenge_rate_limit: u32::MAX,
            ..Config::default()
        };
        let node = genuine_server::start(&config, Arc::new(SystemClock))
            .await
            .with_context(|| format!("starting cluster node {name}"))?;
        if !config.is_cluster() {
            bail!("node {name} did not start in cluster mode");
        }
        nodes.push(node);
    }
    let token_file = nodes
        .iter()
        .find(|n| n.bootstrapped)
        .map(|n| n.admin_token_file.clone())
        .context("no cluster node created the default account (schema not empty?)")?;
    let admin_token = std::fs::read_to_string(&token_file)?.trim().to_owned();
    Ok(Cluster { nodes, admin_token })
}
