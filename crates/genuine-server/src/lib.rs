//! The Genuine attestation service.
//!
//! - [`service`]: the attestation plane (challenge, attest, JWKS) over cached
//!   account state; [`verdict`] is the pure decision; [`keys`] signs tokens.
//! - [`admin`]: accounts, admin tokens, API domains and key rotation,
//!   registrations, device overrides, policy, token inspection, metrics.
//! - [`store`]: the [`store::Store`] trait and its SQLite implementation.
//! - [`http`]: the axum router; [`error::ApiError`] maps every failure to a
//!   status and a stable error code in one place.
//! - [`start`]: [`start_embedded`] (one process, a SQLite file, in-process
//!   replay set, rate limiter and unique-device sketches) or
//!   [`start_cluster`] (any number of nodes sharing PostgreSQL and Redis).
//!
//! # Example: run an embedded service on a free port
//!
//! ```no_run
//! use std::sync::Arc;
//! use genuine_server::{config::Config, service::SystemClock, start_embedded};
//!
//! # async fn run() -> Result<(), genuine_server::StartError> {
//! let config = Config {
//!     listen: "127.0.0.1:0".parse().expect("literal address"),
//!     data_dir: "./genuine-data".into(),
//!     ..Config::default()
//! };
//! let running = start_embedded(&config, Arc::new(SystemClock)).await?;
//! println!("listening on {}", running.addr);
//! running.shutdown().await;
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

pub mod admin;
pub mod clientip;
pub mod config;
pub mod devices;
pub mod error;
pub mod http;
pub mod keys;
pub mod metrics;
pub mod openapi;
pub mod platform;
pub mod policy;
pub mod ratelimit;
pub mod redis;
pub mod replay;
pub mod service;
pub mod status;
pub mod store;
pub mod verdict;

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ring::rand::SecureRandom;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use genuine_protocol::nonce::NonceKey;

use crate::clientip::TrustedProxies;
use crate::config::{Config, ConfigError};
use crate::devices::{MemoryDevices, RedisDevices};
use crate::keys::{KeyError, MasterKey};
use crate::ratelimit::{MemoryRateLimiter, RateLimit, RateLimiter, RedisRateLimiter};
use crate::replay::{MemoryReplay, RedisReplay};
use crate::service::{Clock, Service, ServiceParts};
use crate::store::{PostgresStore, SqliteStore, Store, StoreError};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A file of the data dir could not be used.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A secret file may be read by other users.
    #[error("{0} is readable by other users; run chmod 600 on it")]
    InsecureFile(PathBuf),
    /// Another process serves from the same data dir.
    #[error("{0} is in use by another `genuine serve`; stop it or use another --data")]
    DataDirInUse(PathBuf),
    /// The master key file is not 32 bytes.
    #[error("{0} is not a 32-byte master key")]
    BadMasterKey(PathBuf),
    /// Cluster mode: the master key file differs from the cluster's.
    #[error(
        "{0} is not the master key this cluster was created with; copy master.key from a node of the cluster"
    )]
    MasterKeyMismatch(PathBuf),
    /// Cluster mode: the cluster exists and this node has no master key file.
    #[error(
        "this cluster already has a master key and {0} does not exist; copy master.key from a node of the cluster there"
    )]
    MasterKeyMissing(PathBuf),
    /// Cluster mode: Redis could not be reached.
    #[error("redis: {0}")]
    Redis(#[from] redis::SharedError),
    /// The store could not be opened.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// Keys could not be created.
    #[error("keys: {0}")]
    Key(#[from] KeyError),
    /// Bootstrap failed.
    #[error("bootstrap: {0}")]
    Bootstrap(#[from] error::ApiError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// A running service.
pub struct Running {
    /// The bound address.
    pub addr: SocketAddr,
    /// The service (for in-process tests).
    pub service: Arc<Service>,
    /// Where the bootstrap admin token is (embedded mode).
    pub admin_token_file: PathBuf,
    /// Whether this start created the `default` account and its token.
    pub bootstrapped: bool,
    stop: oneshot::Sender<()>,
    server: JoinHandle<()>,
    flusher: JoinHandle<()>,
    /// Cluster mode: the change listener.
    watcher: Option<JoinHandle<()>>,
    /// Fetches the Key Attestation status list again (a URL configured).
    status_refresher: Option<JoinHandle<()>>,
    /// Held for the life of the service: one process per data dir.
    _lock: Option<std::fs::File>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Running {
    /// Stops accepting, finishes in-flight requests and flushes counters.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.server.await;
        self.flusher.abort();
        if let Some(w) = &self.watcher {
            w.abort();
        }
        if let Some(r) = &self.status_refresher {
            r.abort();
        }
        self.service.flush_counters().await;
    }

    /// Waits until the server ends by itself (it does not, unless it fails).
    pub async fn wait(&mut self) {
        let _ = (&mut self.server).await;
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StartError + '_ {
    move |source| StartError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes a new secret file with mode 0600 (refuses to overwrite).
fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), StartError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    f.write_all(bytes).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

/// Reads the master key file (refusing one that others may read).
fn read_master_key(path: &Path) -> Result<MasterKey, StartError> {
    let meta = std::fs::metadata(path).map_err(io(path))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(StartError::InsecureFile(path.to_owned()));
    }
    let bytes = std::fs::read(path).map_err(io(path))?;
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| StartError::BadMasterKey(path.to_owned()))?;
    Ok(MasterKey::from_bytes(&bytes)?)
}

fn random_key() -> Result<[u8; 32], StartError> {
    let mut k = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut k)
        .map_err(|_| KeyError::Random)?;
    Ok(k)
}

/// The embedded master key: created on first start.
fn load_master_key(path: &Path) -> Result<MasterKey, StartError> {
    if !path.exists() {
        write_secret(path, &random_key()?)?;
    }
    read_master_key(path)
}

/// Creates the data dir (0700) and takes its lock: one process per data dir.
fn lock_data_dir(dir: &Path) -> Result<std::fs::File, StartError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
    let lock_path = dir.join("genuine.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(io(&lock_path))?;
    if lock.try_lock().is_err() {
        return Err(StartError::DataDirInUse(dir.to_owned()));
    }
    Ok(lock)
}

async fn bind(config: &Config) -> Result<(tokio::net::TcpListener, SocketAddr), StartError> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    Ok((listener, addr))
}

