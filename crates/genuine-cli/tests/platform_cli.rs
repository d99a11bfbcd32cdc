//! `genuine platform verify …` on the shared vectors (read in place): pass
//! exits 0, fail exits 1 with the failed checks named, unusable input exits
//! 2; `--json` prints one object with `verdict`, `reasons` and the decoded
//! fields. The verifiers themselves are tested case by case in
//! `genuine-platform`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

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

#[test]
fn android_key() {
    let chain = |id: &str| vectors(&format!("android/chains/{id}.pem"));
    let nokia = chain("warden_Nokia_X10");
    let run = |chain: &PathBuf, challenge: &str, at: &str, extra: &[&str]| {
        let mut args = vec![
            "platform".to_owned(),
            "verify".into(),
            "android-key".into(),
            "--chain".into(),
            chain.display().to_string(),
            "--challenge".into(),
            challenge.into(),
            "--at".into(),
            at.into(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        genuine(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let challenge = "b64:HcAotmy6ZBX8cnh5mvMc2w==";
    let at = "2023-04-14T13:12:42Z";
    let digest = "hex:34b9762c4d6c90d48431940c57bde7314258b26420efe16ac7f7274f0d330ad5";
    let app = [
        "--package",
        "at.asitplus.attestation_client",
        "--signing-digest",
        digest,
    ];

    // A locked Nokia X10: pass, with the decoded fields.
    let (code, v, err) = run(&nokia, challenge, at, &app);
    assert_eq!(code, 0, "{v} {err}");
    assert_eq!(v["verdict"], "pass");
    assert_eq!(v["reasons"], json!([]));
    assert_eq!(v["security_level"], "tee");
    assert_eq!(v["attestation_security_level"], "tee");
    assert_eq!(v["hardware_backed"], true);
    assert_eq!(v["verified_boot_state"], "verified");
    assert_eq!(v["device_locked"], true);
    assert_eq!(
        v["packages"],
        json!([{"name": "at.asitplus.attestation_client", "version": 1}])
    );
    assert_eq!(
        v["signing_digests"],
        json!(["34b9762c4d6c90d48431940c57bde7314258b26420efe16ac7f7274f0d330ad5"])
    );
    assert_eq!(v["os_version"], 130_000);
    assert_eq!(v["os_patch_level"], 202_303);
    assert_eq!(v["vendor_patch_level"], 20_230_305);
    assert_eq!(v["boot_patch_level"], 20_230_305);
    assert_eq!(v["quirks"], json!(["set-not-sorted"]));
    // The same challenge in hex and url-safe base64 without padding.
    assert_eq!(
        run(&nokia, "hex:1dc028b66cba6415fc7278799af31cdb", at, &app).0,
        0
    );
    assert_eq!(run(&nokia, "b64:HcAotmy6ZBX8cnh5mvMc2w", at, &app).0, 0);

    // Each failed check named: challenge, package, digest, instant, patch level.
    let fails = |chain: &PathBuf, challenge: &str, at: &str, extra: &[&str]| {
        let (code, v, err) = run(chain, challenge, at, extra);
        assert_eq!(code, 1, "{v} {err}");
        assert_eq!(v["verdict"], "fail");
        v["reasons"].clone()
    };
    assert_eq!(
        fails(&nokia, "utf8:challenge", at, &app),
        json!(["challenge-mismatch"])
    );
    assert_eq!(
        fails(
            &nokia,
            challenge,
            at,
            &["--package", "com.example.other", "--signing-digest", digest]
        ),
        json!(["package-mismatch"])
    );
    assert_eq!(
        fails(
            &nokia,
            challenge,
            at,
            &[
                "--package",
                "at.asitplus.attestation_client",
                "--signing-digest",
                "hex:00"
            ]
        ),
        json!(["signing-digest-mismatch"])
    );
    assert_eq!(
        fails(&nokia, challenge, "2031-01-01T00:00:00Z", &app),
        json!(["certificate-expired"])
    );
    let mut with_min = app.to_vec();
    with_min.extend(["--min-patch-level", "2023-04"]);
    assert_eq!(
        fails(&nokia, challenge, at, &with_min),
        json!(["patch-level-too-old"])
    );
    with_min[5] = "202303";
    assert_eq!(run(&nokia, challenge, at, &with_min).0, 0);

    // Revocation: a list naming the Nokia intermediate; Google's sample list.
    let dir = tempfile::tempdir().unwrap();
    let revoked = dir.path().join("status.json");
    std::fs::write(
        &revoked,
        r#"{"entries": {"b7655c8cfa44db91bdf418d40b31c08c": {"status": "REVOKED", "reason": "KEY_COMPROMISE"}}}"#,
    )
    .unwrap();
    let mut with_list = app.to_vec();
    let revoked_arg = revoked.display().to_string();
    with_list.extend(["--revocations", &revoked_arg]);
    assert_eq!(
        fails(&nokia, challenge, at, &with_list),
        json!(["certificate-revoked"])
    );
    let sample = vectors("android/status/google_android-key-attestation_sample_status.json");
    let sample_arg = sample.display().to_string();
    with_list[5] = &sample_arg;
    assert_eq!(run(&nokia, challenge, at, &with_list).0, 0);

    // An unlocked development device: refused unless --allow-unlocked.
    let akita = chain("ka_akita_sdk34_TEE_EC_NONE");
    let akita_at = "2024-09-26T22:32:25Z";
    assert_eq!(
        fails(&akita, "utf8:challenge", akita_at, &[]),
        json!(["boot-not-verified", "bootloader-unlocked"])
    );
    let (code, v, _) = run(&akita, "utf8:challenge", akita_at, &["--allow-unlocked"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["device_locked"], false);
    assert_eq!(v["verified_boot_state"], "unverified");

    // A software chain (AOSP root): never hardware. Untrusted with the
    // built-in roots; with its root trusted, still refused unless
    // --allow-software, and then not hardware-backed.
    let marlin = chain("ka_marlin_sdk29_TEE_EC_NONE");
    let marlin_at = "2019-10-29T00:22:52Z";
    assert_eq!(
        fails(
            &marlin,
            "utf8:challenge",
            marlin_at,
            &["--allow-software", "--allow-unlocked"]
        ),
        json!(["certificate-untrusted"])
    );
    let roots = vectors("roots");
    let roots_arg = roots.display().to_string();
    assert_eq!(
        fails(
            &marlin,
            "utf8:challenge",
            marlin_at,
            &["--roots", &roots_arg, "--allow-unlocked"]
        ),
        json!(["software-root", "security-level-software"])
    );
    let (code, v, err) = run(
        &marlin,
        "utf8:challenge",
        marlin_at,
        &[
            "--roots",
            &roots_arg,
            "--allow-unlocked",
            "--allow-software",
        ],
    );
    assert_eq!(code, 0, "{v} {err}");
    assert_eq!(v["hardware_backed"], false);
    assert_eq!(v["security_level"], "software");

    // Unusable input: exit 2.
    let missing = dir.path().join("none.pem");
    assert_eq!(run(&missing, challenge, at, &[]).0, 2);
    let not_pem = vectors("android/vectors.json");
    assert_eq!(run(&not_pem, challenge, at, &[]).0, 2);
    assert_eq!(run(&nokia, "0x1dc0", at, &[]).0, 2);
    assert_eq!(run(&nokia, challenge, "yesterday", &[]).0, 2);
    assert_eq!(
        run(&nokia, challenge, at, &["--min-patch-level", "2023-13"]).0,
        2
    );
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "{\"entries\": [").unwrap();
    let broken_arg = broken.display().to_string();
    let (code, _, err) = run(&nokia, challenge, at, &["--revocations", &broken_arg]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--revocations"), "{err}");
}
