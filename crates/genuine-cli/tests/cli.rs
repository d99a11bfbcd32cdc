//! The `genuine` command end to end, as a user runs it: every admin command
//! against a `genuine serve` child process, with exit statuses (0 success,
//! 1 refused, 2 bad usage), one-line errors on stderr, human tables and
//! `--json` output that is exactly one JSON document.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{ServeProcess, decode_jwt, genuine_bin};
use genuine_protocol::b64;
use serde_json::Value;

const APP: &str = "com.example.shop";
const API: &str = "api.example.com";
const DEVICE_A: &str = "AAAAAAAAAAAAAAAAAAAAAA";
const DEVICE_B: &str = "AQAAAAAAAAAAAAAAAAAAAA";

/// What one run of the command gave.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// A service on a temp data dir named `genuine-data` (the CLI's default), and
/// the bootstrap admin token read from its token file.
struct Env {
    serve: ServeProcess,
    dir: tempfile::TempDir,
    token: String,
}

impl Env {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("genuine-data");
        let serve = ServeProcess::start(&data, "serve.log", "info");
        let token = std::fs::read_to_string(data.join("admin.token"))
            .unwrap()
            .trim()
            .to_owned();
        assert!(token.starts_with("gat_"), "{token}");
        Self { serve, dir, token }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("genuine-data")
    }

    /// `genuine` with no server, token or data dir from the test's own environment.
    fn bare(&self) -> Command {
        let mut c = Command::new(genuine_bin());
        c.env_remove("GENUINE_SERVER")
            .env_remove("GENUINE_ADMIN_TOKEN")
            .env_remove("GENUINE_DATA")
            .env_remove("RUST_LOG")
            .current_dir(self.dir.path().join("cwd-without-token"));
        std::fs::create_dir_all(self.dir.path().join("cwd-without-token")).unwrap();
        c
    }

    /// `genuine` pointed at the service with `GENUINE_SERVER` and `GENUINE_ADMIN_TOKEN`.
    fn cmd(&self) -> Command {
        let mut c = self.bare();
        c.env("GENUINE_SERVER", self.serve.url())
            .env("GENUINE_ADMIN_TOKEN", &self.token);
        c
    }

    fn run(&self, args: &[&str]) -> Out {
        run(self.cmd().args(args))
    }

    /// Runs; asserts exit 0; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(out.code, 0, "genuine {args:?}: {out:?}");
        out.stdout
    }

    /// Runs with `--json`; asserts exit 0 and that stdout is exactly one JSON document.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        one_json(&self.ok(&all))
    }

    /// Runs; asserts an argument error (exit 2); returns its first line.
    fn usage(&self, args: &[&str]) -> String {
        usage_error(&self.run(args), args)
    }

    /// Runs; asserts the exit status and a one-line error on stderr; returns that line.
    fn fail(&self, args: &[&str], code: i32) -> String {
        fails(&self.run(args), code, args)
    }
}

fn run(cmd: &mut Command) -> Out {
    let o = cmd.output().unwrap();
    Out {
        code: o.status.code().expect("exited by a signal"),
        stdout: String::from_utf8(o.stdout).unwrap(),
        stderr: String::from_utf8(o.stderr).unwrap(),
    }
}

fn fails(out: &Out, code: i32, args: &[&str]) -> String {
    assert_eq!(out.code, code, "genuine {args:?}: {out:?}");
    let err = out.stderr.trim_end();
    assert_eq!(
        err.lines().count(),
        1,
        "genuine {args:?}: the error is not one line: {err:?}"
    );
    assert!(err.starts_with("error: "), "genuine {args:?}: {err:?}");
    err.to_owned()
}

/// An argument error from the parser: exit 2 and an `error:` first line
/// (the parser adds a usage line and a pointer to `--help` below it).
fn usage_error(out: &Out, args: &[&str]) -> String {
    assert_eq!(out.code, 2, "genuine {args:?}: {out:?}");
    assert!(out.stdout.is_empty(), "genuine {args:?}: {out:?}");
    let first = out.stderr.lines().next().unwrap_or_default();
    assert!(first.starts_with("error: "), "genuine {args:?}: {out:?}");
    first.to_owned()
}

/// Parses stdout as exactly one JSON document (trailing text is an error).
fn one_json(stdout: &str) -> Value {
    serde_json::from_str(stdout)
        .unwrap_or_else(|e| panic!("not exactly one JSON document ({e}): {stdout:?}"))
}