fn rate_limit(config: &Config) -> Option<RateLimit> {
    (config.challenge_rate_limit > 0).then_some(RateLimit {
        limit: config.challenge_rate_limit,
        window_secs: config.challenge_rate_window_secs,
    })
}

fn trusted_proxies(config: &Config) -> Result<TrustedProxies, StartError> {
    TrustedProxies::parse(&config.trusted_proxies).map_err(|e| {
        StartError::Config(ConfigError::Invalid {
            setting: "trusted_proxies",
            message: e.to_string(),
        })
    })
}

/// Platform attestation parts from the configuration: roots and the status
/// list, with the URL to keep fetching it from.
struct PlatformSetup {
    roots: platform::PlatformRoots,
    revocations: Arc<platform::Revocations>,
    refresh_url: Option<String>,
}

fn read_roots(
    file: Option<&Path>,
    setting: &'static str,
    built_in: Vec<genuine_platform::x509::TrustAnchor>,
) -> Result<Vec<genuine_platform::x509::TrustAnchor>, StartError> {
    let Some(path) = file else {
        return Ok(built_in);
    };
    let pem = std::fs::read_to_string(path).map_err(io(path))?;
    genuine_platform::x509::TrustAnchor::from_pem(&pem).map_err(|e| {
        StartError::Config(ConfigError::Invalid {
            setting,
            message: format!("{}: {e}", path.display()),
        })
    })
}

