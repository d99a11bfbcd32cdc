//! Start-up checks: one service per data dir, secret files kept private,
//! invalid settings named.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::sync::Arc;

use genuine_server::config::Config;
use genuine_server::service::SystemClock;
use genuine_server::{StartError, start_embedded};

fn config(dir: &std::path::Path) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.join("data"),
        ..Config::default()
    }
}

#[tokio::test]
async fn a_data_dir_serves_one_process_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let first = start_embedded(&config(dir.path()), Arc::new(SystemClock))
        .await
        .unwrap();
    assert!(first.bootstrapped);
    let second = start_embedded(&config(dir.path()), Arc::new(SystemClock)).await;
    assert!(
        matches!(second, Err(StartError::DataDirInUse(_))),
        "{second:?}"
    );
    first.shutdown().await;
    let again = start_embedded(&config(dir.path()), Arc::new(SystemClock))
        .await
        .unwrap();
    assert!(
        !again.bootstrapped,
        "the account and its token exist already"
    );
    again.shutdown().await;
}

#[tokio::test]
async fn a_master_key_others_can_read_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    start_embedded(&config(dir.path()), Arc::new(SystemClock))
        .await
        .unwrap()
        .shutdown()
        .await;
    let key = dir.path().join("data/master.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = start_embedded(&config(dir.path()), Arc::new(SystemClock))
        .await
        .unwrap_err();
    assert!(matches!(err, StartError::InsecureFile(_)), "{err:?}");
    assert!(err.to_string().contains("chmod 600"), "{err}");
}

#[test]
fn invalid_settings_are_named_and_stop_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let run = |env: &[(&str, &str)], args: &[&str]| {
        let mut c = Command::new(common::genuine_bin());
        c.arg("serve")
            .args(["--listen", "127.0.0.1:0", "--data"])
            .arg(dir.path().join("d"))
            .args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let out = run(&[("GENUINE_DATABASE_URL", "postgres://x")], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("database_url"),
        "{out:?}"
    );
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "nonce_ttl_secs = 60\nlisten_on = \"x\"\n").unwrap();
    let out = run(&[], &["--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("listen_on"),
        "{out:?}"
    );
    std::fs::write(&cfg, "nonce_ttl_secs = 1\n").unwrap();
    let out = run(&[], &["--config", cfg.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nonce_ttl_secs"),
        "{out:?}"
    );
}
