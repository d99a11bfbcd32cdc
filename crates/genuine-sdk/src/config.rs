//! The client's configuration.

use std::path::PathBuf;
use std::time::Duration;

use genuine_protocol::evidence::is_identifier;

use crate::error::Error;

/// The longest timeout, margin or backoff a configuration may set: keeps
/// every deadline computed from them far from overflowing.
const MAX_DURATION: Duration = Duration::from_secs(3600);

/// What a [`Client`](crate::Client) needs: where the service is, which app
/// and API it attests for, and where the device key lives.
///
/// Build it with [`Config::new`] and change the public fields as needed
/// (new settings may be added, so it cannot be written as a struct literal).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// The attestation service, e.g. `https://attest.example.com`. Plain
    /// `http://` is accepted only for this machine (loopback) unless
    /// [`Config::allow_insecure_http`] is set.
    pub service_url: String,
    /// The account (`default` by default).
    pub account: String,
    /// The app id, e.g. `com.example.shop`.
    pub app_id: String,
    /// The app's version label (diagnostics only), the crate version of the
    /// SDK by default.
    pub app_version: String,
    /// The API domain the tokens are for (their `aud`), e.g. `api.example.com`.
    pub api: String,
    /// A dir only this app may read, for the device key.
    pub data_dir: PathBuf,
    /// A cached token is returned while it has more than this much life left
    /// (30 s by default; at most an hour); after that a fresh one is fetched.
    pub refresh_margin: Duration,
    /// Timeout of each HTTP request (10 s by default; at most an hour).
    pub request_timeout: Duration,
    /// Attempts per `token()` call on network errors and unavailability (3).
    pub attempts: u32,
    /// First backoff delay (250 ms); doubled per failure, with jitter.
    pub backoff_base: Duration,
    /// Longest backoff delay (60 s; at most an hour). A service's
    /// `Retry-After` is honoured up to this long.
    pub backoff_max: Duration,
    /// Accept `http://` to hosts other than loopback (never in production:
    /// tokens would travel in clear).
    pub allow_insecure_http: bool,
}

impl Config {
    /// A configuration with the defaults above and the `default` account.
    #[must_use]
    pub fn new(
        service_url: impl Into<String>,
        app_id: impl Into<String>,
        api: impl Into<String>,
        data_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            service_url: service_url.into(),
            account: "default".into(),
            app_id: app_id.into(),
            app_version: crate::probe::SDK_VERSION.into(),
            api: api.into(),
            data_dir: data_dir.into(),
            refresh_margin: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            attempts: 3,
            backoff_base: Duration::from_millis(250),
            backoff_max: Duration::from_secs(60),
            allow_insecure_http: false,
        }
    }

    /// Checks every setting; the error names the one that is wrong.
    ///
    /// # Errors
    /// [`Error::Config`].
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |what: &str| Err(Error::Config(what.to_owned()));
        let host = match url_host(&self.service_url) {
            Ok(h) => h,
            Err(why) => return Err(Error::Config(format!("service_url: {why}"))),
        };
        if self.service_url.starts_with("http://")
            && !self.allow_insecure_http
            && !is_loopback(&host)
        {
            return bad(
                "service_url: plain http is accepted only for this machine (use https, or set allow_insecure_http for a test network)",
            );
        }
        for (name, v) in [
            ("account", &self.account),
            ("app_id", &self.app_id),
            ("app_version", &self.app_version),
            ("api", &self.api),
        ] {
            if !is_identifier(v) {
                return Err(Error::Config(format!(
                    "{name}: must be 1 to 255 bytes without control characters"
                )));
            }
        }
        if self.data_dir.as_os_str().is_empty() {
            return bad("data_dir: must name a dir for the device key");
        }
        if self.attempts == 0 {
            return bad("attempts: must be at least 1");
        }
        if self.request_timeout.is_zero() || self.request_timeout > MAX_DURATION {
            return bad("request_timeout: must be more than 0 and at most an hour");
        }
        if self.refresh_margin > MAX_DURATION {
            return bad("refresh_margin: must be at most an hour");
        }
        if self.backoff_base.is_zero()
            || self.backoff_max < self.backoff_base
            || self.backoff_max > MAX_DURATION
        {
            return bad(
                "backoff_base/backoff_max: need 0 < backoff_base <= backoff_max <= an hour",
            );
        }
        Ok(())
    }

    /// The service URL without a trailing `/`.
    pub(crate) fn base_url(&self) -> &str {
        self.service_url.trim_end_matches('/')
    }
}

/// The host of an `http://` or `https://` URL without user info.
fn url_host(url: &str) -> Result<String, &'static str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("must start with https:// (or http:// for this machine)")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err("must not hold user info");
    }
    if rest.contains(['?', '#']) {
        return Err("must not hold a query or fragment");
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    if host.is_empty() {
        return Err("has no host");
    }
    Ok(host.to_ascii_lowercase())
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(url: &str) -> Config {
        Config::new(url, "com.example.shop", "api.example.com", "/tmp/x")
    }

    #[test]
    fn urls() {
        for ok in [
            "https://attest.example.com",
            "https://attest.example.com:8443/base/",
            "http://127.0.0.1:8080",
            "http://localhost:1",
            "http://[::1]:80",
        ] {
            cfg(ok).validate().unwrap();
        }
        for bad in [
            "ftp://x",
            "attest.example.com",
            "http://attest.example.com",
            "http://127.0.0.1.evil.com",
            "https://user@attest.example.com",
            "https://",
            "https://x/?q=1",
        ] {
            assert!(
                matches!(cfg(bad).validate(), Err(Error::Config(m)) if m.starts_with("service_url")),
                "{bad}"
            );
        }
        let mut c = cfg("http://10.0.0.5:8080");
        c.allow_insecure_http = true;
        c.validate().unwrap();
    }

    #[test]
    fn fields_named() {
        let mut c = cfg("https://a.example");
        c.app_id = String::new();
        assert!(matches!(c.validate(), Err(Error::Config(m)) if m.starts_with("app_id")));
        let mut c = cfg("https://a.example");
        c.attempts = 0;
        assert!(matches!(c.validate(), Err(Error::Config(m)) if m.starts_with("attempts")));
        let mut c = cfg("https://a.example");
        c.backoff_max = Duration::from_millis(1);
        assert!(matches!(c.validate(), Err(Error::Config(m)) if m.starts_with("backoff")));
        let mut c = cfg("https://a.example");
        c.backoff_max = Duration::MAX;
        assert!(matches!(c.validate(), Err(Error::Config(m)) if m.starts_with("backoff")));
        let mut c = cfg("https://a.example");
        c.request_timeout = Duration::from_secs(3601);
        assert!(matches!(c.validate(), Err(Error::Config(m)) if m.starts_with("request_timeout")));
        let mut c = cfg("https://a.example");
        c.refresh_margin = Duration::MAX;
        assert!(matches!(c.validate(), Err(Error::Config(m)) if m.starts_with("refresh_margin")));
        let mut c = cfg("https://a.example");
        c.backoff_max = Duration::from_secs(3600);
        c.validate().unwrap();
    }
}