async fn platform_setup(config: &Config) -> Result<PlatformSetup, StartError> {
    let defaults = platform::PlatformRoots::default();
    let roots = platform::PlatformRoots {
        apple: read_roots(
            config.apple_roots_file.as_deref(),
            "apple_roots_file",
            defaults.apple,
        )?,
        android: read_roots(
            config.android_roots_file.as_deref(),
            "android_roots_file",
            defaults.android,
        )?,
    };
    let (list, refresh_url) = match &config.android_status {
        None => {
            tracing::info!(
                "android_status is not set: Android Key Attestation does not check revocation"
            );
            (None, None)
        }
        Some(setting) => {
            let source = status::StatusSource::parse(setting);
            let list = status::load(&source).await.map_err(|message| {
                StartError::Config(ConfigError::Invalid {
                    setting: "android_status",
                    message,
                })
            })?;
            let url = match source {
                status::StatusSource::Url(u) => Some(u),
                status::StatusSource::File(_) => None,
            };
            (Some(list), url)
        }
    };
    Ok(PlatformSetup {
        roots,
        revocations: Arc::new(platform::Revocations::new(list)),
        refresh_url,
    })
}

fn spawn_status_refresh(config: &Config, setup: &PlatformSetup) -> Option<JoinHandle<()>> {
    setup.refresh_url.clone().map(|url| {
        tokio::spawn(status::refresh(
            url,
            Duration::from_secs(config.android_status_refresh_secs),
            setup.revocations.clone(),
        ))
    })
}

/// Starts the service in the mode the configuration selects: cluster mode
/// when it names a database and a Redis, embedded otherwise.
///
/// # Errors
/// [`StartError`] naming what failed.
pub async fn start(config: &Config, clock: Arc<dyn Clock>) -> Result<Running, StartError> {
    config.validate()?;
    if config.is_cluster() {
        start_cluster(config, clock).await
    } else {
        start_embedded(config, clock).await
    }
}

/// Starts the embedded service: SQLite in `config.data_dir`, the master key in
/// `master.key` (0600), in-memory replay set, rate limiter and unique-device
/// sketches (persisted in SQLite). On first start it creates the account
/// `default` and writes its admin token to `admin.token` (0600).
///
/// # Errors
/// [`StartError`] naming what failed; [`StartError::Config`] for a cluster
/// configuration (use [`start`]).
pub async fn start_embedded(config: &Config, clock: Arc<dyn Clock>) -> Result<Running, StartError> {
    config.validate()?;
    if config.is_cluster() {
        return Err(StartError::Config(ConfigError::Invalid {
            setting: "database_url",
            message: "start_embedded runs without a database; use start for cluster mode".into(),
        }));
    }
    let dir = &config.data_dir;
    let lock = lock_data_dir(dir)?;
    let master = load_master_key(&config.master_key_path())?;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.join("genuine.db")).await?);
    let platform = platform_setup(config).await?;
    let (listener, addr) = bind(config).await?;
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let rate_limiter = rate_limit(config)
        .map(|l| Arc::new(MemoryRateLimiter::new(l, RATE_LIMIT_CAPACITY)) as Arc<dyn RateLimiter>);
    let service = Arc::new(Service::new(ServiceParts {
        store: store.clone(),
        master,
        replay: Arc::new(MemoryReplay::new(
            config.replay_capacity,
            config.nonce_ttl_secs,
        )),
        public_url,
        nonce_ttl_secs: config.nonce_ttl_secs,
        clock,
        nonce_key: None,
        rate_limiter,
        devices: Arc::new(MemoryDevices::new(store)),
        trusted_proxies: trusted_proxies(config)?,
        platform_roots: platform.roots.clone(),
        revocations: platform.revocations.clone(),
    })?);
    let (admin_token_file, bootstrapped) = bootstrap(&service, dir).await?;
    let mut running = serve(listener, addr, service, admin_token_file, bootstrapped);
    running._lock = Some(lock);
    running.status_refresher = spawn_status_refresh(config, &platform);
    Ok(running)
}

/// Addresses tracked by the in-process rate limiter at most.
const RATE_LIMIT_CAPACITY: usize = 100_000;

/// Label of the check value that proves every node holds the same master key.
const MASTER_CHECK: &str = "master-key-check";
/// Label of the shared nonce key (sealed under the master key).
const NONCE_KEY: &str = "nonce-key";