/// The cells of the table row whose first cell is `first`.
fn row<'a>(table: &'a str, first: &str) -> Vec<&'a str> {
    table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&first))
        .unwrap_or_else(|| panic!("no row {first:?} in\n{table}"))
}

/// Asserts that every column of a table starts at the same offset on each line
/// (for tables whose cells have no spaces).
fn assert_aligned(table: &str) {
    let starts = |line: &str| -> Vec<usize> {
        let b = line.as_bytes();
        (0..b.len())
            .filter(|&i| b[i] != b' ' && (i == 0 || b[i - 1] == b' '))
            .collect()
    };
    let mut lines = table.lines();
    let head = starts(lines.next().unwrap());
    for l in lines {
        assert_eq!(starts(l), head, "not aligned:\n{table}");
    }
}

/// A few ELF files that `measure` must refuse, written under `dir`.
fn bad_files(dir: &Path) -> [(PathBuf, &'static str); 3] {
    let real = std::fs::read(genuine_bin()).unwrap();
    assert_eq!(&real[..4], b"\x7fELF");
    assert_eq!(real[4], 2, "the genuine binary is a 64-bit ELF");
    let not_elf = dir.join("notes.txt");
    std::fs::write(&not_elf, b"#!/bin/sh\necho this is not an ELF file\n").unwrap();
    let truncated = dir.join("truncated");
    std::fs::write(&truncated, &real[..100]).unwrap();
    let elf32 = dir.join("elf32");
    let mut head = real[..4096].to_vec();
    head[4] = 1;
    std::fs::write(&elf32, head).unwrap();
    [
        (not_elf, "not an ELF file"),
        (truncated, "truncated"),
        (elf32, "32-bit"),
    ]
}

#[test]
fn api_add_list_rotate_remove() {
    let env = Env::start();

    // ES256 (the default) and EdDSA.
    let out = env.ok(&["api", "add", API]);
    assert!(out.contains(&format!("added API {API} (ES256")), "{out}");
    assert!(!out.contains("secret"), "no secret for ES256: {out}");
    let out = env.ok(&[
        "api",
        "add",
        "ed.example.com",
        "--alg",
        "EdDSA",
        "--ttl",
        "60",
    ]);
    assert!(
        out.contains("added API ed.example.com (EdDSA, tokens live 60 s)"),
        "{out}"
    );
    assert!(!out.contains("secret"), "no secret for EdDSA: {out}");

    // HS256 prints its secret once: 32 bytes, base64url.
    let out = env.run(&["api", "add", "hs.example.com", "--alg", "HS256"]);
    assert_eq!(out.code, 0, "{out:?}");
    let secret_line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("HS256 secret"))
        .unwrap_or_else(|| panic!("no secret line: {out:?}"));
    let secret = secret_line.rsplit(' ').next().unwrap().to_owned();
    assert_eq!(b64::decode(&secret).unwrap().len(), 32, "{secret_line}");
    assert_eq!(out.stdout.matches(&secret).count(), 1, "{out:?}");
    assert!(!out.stderr.contains(&secret));

    // Adding a domain twice is refused; a bad algorithm is bad usage.
    let err = env.fail(&["api", "add", API], 1);
    assert!(err.contains("HTTP 409"), "{err}");
    let err = env.usage(&["api", "add", "x.example.com", "--alg", "RS256"]);
    assert!(err.contains("RS256"), "{err}");
    let err = env.fail(&["api", "add", "y.example.com", "--ttl", "5"], 1);
    assert!(err.contains("ttl"), "{err}");

    // The table: a header and one aligned row per domain, never a secret.
    let table = env.ok(&["api", "list"]);
    assert_eq!(
        table
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["DOMAIN", "ALG", "TTL", "KID"],
        "{table}"
    );
    assert_eq!(table.lines().count(), 4, "{table}");
    assert_eq!(row(&table, API)[1..3], ["ES256", "300"]);
    assert_eq!(row(&table, "ed.example.com")[1..3], ["EdDSA", "60"]);
    assert_eq!(row(&table, "hs.example.com")[1..3], ["HS256", "300"]);
    assert!(!table.contains(&secret));
    assert_aligned(&table);
    let list = env.json(&["api", "list"]);
    let apis = list.as_array().unwrap();
    assert_eq!(apis.len(), 3, "{list}");
    assert!(!list.to_string().contains("secret"), "{list}");
    let es = apis.iter().find(|a| a["domain"] == API).unwrap().clone();
    assert_eq!(es["alg"], "ES256");
    assert_eq!(row(&table, API)[3], es["kid"].as_str().unwrap());

    // Rotate: a new kid, shown by list; an HS256 rotation prints the new secret.
    let out = env.ok(&["api", "rotate", API]);
    let rotated = env.json(&["api", "list"]);
    let new_kid = rotated
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["domain"] == API)
        .unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(es["kid"], new_kid.as_str());
    assert!(out.contains(&format!("new key {new_kid}")), "{out}");
    let rotated = env.json(&["api", "rotate", "hs.example.com"]);
    let new_secret = rotated["secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    assert_eq!(b64::decode(new_secret).unwrap().len(), 32);
    let err = env.fail(&["api", "rotate", "nope.example.com"], 1);
    assert!(err.contains("HTTP 404"), "{err}");

    // Remove.
    let out = env.ok(&["api", "remove", "ed.example.com"]);
    assert!(out.contains("removed API ed.example.com"), "{out}");
    let table = env.ok(&["api", "list"]);
    assert!(!table.contains("ed.example.com"), "{table}");
    let err = env.fail(&["api", "remove", "ed.example.com"], 1);
    assert!(
        err.contains("not-found") && err.contains("HTTP 404"),
        "{err}"
    );
    assert_eq!(
        env.json(&["api", "remove", "hs.example.com"]),
        serde_json::json!({"removed": "hs.example.com"})
    );
    assert_eq!(env.json(&["api", "list"]).as_array().unwrap().len(), 1);
}

