//! The Genuine attestation service.
//!
//! - [`service`]: the attestation plane (challenge, attest, JWKS) over cached
//!   account state; [`verdict`] is the pure decision; [`keys`] signs tokens.
//! - [`admin`]: accounts, admin tokens, API domains and key rotation,
//!   registrations, device overrides, policy, token inspection, metrics.
//! - [`store`]: the [`store::Store`] trait and its SQLite implementation.
//! - [`http`]: the axum router; [`error::ApiError`] maps every failure to a
//!   status and a stable error code in one place.
//! - [`start_embedded`]: one process, a SQLite file, an in-memory replay set.
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
pub mod policy;
pub mod ratelimit;
pub mod redis;
pub mod replay;
pub mod service;
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

use crate::config::{Config, ConfigError};
use crate::keys::{KeyError, MasterKey};
use crate::replay::MemoryReplay;
use crate::service::{Clock, Service, ServiceParts};
use crate::store::{SqliteStore, StoreError};

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
        let _ = self.service.metrics().flush(self.service.store()).await;
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

fn load_master_key(dir: &Path) -> Result<MasterKey, StartError> {
    let path = dir.join("master.key");
    if !path.exists() {
        let mut k = [0u8; 32];
        ring::rand::SystemRandom::new()
            .fill(&mut k)
            .map_err(|_| KeyError::Random)?;
        write_secret(&path, &k)?;
    }
    let meta = std::fs::metadata(&path).map_err(io(&path))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(StartError::InsecureFile(path));
    }
    let bytes = std::fs::read(&path).map_err(io(&path))?;
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| StartError::BadMasterKey(path.clone()))?;
    Ok(MasterKey::from_bytes(&bytes)?)
}

/// Starts the embedded service: SQLite in `config.data_dir`, the master key in
/// `master.key` (0600), an in-memory replay set. On first start it creates the
/// account `default` and writes its admin token to `admin.token` (0600).
///
/// # Errors
/// [`StartError`] naming what failed.
pub async fn start_embedded(config: &Config, clock: Arc<dyn Clock>) -> Result<Running, StartError> {
    config.validate()?;
    let dir = &config.data_dir;
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
        return Err(StartError::DataDirInUse(dir.clone()));
    }
    let master = load_master_key(dir)?;
    let store = SqliteStore::open(&dir.join("genuine.db")).await?;
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
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let service = Arc::new(Service::new(ServiceParts {
        store: Arc::new(store),
        master,
        replay: Arc::new(MemoryReplay::new(
            config.replay_capacity,
            config.nonce_ttl_secs,
        )),
        public_url,
        nonce_ttl_secs: config.nonce_ttl_secs,
        clock,
    })?);
    let admin_token_file = dir.join("admin.token");
    let bootstrapped = match service.bootstrap().await? {
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
    let mut running = serve(listener, addr, service, admin_token_file, bootstrapped);
    running._lock = Some(lock);
    Ok(running)
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
            if let Err(e) = flush_service.metrics().flush(flush_service.store()).await {
                tracing::warn!(error = %e, "could not flush attestation counters; will retry");
            }
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
        _lock: None,
    }
}