/// The cluster's master key: the file at `path` if it exists, checked against
/// the value the cluster's first node stored; otherwise, if the cluster has
/// none yet, a new key that this node writes to `path`.
async fn cluster_master_key(path: &Path, store: &dyn Store) -> Result<MasterKey, StartError> {
    let check = |m: &MasterKey| m.derive(b"genuine/master-key-check/v1").to_vec();
    if path.exists() {
        let master = read_master_key(path)?;
        let stored = store.shared_secret(MASTER_CHECK, &check(&master)).await?;
        if stored != check(&master) {
            return Err(StartError::MasterKeyMismatch(path.to_owned()));
        }
        return Ok(master);
    }
    let bytes = random_key()?;
    let master = MasterKey::from_bytes(&bytes)?;
    let stored = store.shared_secret(MASTER_CHECK, &check(&master)).await?;
    if stored != check(&master) {
        // Another node created the cluster: its key file must be copied here.
        return Err(StartError::MasterKeyMissing(path.to_owned()));
    }
    write_secret(path, &bytes)?;
    Ok(master)
}

/// The nonce key every node of the cluster shares, sealed in the store.
async fn cluster_nonce_key(master: &MasterKey, store: &dyn Store) -> Result<NonceKey, StartError> {
    const CONTEXT: &str = "genuine/secret/v1/nonce-key";
    let rng = ring::rand::SystemRandom::new();
    let candidate = master.seal(&rng, CONTEXT, &random_key()?)?;
    let stored = store.shared_secret(NONCE_KEY, &candidate).await?;
    let key: [u8; 32] = master
        .open(CONTEXT, &stored)?
        .try_into()
        .map_err(|_| StoreError::Corrupt("the shared nonce key is not 32 bytes".into()))?;
    Ok(NonceKey::from_bytes(&key))
}

/// Starts a cluster node: PostgreSQL for the state, Redis for single use,
/// rate limits and unique devices, the master key from
/// `config.master_key_path()` (the same file on every node), the nonce key
/// shared through the store. Changes made through other nodes reach this
/// node's cache by PostgreSQL `LISTEN`/`NOTIFY`; while this node might miss
/// one, it reads the store on every request instead.
///
/// # Errors
/// [`StartError`] naming what failed.
pub async fn start_cluster(config: &Config, clock: Arc<dyn Clock>) -> Result<Running, StartError> {
    config.validate()?;
    let (Some(db_url), Some(redis_url)) = (&config.database_url, &config.redis_url) else {
        return Err(StartError::Config(ConfigError::Invalid {
            setting: "database_url",
            message: "cluster mode needs database_url and redis_url".into(),
        }));
    };
    let Some(public_url) = config.public_url.clone() else {
        return Err(StartError::Config(ConfigError::Invalid {
            setting: "public_url",
            message: "cluster mode needs the URL clients use for every node (the load balancer's), so that all nodes issue tokens with the same iss".into(),
        }));
    };
    let dir = &config.data_dir;
    let lock = lock_data_dir(dir)?;
    let pg = PostgresStore::connect(db_url, config.database_pool_size).await?;
    let store: Arc<dyn Store> = Arc::new(pg.clone());
    let master = cluster_master_key(&config.master_key_path(), store.as_ref()).await?;
    let nonce_key = cluster_nonce_key(&master, store.as_ref()).await?;
    let conn = redis::connect(redis_url).await?;
    let prefix = config.redis_key_prefix.clone();
    let rate_limiter = rate_limit(config).map(|l| {
        Arc::new(RedisRateLimiter::new(conn.clone(), prefix.clone(), l)) as Arc<dyn RateLimiter>
    });
    let replay = RedisReplay::new(conn.clone(), prefix.clone(), config.nonce_ttl_secs);
    replay
        .start_epoch(clock.now())
        .await
        .map_err(|e| redis::SharedError::Unavailable(e.to_string()))?;
    let platform = platform_setup(config).await?;
    let (listener, addr) = bind(config).await?;
    let service = Arc::new(Service::new(ServiceParts {
        store,
        master,
        replay: Arc::new(replay),
        public_url,
        nonce_ttl_secs: config.nonce_ttl_secs,
        clock,
        nonce_key: Some(nonce_key),
        rate_limiter,
        devices: Arc::new(RedisDevices::new(conn, prefix)),
        trusted_proxies: trusted_proxies(config)?,
        platform_roots: platform.roots.clone(),
        revocations: platform.revocations.clone(),
    })?);
    // No cached state until the change listener hears every change.
    service.set_cache_live(false);
    let (admin_token_file, bootstrapped) = bootstrap(&service, dir).await?;
    let watcher = tokio::spawn(watch_changes(pg, service.clone()));
    let mut running = serve(listener, addr, service, admin_token_file, bootstrapped);
    running._lock = Some(lock);
    running.watcher = Some(watcher);
    running.status_refresher = spawn_status_refresh(config, &platform);
    Ok(running)
}

