//! Service configuration: one typed value, validated once at start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The service configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on (`127.0.0.1:8080`). Port 0 picks a free port.
    pub listen: SocketAddr,
    /// Data dir for the embedded store, master key and admin token (`./genuine-data`).
    pub data_dir: PathBuf,
    /// Public base URL of the service; tokens' `iss` is
    /// `{public_url}/v1/accounts/{account}`. Defaults to `http://{listen}`.
    pub public_url: Option<String>,
    /// Nonce lifetime in seconds (60).
    pub nonce_ttl_secs: u64,
    /// Hard limit on nonce ids remembered for single use (2,000,000: ids are
    /// kept for one to two nonce lifetimes, so this sustains about
    /// `capacity / (2 × nonce_ttl_secs)` attestations per second, ~16,000/s
    /// with the defaults, in about 100 MB at most).
    pub replay_capacity: usize,
    /// Cluster mode: PostgreSQL URL. Set together with `redis_url`; every
    /// node of a cluster uses the same database and the same master key.
    pub database_url: Option<String>,
    /// Cluster mode: connections per node to PostgreSQL (16).
    pub database_pool_size: u32,
    /// Cluster mode: Redis URL (single-use nonces, rate limits, unique devices).
    pub redis_url: Option<String>,
    /// Cluster mode: prefix of every Redis key (`genuine:`), so several
    /// clusters can share one Redis.
    pub redis_key_prefix: String,
    /// The master key file (`{data_dir}/master.key`). In cluster mode every
    /// node must hold a copy of the same file.
    pub master_key_file: Option<PathBuf>,
    /// Challenges allowed per client address (IPv6: per /64) in each window
    /// of `challenge_rate_window_secs`; beyond it `/v1/challenge` answers 429
    /// with `Retry-After`. 0 turns the limit off (1000).
    pub challenge_rate_limit: u32,
    /// The rate-limit window, seconds (60).
    pub challenge_rate_window_secs: u32,
    /// Reverse proxies (addresses or blocks such as `10.0.0.0/8`) whose
    /// `X-Forwarded-For` names the client, for rate limits and the `ip`
    /// claim. Empty by default: the socket peer is the client.
    pub trusted_proxies: Vec<String>,
    /// A PEM file of the App Attest root certificates to trust instead of
    /// the built-in Apple App Attestation Root CA.
    pub apple_roots_file: Option<PathBuf>,
    /// A PEM file of the Android Key Attestation root certificates to trust
    /// instead of the built-in Google hardware attestation roots.
    pub android_roots_file: Option<PathBuf>,
    /// Google's Key Attestation status list (revoked and suspended
    /// certificates): a file, or an `https://` (or `http://`) URL such as
    /// `https://android.googleapis.com/attestation/status`, loaded at start
    /// (the start fails if it cannot be) and, for a URL, fetched again every
    /// `android_status_refresh_secs`. Unset: revocation is not checked.
    pub android_status: Option<String>,
    /// How often a status list URL is fetched again, seconds (3600).
    pub android_status_refresh_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("genuine-data"),
            public_url: None,
            nonce_ttl_secs: 60,
            replay_capacity: 2_000_000,
            database_url: None,
            database_pool_size: 16,
            redis_url: None,
            redis_key_prefix: "genuine:".to_owned(),
            master_key_file: None,
            challenge_rate_limit: 1000,
            challenge_rate_window_secs: 60,
            trusted_proxies: Vec::new(),
            apple_roots_file: None,
            android_roots_file: None,
            android_status: None,
            android_status_refresh_secs: 3600,
        }
    }
}

