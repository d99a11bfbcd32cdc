//! `genuine demo-app` (hidden): the demo's app, a small program on the SDK.
//!
//! It gets a token with `genuine_sdk::Client` and calls the demo API with
//! it in the `Genuine-Token` header (without a token, the `Genuine-Status`
//! header says why). `genuine demo` runs it as a child: untouched, as a
//! tampered copy, under a debugger, with `LD_PRELOAD`, with Frida attached.
//! What happened goes to the `--report` file (mode 0600; it holds the token,
//! which is a credential, so it is never printed).

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use serde_json::json;

/// Arguments of `genuine demo-app`.
#[derive(Debug, Args)]
pub(crate) struct DemoAppArgs {
    /// The attestation service.
    #[arg(long)]
    service_url: String,
    /// The protected endpoint of the demo API.
    #[arg(long)]
    api_url: String,
    /// App id.
    #[arg(long, default_value = crate::demo::APP_ID)]
    app_id: String,
    /// API domain (the tokens' aud).
    #[arg(long, default_value = crate::demo::API_DOMAIN)]
    api: String,
    /// The app's data dir (device key).
    #[arg(long)]
    data: PathBuf,
    /// Where to write what happened (JSON, mode 0600).
    #[arg(long)]
    report: PathBuf,
    /// Print `ready` and wait for a line on stdin before attesting (so a
    /// tool can attach first).
    #[arg(long)]
    wait_stdin: bool,
}

pub(crate) async fn run(args: DemoAppArgs) -> anyhow::Result<()> {
    let mut config =
        genuine_sdk::Config::new(&args.service_url, &args.app_id, &args.api, &args.data);
    config.app_version = env!("CARGO_PKG_VERSION").into();
    let client = genuine_sdk::Client::new(config).context("the SDK could not start")?;
    if args.wait_stdin {
        println!("ready {}", std::process::id());
        std::io::stdout().flush()?;
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
    }
    let token = client.token().await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()?;
    let mut req = http.get(&args.api_url);
    req = match &token {
        Ok(t) => req.header(genuine_sdk::TOKEN_HEADER, t.as_str()),
        Err(e) => req.header(genuine_sdk::STATUS_HEADER, e.status().as_str()),
    };
    let (status, body, api_error) = match req.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            (Some(status), resp.text().await.unwrap_or_default(), None)
        }
        Err(e) => (
            None,
            String::new(),
            Some(format!("calling the demo API: {e}")),
        ),
    };
    // What the SDK told the service (not secret; shown by the demo): the
    // signals of the evidence it sent, not a second look.
    let signals = client
        .last_signals()
        .map(|s| serde_json::to_value(s).unwrap_or_default());
    let report = json!({
        "device_id": client.device_id(),
        "sdk_status": client.status().as_str(),
        "token": token.as_ref().ok().map(genuine_sdk::Token::as_str),
        "error": token.as_ref().err().map(ToString::to_string),
        "api_status": status,
        "api_body": body,
        "api_error": api_error,
        "signals": signals,
    });
    write_private(&args.report, &serde_json::to_vec_pretty(&report)?)?;
    match (status, api_error) {
        (Some(status), _) => {
            println!("demo-app: API answered {status}");
            Ok(())
        }
        (None, e) => Err(anyhow::anyhow!(e.unwrap_or_default())),
    }
}

/// Writes `bytes` to `path` as a new file that only this user may read: a
/// temporary file (mode 0600) in the same dir, renamed over `path`. Whatever
/// was at `path` before — a file of another mode, a symlink — is replaced,
/// never written through.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    let cannot = || format!("cannot write {}", path.display());
    let mut tmp = tempfile::Builder::new()
        .prefix(".genuine-report-")
        .tempfile_in(dir)
        .with_context(cannot)?;
    tmp.write_all(bytes).with_context(cannot)?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(cannot)?;
    Ok(())
}
