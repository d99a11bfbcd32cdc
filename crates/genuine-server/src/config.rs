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
    /// Cluster mode: PostgreSQL URL (not supported by this build yet).
    pub database_url: Option<String>,
    /// Cluster mode: Redis URL (not supported by this build yet).
    pub redis_url: Option<String>,
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
            redis_url: None,
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
                "GENUINE_REDIS_URL" => self.redis_url = Some(v.to_owned()),
                _ => {}
            }
        }
        Ok(())
    }

    /// Checks the values that types cannot.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.database_url.is_some() {
            return Err(ConfigError::Invalid {
                setting: "database_url",
                message: "cluster mode on PostgreSQL is not available in this build yet; unset it to run embedded".into(),
            });
        }
        if self.redis_url.is_some() {
            return Err(ConfigError::Invalid {
                setting: "redis_url",
                message: "cluster mode on Redis is not available in this build yet; unset it to run embedded".into(),
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
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("database_url")
        );
    }
}