/// Why the configuration was refused; names the setting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The TOML is invalid or names an unknown setting.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, naming the setting.
        message: String,
    },
    /// A setting has an invalid value.
    #[error("invalid setting {setting}: {message}")]
    Invalid {
        /// The setting's name.
        setting: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl Config {
    /// Reads a TOML file.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file and the setting.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// Applies `GENUINE_*` variables from `env` (read once by the caller).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the variable.
    pub fn apply_env<'a>(
        &mut self,
        env: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<(), ConfigError> {
        for (k, v) in env {
            match k {
                "GENUINE_LISTEN" => {
                    self.listen = v.parse().map_err(|e| ConfigError::Invalid {
                        setting: "GENUINE_LISTEN",
                        message: format!("{e}"),
                    })?;
                }
                "GENUINE_DATA" => self.data_dir = PathBuf::from(v),
                "GENUINE_PUBLIC_URL" => self.public_url = Some(v.to_owned()),
                "GENUINE_DATABASE_URL" => self.database_url = Some(v.to_owned()),
                "GENUINE_DATABASE_POOL_SIZE" => {
                    self.database_pool_size = parse_number("GENUINE_DATABASE_POOL_SIZE", v)?;
                }
                "GENUINE_REDIS_URL" => self.redis_url = Some(v.to_owned()),
                "GENUINE_REDIS_KEY_PREFIX" => self.redis_key_prefix = v.to_owned(),
                "GENUINE_MASTER_KEY_FILE" => self.master_key_file = Some(PathBuf::from(v)),
                "GENUINE_TRUSTED_PROXIES" => {
                    self.trusted_proxies = v
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect();
                }
                "GENUINE_ANDROID_STATUS" => self.android_status = Some(v.to_owned()),
                "GENUINE_CHALLENGE_RATE_LIMIT" => {
                    self.challenge_rate_limit = parse_number("GENUINE_CHALLENGE_RATE_LIMIT", v)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Whether this configuration runs in cluster mode (PostgreSQL and Redis).
    #[must_use]
    pub fn is_cluster(&self) -> bool {
        self.database_url.is_some() && self.redis_url.is_some()
    }

    /// The master key file.
    #[must_use]
    pub fn master_key_path(&self) -> PathBuf {
        self.master_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("master.key"))
    }

    /// Checks the values that types cannot.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match (&self.database_url, &self.redis_url) {
            (Some(_), None) => {
                return Err(ConfigError::Invalid {
                    setting: "redis_url",
                    message:
                        "cluster mode needs both database_url and redis_url; redis_url is not set"
                            .into(),
                });
            }
            (None, Some(_)) => {
                return Err(ConfigError::Invalid {
                    setting: "database_url",
                    message: "cluster mode needs both database_url and redis_url; database_url is not set".into(),
                });
            }
            (Some(db), Some(redis)) => {
                if !(db.starts_with("postgres://") || db.starts_with("postgresql://")) {
                    return Err(ConfigError::Invalid {
                        setting: "database_url",
                        message: "must start with postgres:// or postgresql://".into(),
                    });
                }
                if !(redis.starts_with("redis://") || redis.starts_with("rediss://")) {
                    return Err(ConfigError::Invalid {
                        setting: "redis_url",
                        message: "must start with redis://".into(),
                    });
                }
            }
            (None, None) => {}
        }
        if !(1..=1000).contains(&self.database_pool_size) {
            return Err(ConfigError::Invalid {
                setting: "database_pool_size",
                message: "must be between 1 and 1000".into(),
            });
        }
        if self.redis_key_prefix.is_empty()
            || self.redis_key_prefix.len() > 64
            || self.redis_key_prefix.chars().any(char::is_control)
        {
            return Err(ConfigError::Invalid {
                setting: "redis_key_prefix",
                message: "must be 1 to 64 characters, no control characters".into(),
            });
        }
        if let Err(e) = crate::clientip::TrustedProxies::parse(&self.trusted_proxies) {
            return Err(ConfigError::Invalid {
                setting: "trusted_proxies",
                message: e.to_string(),
            });
        }
        if !(1..=86_400).contains(&self.challenge_rate_window_secs) {
            return Err(ConfigError::Invalid {
                setting: "challenge_rate_window_secs",
                message: "must be between 1 and 86400".into(),
            });
        }
        if !(5..=600).contains(&self.nonce_ttl_secs) {
            return Err(ConfigError::Invalid {
                setting: "nonce_ttl_secs",
                message: "must be between 5 and 600".into(),
            });
        }
        if self.replay_capacity < 1000 {
            return Err(ConfigError::Invalid {
                setting: "replay_capacity",
                message: "must be at least 1000".into(),
            });
        }
        if !(60..=604_800).contains(&self.android_status_refresh_secs) {
            return Err(ConfigError::Invalid {
                setting: "android_status_refresh_secs",
                message: "must be between 60 and 604800".into(),
            });
        }
        if self.android_status.as_deref().is_some_and(str::is_empty) {
            return Err(ConfigError::Invalid {
                setting: "android_status",
                message: "must be a file or an http(s) URL".into(),
            });
        }
        if let Some(u) = &self.public_url
            && (!(u.starts_with("http://") || u.starts_with("https://")) || u.ends_with('/'))
        {
            return Err(ConfigError::Invalid {
                setting: "public_url",
                message: "must start with http:// or https:// and not end with /".into(),
            });
        }
        Ok(())
    }
}

fn parse_number<T: std::str::FromStr>(setting: &'static str, v: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    v.parse().map_err(|e: T::Err| ConfigError::Invalid {
        setting,
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_setting_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "listen = \"127.0.0.1:9\"\nlisten_port = 3\n").unwrap();
        let e = Config::from_file(&p).unwrap_err().to_string();
        assert!(e.contains("listen_port"), "{e}");
        let mut c = Config::default();
        let e = c
            .apply_env([("GENUINE_LISTEN", "nope")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("GENUINE_LISTEN"), "{e}");
        c.database_url = Some("postgres://x".into());
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("database_url") && e.contains("redis_url"), "{e}");
        c.redis_url = Some("redis://127.0.0.1".into());
        c.validate().unwrap();
        assert!(c.is_cluster());
        c.database_url = Some("mysql://x".into());
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("database_url")
        );
        let mut c = Config::default();
        let e = c
            .apply_env([("GENUINE_DATABASE_POOL_SIZE", "lots")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("GENUINE_DATABASE_POOL_SIZE"), "{e}");
        c.database_pool_size = 0;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("database_pool_size")
        );
    }
}