#[test]
fn measure_and_app_registrations() {
    let env = Env::start();
    let bin = genuine_bin();
    let bin_s = bin.to_str().unwrap();

    // measure: algorithm, 64 hex digits, the file.
    let out = env.ok(&["measure", bin_s]);
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(words.len(), 3, "{out}");
    assert_eq!(words[0], "elf-exec-segments-sha256/v1");
    let digest = words[1].to_owned();
    assert_eq!(digest.len(), 64, "{out}");
    assert!(
        digest
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{out}"
    );
    assert_eq!(words[2], bin_s);
    // It needs no service and no token, and is deterministic.
    let out = run(env.bare().args(["measure", bin_s, "--json"]));
    assert_eq!(out.code, 0, "{out:?}");
    let m = one_json(&out.stdout);
    assert_eq!(m["alg"], "elf-exec-segments-sha256/v1");
    assert_eq!(m["digest"], digest.as_str());

    // Files it cannot measure: a clear one-line error and exit 2.
    for (file, why) in bad_files(env.dir.path()) {
        let f = file.to_str().unwrap();
        let err = fails(&run(env.bare().args(["measure", f])), 2, &["measure", f]);
        assert!(err.contains(why), "{f}: {err}");
        assert!(err.contains(f), "names the file: {err}");
        let err = env.fail(&["app", "register", APP, f], 2);
        assert!(err.contains(why), "{f}: {err}");
    }
    assert!(env.json(&["app", "list"]).as_array().unwrap().is_empty());

    // register prints the registration id (and only that) on stdout.
    let out = env.run(&[
        "app",
        "register",
        APP,
        bin_s,
        "--version",
        "1.0",
        "--expire-after",
        "30d",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    let id = out.stdout.trim().to_owned();
    assert_eq!(out.stdout.lines().count(), 1, "{out:?}");
    assert!(id.starts_with("reg_"), "{out:?}");
    assert!(out.stderr.contains(&digest), "{out:?}");
    let err = env.fail(
        &["app", "register", APP, bin_s, "--expire-after", "soon"],
        2,
    );
    assert!(err.contains("30d"), "says what to do: {err}");

    // What it stored is what measure printed.
    let list = env.json(&["app", "list"]);
    let regs = list.as_array().unwrap();
    assert_eq!(regs.len(), 1, "{list}");
    let r = &regs[0];
    assert_eq!(r["id"], id.as_str());
    assert_eq!(r["app_id"], APP);
    assert_eq!(r["digest"], digest.as_str());
    assert_eq!(r["alg"], "elf-exec-segments-sha256/v1");
    assert_eq!(r["version"], "1.0");
    assert_eq!(r["platform"], "linux");
    assert_eq!(
        r["expires_at"].as_i64().unwrap() - r["created_at"].as_i64().unwrap(),
        30 * 86_400,
        "{r}"
    );

    // A second app; list filters by app id.
    let other = env.ok(&["app", "register", "com.example.other", bin_s]);
    let other = other.trim();
    let table = env.ok(&["app", "list"]);
    assert_eq!(
        table
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["ID", "APP", "VERSION", "PLATFORM", "DIGEST", "EXPIRES"]
    );
    let cells = row(&table, &id);
    assert_eq!(cells[1..5], [APP, "1.0", "linux", &digest[..16]], "{table}");
    assert!(cells[5].ends_with('Z'), "an RFC 3339 expiry: {table}");
    assert_eq!(row(&table, other)[2..4], ["-", "linux"], "{table}");
    assert_aligned(&table);
    let only = env.ok(&["app", "list", APP]);
    assert!(only.contains(&id) && !only.contains(other), "{only}");
    assert_eq!(
        env.json(&["app", "list", "com.example.none"]),
        serde_json::json!([])
    );
    assert_eq!(
        env.ok(&["app", "list", "com.example.none"]).trim(),
        "(none)"
    );

    // remove.
    let out = env.ok(&["app", "remove", &id]);
    assert!(out.contains(&format!("removed registration {id}")), "{out}");
    let err = env.fail(&["app", "remove", &id], 1);
    assert!(err.contains("HTTP 404"), "{err}");
    let list = env.json(&["app", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["id"], other);
}

#[test]
fn device_overrides() {
    let env = Env::start();
    assert_eq!(env.ok(&["device", "list"]).trim(), "(none)");
    let out = env.ok(&["device", "allow", DEVICE_A, "--note", "my laptop"]);
    assert_eq!(out.trim(), format!("device {DEVICE_A}: allow"));
    let v = env.json(&["device", "block", DEVICE_B, "--note", "fraud"]);
    assert_eq!(v["device_id"], DEVICE_B);
    assert_eq!(v["action"], "block");
    assert_eq!(v["note"], "fraud");

    let table = env.ok(&["device", "list"]);
    assert_eq!(
        table
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["DEVICE", "ACTION", "NOTE", "UPDATED"]
    );
    assert_eq!(row(&table, DEVICE_A)[1..4], ["allow", "my", "laptop"]);
    assert_eq!(row(&table, DEVICE_B)[1..3], ["block", "fraud"]);
    let list = env.json(&["device", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");

    // Changing an override replaces it.
    env.ok(&["device", "block", DEVICE_A]);
    let list = env.json(&["device", "list"]);
    let a = list
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["device_id"] == DEVICE_A)
        .unwrap();
    assert_eq!(a["action"], "block");

    let out = env.ok(&["device", "clear", DEVICE_A]);
    assert!(out.contains(&format!("cleared device {DEVICE_A}")), "{out}");
    let list = env.json(&["device", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["device_id"], DEVICE_B);
    let err = env.fail(&["device", "clear", DEVICE_A], 1);
    assert!(err.contains("HTTP 404"), "{err}");

    // Not a device id.
    let err = env.fail(&["device", "allow", "short"], 1);
    assert!(err.contains("device_id"), "{err}");
    env.usage(&["device", "frob", DEVICE_A]);
}

#[test]
fn policy_show_and_set() {
    let env = Env::start();
    let table = env.ok(&["policy", "show"]);
    assert_eq!(
        table
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["KEY", "VALUE"]
    );
    assert_eq!(row(&table, "reject.virtualized")[1], "false");
    assert_eq!(row(&table, "reject.debugger")[1], "true");
    assert_eq!(row(&table, "reveal_reasons")[1], "false");

    let out = env.ok(&["policy", "set", "reject.virtualized", "true"]);
    assert_eq!(row(&out, "reject.virtualized")[1], "true", "{out}");
    let p = env.json(&["policy", "show"]);
    assert_eq!(p["reject"]["virtualized"], true, "{p}");
    let p = env.json(&["policy", "set", "token.ip", "true"]);
    assert_eq!(p["token"]["ip"], true, "{p}");

    // An unknown key: exit 1, one line that names the known keys.
    let err = env.fail(&["policy", "set", "nope", "true"], 1);
    assert!(err.contains("nope"), "{err}");
    for key in genuine_server::policy::Policy::KEYS {
        assert!(err.contains(key), "{key} missing from {err}");
    }
    let err = env.fail(&["policy", "set", "reject.debugger", "maybe"], 1);
    assert!(err.contains("true or false"), "{err}");
    // Nothing changed by the refused calls.
    let p = env.json(&["policy", "show"]);
    assert_eq!(p["reject"]["debugger"], true, "{p}");
    env.usage(&["policy", "set", "reveal_reasons"]);
}

#[test]
fn token_example_and_check() {
    let env = Env::start();
    env.ok(&["api", "add", API]);

    // A valid example token checks out: exit 0, "valid".
    let token = env.ok(&["token", "example", API]).trim().to_owned();
    assert_eq!(token.split('.').count(), 3, "{token}");
    let out = env.ok(&["token", "check", &token]);
    let verdict = out.lines().next().unwrap();
    assert_eq!(
        verdict.split_whitespace().collect::<Vec<_>>(),
        ["token:", "valid"],
        "{out}"
    );
    assert!(out.contains("reasons: none"), "{out}");
    assert!(out.contains(API), "claims are printed: {out}");
    let report = env.json(&["token", "check", &token]);
    assert_eq!(report["valid"], true, "{report}");
    assert_eq!(report["reasons"], serde_json::json!([]));
    env.ok(&["token", "check", &token, "--api", API]);
    let err = env.fail(&["token", "check", &token, "--api", "other.example.com"], 1);
    assert!(err.contains("not valid"), "{err}");

    // A decoy: exit 1, and its decoded reasons.
    let decoy = env
        .ok(&["token", "example", API, "--invalid"])
        .trim()
        .to_owned();
    assert_eq!(decode_jwt(&decoy).0, decode_jwt(&token).0, "same header");
    let out = env.run(&["token", "check", &decoy]);
    fails(&out, 1, &["token", "check"]);
    assert!(out.stdout.contains("DECOY"), "{out:?}");
    assert!(
        out.stdout
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["reasons:", "app-not-registered"]),
        "{out:?}"
    );
    let out = env.run(&["token", "check", &decoy, "--json"]);
    assert_eq!(out.code, 1, "{out:?}");
    let report = one_json(&out.stdout);
    assert_eq!(report["valid"], false);
    assert_eq!(report["decoy"], true);
    assert_eq!(report["reasons"], serde_json::json!(["app-not-registered"]));

    // A binding becomes the pay claim: base64url(SHA-256(data)).
    let bound = env
        .ok(&["token", "example", API, "--binding", "data", "--ttl", "60"])
        .trim()
        .to_owned();
    let (_, claims) = decode_jwt(&bound);
    let want = b64::encode(ring::digest::digest(&ring::digest::SHA256, b"data").as_ref());
    assert_eq!(claims["pay"], want.as_str(), "{claims}");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        60
    );
    assert!(decode_jwt(&token).1.get("pay").is_none());
    let out = env.ok(&["token", "check", &bound]);
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["pay", want.as_str()]),
        "{out}"
    );

    // Not a token; an unknown API.
    let out = env.run(&["token", "check", "garbage"]);
    fails(&out, 1, &["token", "check", "garbage"]);
    assert!(out.stdout.contains("INVALID"), "{out:?}");
    let err = env.fail(&["token", "example", "nope.example.com"], 1);
    assert!(err.contains("HTTP 404"), "{err}");
}

#[test]
fn metrics_accounts_tokens_and_usage_errors() {
    let env = Env::start();

    // metrics --json: exactly one document.
    let m = env.json(&["metrics"]);
    assert!(m["outcomes"].is_object(), "{m}");
    assert!(m["reasons"].is_object(), "{m}");
    assert!(m["since"].is_i64(), "{m}");
    assert!(m["unique_devices"]["month"].is_u64(), "{m}");
    let m = env.json(&["metrics", "--since", "1d"]);
    assert!(m["outcomes"].is_object(), "{m}");
    let out = env.ok(&["metrics"]);
    assert!(out.starts_with("attestations since "), "{out}");
    assert!(out.contains("this month"), "{out}");
    let err = env.fail(&["metrics", "--since", "forever"], 2);
    assert!(err.contains("invalid duration"), "{err}");

    // account add prints the new account's admin token once; it works for that account only.
    let out = env.ok(&["account", "add", "tenant2"]);
    assert!(out.contains("created account tenant2"), "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("admin token (shown once): "))
        .unwrap_or_else(|| panic!("{out}"));
    let t2 = line.rsplit(' ').next().unwrap().to_owned();
    assert!(t2.starts_with("gat_"), "{line}");
    assert_eq!(out.matches(&t2).count(), 1, "{out}");
    assert_ne!(t2, env.token);
    let out = env.ok(&["--account", "tenant2", "--token", &t2, "api", "list"]);
    assert_eq!(out.trim(), "(none)");
    let err = env.fail(&["--token", &t2, "api", "list"], 1);
    assert!(
        err.contains("HTTP 403") && err.contains("--account"),
        "{err}"
    );
    let err = env.fail(&["account", "add", "tenant2"], 1);
    assert!(err.contains("HTTP 409"), "{err}");

    // admin-token create: a dev token may read but not change the policy.
    let v = env.json(&["admin-token", "create", "--role", "dev", "--label", "ci"]);
    let dev = v["token"].as_str().unwrap().to_owned();
    assert_eq!(v["role"], "dev");
    env.ok(&["--token", &dev, "policy", "show"]);
    let err = env.fail(
        &["--token", &dev, "policy", "set", "reveal_reasons", "true"],
        1,
    );
    assert!(err.contains("HTTP 403"), "{err}");

    // A wrong token: exit 1 and a hint.
    let err = env.fail(&["--token", "gat_wrong", "api", "list"], 1);
    assert!(err.contains("HTTP 401"), "{err}");
    assert!(
        err.contains("check --token or GENUINE_ADMIN_TOKEN"),
        "{err}"
    );
    let mut c = env.cmd();
    c.env("GENUINE_ADMIN_TOKEN", "gat_wrong")
        .args(["api", "list"]);
    fails(&run(&mut c), 1, &["api", "list"]);

    // No token anywhere: bad usage, with what to do.
    let mut c = env.bare();
    c.env("GENUINE_SERVER", env.serve.url())
        .args(["api", "list"]);
    let err = fails(&run(&mut c), 2, &["api", "list"]);
    assert!(err.contains("--token"), "{err}");

    // No service there: exit 1, one line.
    let err = env.fail(&["--server", "http://127.0.0.1:1", "api", "list"], 1);
    assert!(err.contains("genuine serve"), "{err}");

    // Unknown subcommands and flags are bad usage.
    let err = env.usage(&["frobnicate"]);
    assert!(err.contains("frobnicate"), "{err}");
    env.usage(&["api", "frobnicate"]);
    env.usage(&["api", "list", "--nope"]);
    env.usage(&[]);
}

#[test]
fn the_token_file_of_the_local_data_dir() {
    let env = Env::start();
    let parent = env.dir.path();
    let data = env.data();
    let local = |data_env: Option<&std::ffi::OsStr>| {
        let mut c = env.bare();
        c.current_dir(parent)
            .env("GENUINE_SERVER", env.serve.url())
            .args(["api", "add", "x.example.com", "--alg", "EdDSA"]);
        if let Some(d) = data_env {
            c.env("GENUINE_DATA", d);
        }
        run(&mut c)
    };
    // GENUINE_DATA, relative to the working directory.
    let out = local(Some("genuine-data".as_ref()));
    assert_eq!(out.code, 0, "{out:?}");
    // GENUINE_DATA, absolute.
    let mut c = env.bare();
    c.env("GENUINE_SERVER", env.serve.url())
        .env("GENUINE_DATA", &data)
        .args(["api", "list"]);
    let out = run(&mut c);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("x.example.com"), "{out:?}");
    // The default ./genuine-data.
    let mut c = env.bare();
    c.current_dir(parent)
        .env("GENUINE_SERVER", env.serve.url())
        .args(["api", "list", "--json"]);
    let out = run(&mut c);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(one_json(&out.stdout).as_array().unwrap().len(), 1);
    // A data dir without a token file: bad usage naming where it looked.
    let out = local(Some("elsewhere".as_ref()));
    let err = fails(&out, 2, &["api", "add"]);
    assert!(err.contains("elsewhere"), "{err}");
    // The flag wins over the file.
    let mut c = env.bare();
    c.current_dir(parent)
        .env("GENUINE_SERVER", env.serve.url())
        .args(["--token", "gat_wrong", "api", "list"]);
    fails(&run(&mut c), 1, &["--token", "gat_wrong", "api", "list"]);
}
