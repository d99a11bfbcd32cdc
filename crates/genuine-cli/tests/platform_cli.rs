//! `genuine platform verify …` on the shared vectors (read in place): pass
//! exits 0, fail exits 1 with the failed checks named, unusable input exits
//! 2; `--json` prints one object with `verdict`, `reasons` and the decoded
//! fields. The verifiers themselves are tested case by case in
//! `genuine-platform`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn vectors(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/vectors")
        .join(rel)
}

fn genuine(args: &[&str]) -> (i32, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_genuine"))
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let json = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    (
        out.status.code().unwrap(),
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn index(rel: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(vectors(rel)).unwrap()).unwrap()
}

#[test]
fn apple_attestation_and_assertion() {
    let idx = index("appattest/vectors.json");
    let case = idx["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "veehaitch_ios14_2")
        .unwrap();
    let object = vectors(&format!("appattest/{}", case["file"].as_str().unwrap()));
    let cdh = format!("b64:{}", case["client_data_hash_b64"].as_str().unwrap());
    let app_id = case["app_id"].as_str().unwrap();
    let at = case["verify_at"].as_str().unwrap();
    let base = |app: &str, at: &str| {
        vec![
            "platform".to_owned(),
            "verify".into(),
            "apple-attestation".into(),
            "--object".into(),
            object.display().to_string(),
            "--app-id".into(),
            app.into(),
            "--client-data-hash".into(),
            cdh.clone(),
            "--at".into(),
            at.into(),
        ]
    };
    let run = |v: Vec<String>| genuine(&v.iter().map(String::as_str).collect::<Vec<_>>());

    // A development object: refused unless development is allowed.
    let (code, v, _) = run(base(app_id, at));
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["verdict"], "fail");
    assert_eq!(
        v["reasons"],
        serde_json::json!(["environment-not-allowed"]),
        "{v}"
    );
    let mut args = base(app_id, at);
    args.push("--allow-development".into());
    let (code, v, err) = run(args);
    assert_eq!(code, 0, "{v} {err}");
    assert_eq!(v["verdict"], "pass");
    assert_eq!(v["reasons"], serde_json::json!([]));
    assert_eq!(v["environment"], "development");
    assert_eq!(v["counter"], 0);
    let key_id = data_encoding::BASE64
        .decode(case["key_id_b64"].as_str().unwrap().as_bytes())
        .unwrap();
    assert_eq!(v["key_id"], data_encoding::HEXLOWER.encode(&key_id));

    // Wrong app; expired.
    let mut args = base("6MURL8TA57.wrong.bundle", at);
    args.push("--allow-development".into());
    let (code, v, _) = run(args);
    assert_eq!(code, 1);
    assert!(
        v["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str().unwrap().contains("rp")),
        "{v}"
    );
    let mut args = base(app_id, "2021-06-01T00:00:00Z");
    args.push("--allow-development".into());
    let (code, v, _) = run(args);
    assert_eq!(code, 1, "{v}");

    // Unusable input: exit 2.
    let mut args = base(app_id, "yesterday");
    args.push("--allow-development".into());
    assert_eq!(run(args).0, 2);
    let mut args = base(app_id, at);
    args[8] = "0x1234".into();
    assert_eq!(run(args).0, 2);

    // The assertion made with that key.
    let a = idx["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "veehaitch_ios14_2_assertion")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("key.pem");
    std::fs::write(&pem, a["public_key_pem"].as_str().unwrap()).unwrap();
    let object = vectors(&format!("appattest/{}", a["file"].as_str().unwrap()));
    let assertion = |counter: &str, data: &str| {
        genuine(&[
            "platform",
            "verify",
            "apple-assertion",
            "--object",
            object.to_str().unwrap(),
            "--public-key",
            pem.to_str().unwrap(),
            "--app-id",
            app_id,
            "--client-data",
            data,
            "--previous-counter",
            counter,
        ])
    };
    let (code, v, err) = assertion("0", "utf8:wurzelpfropf");
    assert_eq!(code, 0, "{v} {err}");
    assert_eq!(v["counter"], 1);
    let (code, v, _) = assertion("1", "utf8:wurzelpfropf");
    assert_eq!(code, 1);
    assert_eq!(
        v["reasons"],
        serde_json::json!(["counter-not-increasing"]),
        "{v}"
    );
    let (code, v, _) = assertion("0", "utf8:wurzelpfropF");
    assert_eq!(code, 1);
    assert_eq!(
        v["reasons"],
        serde_json::json!(["signature-invalid"]),
        "{v}"
    );
}

#[test]
fn play_integrity() {
    let idx = index("playintegrity/vectors.json");
    let at = idx["verify_at"]
        .as_str()
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    let dk = format!("b64:{}", idx["decryption_key_b64"].as_str().unwrap());
    let vk = format!(
        "b64:{}",
        idx["verification_key_b64_der_spki"].as_str().unwrap()
    );
    let cert = format!(
        "hex:{}",
        idx["expected_certificate_sha256_hex"].as_str().unwrap()
    );
    let run = |token: &str, extra: &[&str]| {
        let token = vectors(&format!("playintegrity/{token}"));
        let mut args = vec![
            "platform",
            "verify",
            "play-integrity",
            "--token",
            token.to_str().unwrap(),
            "--decryption-key",
            &dk,
            "--verification-key",
            &vk,
            "--package",
            idx["expected_package_name"].as_str().unwrap(),
            "--certificate-digest",
            &cert,
            "--at",
            &at,
        ];
        args.extend_from_slice(extra);
        let owned: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        genuine(&owned.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let hash = idx["expected_request_hash"].as_str().unwrap();
    let (code, v, err) = run("standard_valid.token.txt", &["--request-hash", hash]);
    assert_eq!(code, 0, "{v} {err}");
    assert_eq!(v["verdict"], "pass");
    assert!(v["payload"].is_object(), "{v}");
    let nonce = idx["expected_classic_nonce"].as_str().unwrap();
    assert_eq!(run("classic_valid.token.txt", &["--nonce", nonce]).0, 0);
    let (code, v, _) = run(
        "standard_no_device_integrity.token.txt",
        &["--request-hash", hash],
    );
    assert_eq!(code, 1);
    assert_eq!(v["reasons"], serde_json::json!(["device-integrity"]), "{v}");
    let (code, v, _) = run(
        "standard_tampered_ciphertext.token.txt",
        &["--request-hash", hash],
    );
    assert_eq!(code, 1);
    assert_eq!(v["reasons"], serde_json::json!(["decryption"]), "{v}");
    // Neither --request-hash nor --nonce: unusable.
    assert_eq!(run("standard_valid.token.txt", &[]).0, 2);
    // An admin token in the environment is never read as the token file
    // (nor echoed).
    let out = Command::new(env!("CARGO_BIN_EXE_genuine"))
        .env("GENUINE_ADMIN_TOKEN", "gat_secret_value")
        .args([
            "platform",
            "verify",
            "play-integrity",
            "--decryption-key",
            &dk,
        ])
        .args([
            "--verification-key",
            &vk,
            "--package",
            "p",
            "--nonce",
            "n",
            "--at",
            &at,
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--token FILE") && !err.contains("gat_secret"),
        "{err}"
    );
}
