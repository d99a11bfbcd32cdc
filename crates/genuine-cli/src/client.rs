//! The admin API client behind every admin command.

use std::path::PathBuf;

use serde_json::Value;

/// Failures the CLI reports, each mapped to an exit status.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// Bad usage: exit 2.
    #[error("{0}")]
    Usage(String),
    /// The service refused or the operation failed: exit 1.
    #[error("{0}")]
    Refused(String),
    /// An offline check failed (its report is printed): exit 1.
    #[error("verification failed")]
    Failed,
}

pub(crate) struct AdminClient {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    account: String,
}

/// Percent-encodes a query value.
pub(crate) fn encode_query(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Whether the server URL names this machine (`localhost`, 127.0.0.0/8, `[::1]`).
fn is_loopback(server: &str) -> bool {
    let rest = server.split_once("://").map_or(server, |(_, r)| r);
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let host = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host.split(':').next().unwrap_or("")
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn token_file() -> PathBuf {
    std::env::var_os("GENUINE_DATA")
        .map_or_else(|| PathBuf::from("genuine-data"), PathBuf::from)
        .join("admin.token")
}

impl AdminClient {
    pub(crate) fn new(server: &str, token: Option<&str>, account: &str) -> anyhow::Result<Self> {
        // TLS through rustls with ring: no OpenSSL anywhere.
        let _ = rustls::crypto::ring::default_provider().install_default();
        // The local token file is only ever sent to a service on this machine.
        let token = match token {
            Some(t) => Some(t.trim().to_owned()),
            None if is_loopback(server) => std::fs::read_to_string(token_file())
                .ok()
                .map(|t| t.trim().to_owned()),
            None => None,
        };
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| CliError::Usage(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            base: server.trim_end_matches('/').to_owned(),
            token,
            account: account.to_owned(),
        })
    }

    /// `/admin/v1/accounts/{account}/{rest}`.
    pub(crate) fn path(&self, rest: &str) -> String {
        format!("/admin/v1/accounts/{}/{rest}", self.account)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let Some(token) = &self.token else {
            return Err(CliError::Usage(format!(
                "no admin token: pass --token, set GENUINE_ADMIN_TOKEN, or run where {} exists (it is used only for a service on this machine)",
                token_file().display()
            ))
            .into());
        };
        let resp = req.bearer_auth(token).send().await.map_err(|e| {
            CliError::Refused(format!(
                "cannot reach the service at {}: {e} (is `genuine serve` running? see --server)",
                self.base
            ))
        })?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| CliError::Refused(format!("reading the answer failed: {e}")))?;
        if status.is_success() {
            if bytes.is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_slice(&bytes).map_err(|e| {
                CliError::Refused(format!(
                    "the service answered something that is not JSON: {e}"
                ))
                .into()
            });
        }
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let code = body.get("error").and_then(Value::as_str).unwrap_or("error");
        let message = body
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("no message");
        let hint = match status.as_u16() {
            401 => " (check --token or GENUINE_ADMIN_TOKEN)",
            403 => " (use a token of this account with the right role, or --account)",
            503 => " (the service's store is unavailable; retry)",
            _ => "",
        };
        Err(CliError::Refused(format!(
            "{message} [{code}, HTTP {}]{hint}",
            status.as_u16()
        ))
        .into())
    }

    pub(crate) async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    pub(crate) async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    pub(crate) async fn put(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(self.http.put(format!("{}{path}", self.base)).json(body))
            .await
    }

    pub(crate) async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.delete(format!("{}{path}", self.base)))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_detection() {
        for yes in [
            "http://127.0.0.1:8080",
            "http://localhost",
            "https://LOCALHOST:1/x",
            "http://[::1]:80",
            "http://127.5.6.7",
        ] {
            assert!(is_loopback(yes), "{yes}");
        }
        for no in [
            "https://genuine.example.com",
            "http://10.0.0.1:8080",
            "http://127.0.0.1.evil.com",
            "http://localhost@evil.com",
        ] {
            assert!(!is_loopback(no), "{no}");
        }
    }
}