/// How often a cluster node sends a heartbeat through its change channel.
const HEALTH_INTERVAL: Duration = Duration::from_millis(500);
/// A listener that has not delivered a heartbeat for this long is dropped.
const HEARTBEAT_DEADLINE: Duration = Duration::from_millis(2000);

/// Keeps a cluster node's account cache true to the store: one `LISTEN`
/// connection; every notified account is dropped from the cache. Every
/// half second the node sends a heartbeat through PostgreSQL to its own
/// listener; when the store does not take it, or the listener has not
/// delivered one for two seconds (a connection that died silently), or the
/// connection is lost, the cache is switched off (every request reads the
/// store, and fails while it is down) until a new listener is connected,
/// and then switched on again, empty.
async fn watch_changes(store: PostgresStore, service: Arc<Service>) {
    loop {
        match store.change_listener().await {
            Ok(mut listener) => {
                service.set_cache_live(true);
                let mut tick = tokio::time::interval(HEALTH_INTERVAL);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut heard = tokio::time::Instant::now();
                'connected: loop {
                    // The receive future lives until it completes or the
                    // listener is dropped: it is never cancelled half-read.
                    let next = listener.next();
                    tokio::pin!(next);
                    let received = loop {
                        tokio::select! {
                            r = &mut next => break r,
                            _ = tick.tick() => {
                                if heard.elapsed() > HEARTBEAT_DEADLINE {
                                    tracing::warn!("change listener delivers nothing; reconnecting");
                                    break 'connected;
                                }
                                let sent = tokio::time::timeout(HEARTBEAT_DEADLINE, store.heartbeat()).await;
                                if !matches!(sent, Ok(Ok(()))) {
                                    tracing::warn!("store not answering; dropping the change listener");
                                    break 'connected;
                                }
                            }
                        }
                    };
                    match received {
                        Ok(Some(account)) if account.is_empty() => {
                            heard = tokio::time::Instant::now();
                        }
                        Ok(Some(account)) => {
                            heard = tokio::time::Instant::now();
                            service.invalidate(&account);
                        }
                        Ok(None) => {
                            tracing::warn!("change listener lost its connection");
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "change listener failed");
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot listen for changes; retrying"),
        }
        service.set_cache_live(false);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Creates the `default` account on first start and writes its admin token
/// to `admin.token` in the data dir. In a cluster only the node that created
/// the account writes the file.
async fn bootstrap(service: &Service, dir: &Path) -> Result<(PathBuf, bool), StartError> {
    let admin_token_file = dir.join("admin.token");
    let token = match service.bootstrap().await {
        Ok(t) => t,
        // Another node created it at the same moment.
        Err(error::ApiError::Conflict(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let bootstrapped = match token {
        Some(token) => {
            // A stale file from an earlier data dir would be misleading.
            if admin_token_file.exists() {
                std::fs::remove_file(&admin_token_file).map_err(io(&admin_token_file))?;
            }
            write_secret(&admin_token_file, format!("{token}\n").as_bytes())?;
            true
        }
        None => false,
    };
    Ok((admin_token_file, bootstrapped))
}

fn serve(
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    service: Arc<Service>,
    admin_token_file: PathBuf,
    bootstrapped: bool,
) -> Running {
    let (stop, stopped) = oneshot::channel::<()>();
    let app = http::router(service.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let server = tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "server failed");
        }
    });
    let flush_service = service.clone();
    let flusher = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            flush_service.flush_counters().await;
        }
    });
    Running {
        addr,
        service,
        admin_token_file,
        bootstrapped,
        stop,
        server,
        flusher,
        watcher: None,
        status_refresher: None,
        _lock: None,
    }
}
