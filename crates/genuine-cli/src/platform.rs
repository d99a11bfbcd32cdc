//! `genuine platform verify …`: offline checks of platform attestations with
//! `genuine-platform`, for operators and their CI. Exit 0 on pass, 1 on
//! fail, 2 on unusable input; `--json` prints one object with `verdict`
//! (`pass` or `fail`), `reasons` (empty on pass) and the decoded fields.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use clap::Subcommand;
use genuine_platform::android::{self, KeyAttestationParams, KeyDescription, RevocationList};
use genuine_platform::appattest::{
    self, AssertionParams, AttestationParams, ClientData, EnvironmentPolicy,
};
use genuine_platform::playintegrity::{self, Expectations, Keys};
use genuine_platform::value::{Value as Bytes, decode_base64_any};
use genuine_platform::x509::{self, TrustAnchor};
use serde_json::{Value, json};

use crate::client::CliError;

/// `genuine platform …`.
#[derive(Debug, Subcommand)]
pub(crate) enum PlatformCmd {
    /// Verify a platform attestation offline.
    #[command(subcommand)]
    Verify(VerifyCmd),
}

/// `genuine platform verify …`. A value V is `hex:…`, `b64:…` or `utf8:…`.
#[derive(Debug, Subcommand)]
pub(crate) enum VerifyCmd {
    /// An Apple App Attest attestation object (raw CBOR or its base64 text).
    AppleAttestation {
        /// The attestation object file.
        #[arg(long)]
        object: PathBuf,
        /// TEAMID.bundle.id.
        #[arg(long)]
        app_id: String,
        /// The clientDataHash the app passed to attestKey (V).
        #[arg(long)]
        client_data_hash: Bytes,
        /// The instant of verification (RFC 3339).
        #[arg(long, value_parser = parse_time)]
        at: SystemTime,
        /// Accept the development environment too.
        #[arg(long)]
        allow_development: bool,
        /// Trust the root certificates (PEM files *.pem, *.crt) in this directory instead of the built-in Apple root.
        #[arg(long)]
        roots: Option<PathBuf>,
    },
    /// An Apple App Attest assertion (raw CBOR or its base64 text).
    AppleAssertion {
        /// The assertion object file.
        #[arg(long)]
        object: PathBuf,
        /// The attested public key (PEM, `BEGIN PUBLIC KEY`).
        #[arg(long)]
        public_key: PathBuf,
        /// TEAMID.bundle.id.
        #[arg(long)]
        app_id: String,
        /// The client data the app signed (V).
        #[arg(long)]
        client_data: Bytes,
        /// The counter stored with the key.
        #[arg(long)]
        previous_counter: u32,
    },
    /// An Android Key Attestation certificate chain (PEM, leaf first, as
    /// KeyStore.getCertificateChain returns it).
    AndroidKey {
        /// The chain: PEM certificates, leaf first, root last.
        #[arg(long)]
        chain: PathBuf,
        /// The attestation challenge the app passed to setAttestationChallenge (V).
        #[arg(long)]
        challenge: Bytes,
        /// The app's package name (checked when given).
        #[arg(long)]
        package: Option<String>,
        /// The SHA-256 of the app's signing certificate (V; checked when given).
        #[arg(long)]
        signing_digest: Option<Bytes>,
        /// The instant of verification (RFC 3339).
        #[arg(long, value_parser = parse_time)]
        at: SystemTime,
        /// Accept an unlocked bootloader and a boot state other than verified.
        #[arg(long)]
        allow_unlocked: bool,
        /// Accept software attestation (security level Software).
        #[arg(long)]
        allow_software: bool,
        /// Google's certificate status list (JSON, as served at
        /// https://android.googleapis.com/attestation/status).
        #[arg(long)]
        revocations: Option<PathBuf>,
        /// The oldest acceptable OS patch level, YYYYMM or YYYY-MM.
        #[arg(long, value_parser = parse_patch_level)]
        min_patch_level: Option<u32>,
        /// Trust the root certificates (PEM files *.pem, *.crt) in this directory instead of the built-in Google roots.
        #[arg(long)]
        roots: Option<PathBuf>,
    },
    /// A Play Integrity token, decrypted and verified locally. The token
    /// file (the JWE compact text) is given with `--token FILE`.
    PlayIntegrity {
        /// The 32-byte AES decryption key from Play Console (V).
        #[arg(long)]
        decryption_key: Bytes,
        /// The verification key from Play Console: DER SubjectPublicKeyInfo (V).
        #[arg(long)]
        verification_key: Bytes,
        /// The app's package name.
        #[arg(long)]
        package: String,
        /// Standard request: the requestHash the app sent.
        #[arg(long, conflicts_with = "nonce", required_unless_present = "nonce")]
        request_hash: Option<String>,
        /// Classic request: the nonce the app sent.
        #[arg(long)]
        nonce: Option<String>,
        /// The SHA-256 of the app's signing certificate (V).
        #[arg(long)]
        certificate_digest: Option<Bytes>,
        /// The instant of verification (RFC 3339).
        #[arg(long, value_parser = parse_time)]
        at: SystemTime,
    },
}

fn parse_time(s: &str) -> Result<SystemTime, String> {
    humantime::parse_rfc3339_weak(s).map_err(|e| format!("not an RFC 3339 time: {e}"))
}

/// `YYYYMM` or `YYYY-MM` (a day, `YYYYMMDD` or `YYYY-MM-DD`, is dropped:
/// osPatchLevel has month precision).
fn parse_patch_level(s: &str) -> Result<u32, String> {
    let b = s.as_bytes();
    // ASCII only, so the byte slicing below is on character boundaries.
    let digits: Option<String> = match b.len() {
        _ if !s.is_ascii() => None,
        6 | 8 => Some(s.to_owned()),
        7 if b[4] == b'-' => Some(format!("{}{}", &s[..4], &s[5..])),
        10 if b[4] == b'-' && b[7] == b'-' => Some(format!("{}{}{}", &s[..4], &s[5..7], &s[8..])),
        _ => None,
    };
    digits
        .filter(|d| d.bytes().all(|c| c.is_ascii_digit()))
        .and_then(|d| d[..6].parse::<u32>().ok())
        .filter(|v| (1..=12).contains(&(v % 100)))
        .ok_or_else(|| format!("{s:?} is not a patch level (YYYYMM or YYYY-MM)"))
}

fn usage(msg: impl Into<String>) -> anyhow::Error {
    CliError::Usage(msg.into()).into()
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| usage(format!("cannot read {}: {e}", path.display())))
}

/// An App Attest object: raw CBOR (a map, first byte 0xa0..=0xbf) or base64 text.
fn read_object(path: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes = read(path)?;
    if bytes.first().is_some_and(|b| (0xa0..=0xbf).contains(b)) {
        return Ok(bytes);
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        usage(format!(
            "{} is neither CBOR nor base64 text",
            path.display()
        ))
    })?;
    decode_base64_any(text).map_err(|_| {
        usage(format!(
            "{} is neither CBOR nor base64 text",
            path.display()
        ))
    })
}

fn unix(at: SystemTime) -> anyhow::Result<i64> {
    at.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .ok_or_else(|| usage("--at must be after 1970"))
}

fn hex(b: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(b)
}

fn roots_from(dir: &Path) -> anyhow::Result<Vec<TrustAnchor>> {
    let mut roots = Vec::new();
    let entries =
        std::fs::read_dir(dir).map_err(|e| usage(format!("--roots {}: {e}", dir.display())))?;
    for entry in entries {
        let path = entry
            .map_err(|e| usage(format!("--roots {}: {e}", dir.display())))?
            .path();
        // Certificates only (`*.pem`, `*.crt`): a README beside them is not a root.
        let is_cert = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("pem") || e.eq_ignore_ascii_case("crt"));
        if path.is_file() && is_cert {
            let text = String::from_utf8(read(&path)?)
                .map_err(|_| usage(format!("{} is not PEM text", path.display())))?;
            roots.extend(
                TrustAnchor::from_pem(&text)
                    .map_err(|e| usage(format!("{}: {e}", path.display())))?,
            );
        }
    }
    if roots.is_empty() {
        return Err(usage(format!(
            "--roots {}: no certificate (*.pem, *.crt) found",
            dir.display()
        )));
    }
    Ok(roots)
}

/// The decoded KeyDescription fields `--json` shows.
fn android_fields(out: &mut Value, kd: &KeyDescription) {
    let rot = kd.root_of_trust();
    let id = kd.attestation_application_id();
    let patch = |p: Option<android::PatchLevel>| p.map(|p| p.raw);
    let fields = json!({
        "attestation_version": kd.attestation_version,
        "attestation_security_level": kd.attestation_security_level.as_str(),
        "keymint_version": kd.keymint_version,
        "keymint_security_level": kd.keymint_security_level.as_str(),
        "challenge": hex(&kd.attestation_challenge),
        "verified_boot_state": rot.map(|r| r.verified_boot_state.as_str()),
        "device_locked": rot.map(|r| r.device_locked),
        "verified_boot_key": rot.map(|r| hex(&r.verified_boot_key)),
        "packages": id.map(|id| id.packages.iter()
            .map(|p| json!({"name": p.name, "version": p.version}))
            .collect::<Vec<_>>()),
        "signing_digests": id.map(|id| id.signature_digests.iter()
            .map(|d| hex(d))
            .collect::<Vec<_>>()),
        "os_version": kd.os_version(),
        "os_patch_level": patch(kd.os_patch_level()),
        "vendor_patch_level": patch(kd.vendor_patch_level()),
        "boot_patch_level": patch(kd.boot_patch_level()),
        "origin": kd.origin().map(|o| o.as_str()),
        "quirks": kd.quirks.iter().map(|q| q.code()).collect::<Vec<_>>(),
    });
    if let (Value::Object(out), Value::Object(fields)) = (out, fields) {
        out.extend(fields);
    }
}

/// Runs a `platform` command; `Ok(true)` on pass. `token_file` is the
/// `--token` option when it was given on the command line (here it names the
/// Play Integrity token file; a token from the environment is never used).
pub(crate) fn run(
    cmd: PlatformCmd,
    json_out: bool,
    token_file: Option<PathBuf>,
) -> anyhow::Result<bool> {
    let PlatformCmd::Verify(cmd) = cmd;
    let (pass, report) = match cmd {
        VerifyCmd::AppleAttestation {
            object,
            app_id,
            client_data_hash,
            at,
            allow_development,
            roots,
        } => {
            let object = read_object(&object)?;
            let custom = roots.as_deref().map(roots_from).transpose()?;
            let policy = if allow_development {
                EnvironmentPolicy::Any
            } else {
                EnvironmentPolicy::ProductionOnly
            };
            let mut params = AttestationParams::new(&app_id, client_data_hash.bytes(), unix(at)?)
                .environment(policy);
            if let Some(r) = &custom {
                params = params.roots(r);
            }
            match appattest::verify_attestation(&object, &params) {
                Ok(a) => (
                    true,
                    json!({
                        "verdict": "pass", "reasons": [],
                        "key_id": hex(&a.key_id), "public_key": hex(&a.public_key),
                        "counter": a.counter, "environment": a.environment.as_str(),
                        "receipt_bytes": a.receipt.len(),
                    }),
                ),
                Err(r) => {
                    let mut v = json!({
                        "verdict": "fail",
                        "reasons": r.reasons.iter().map(|e| e.code()).collect::<Vec<_>>(),
                        "messages": r.reasons.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    });
                    if let Some(d) = r.decoded {
                        v["key_id"] = json!(hex(&d.key_id));
                        v["counter"] = json!(d.counter);
                        v["environment"] = json!(d.environment.map(|e| e.as_str()));
                    }
                    (false, v)
                }
            }
        }
        VerifyCmd::AppleAssertion {
            object,
            public_key,
            app_id,
            client_data,
            previous_counter,
        } => {
            let object = read_object(&object)?;
            let pem = String::from_utf8(read(&public_key)?)
                .map_err(|_| usage(format!("{} is not PEM text", public_key.display())))?;
            let key = appattest::public_key_from_pem(&pem)
                .map_err(|e| usage(format!("{}: {e}", public_key.display())))?;
            let params = AssertionParams::new(
                &app_id,
                ClientData::Raw(client_data.bytes()),
                &key,
                previous_counter,
            );
            match appattest::verify_assertion(&object, &params) {
                Ok(a) => (
                    true,
                    json!({"verdict": "pass", "reasons": [], "key_id": hex(&a.key_id), "counter": a.counter}),
                ),
                Err(r) => {
                    let mut v = json!({
                        "verdict": "fail",
                        "reasons": r.reasons.iter().map(|e| e.code()).collect::<Vec<_>>(),
                        "messages": r.reasons.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    });
                    if let Some(d) = r.decoded {
                        v["key_id"] = json!(hex(&d.key_id));
                        v["counter"] = json!(d.counter);
                    }
                    (false, v)
                }
            }
        }
        VerifyCmd::AndroidKey {
            chain,
            challenge,
            package,
            signing_digest,
            at,
            allow_unlocked,
            allow_software,
            revocations,
            min_patch_level,
            roots,
        } => {
            let text = String::from_utf8(read(&chain)?)
                .map_err(|_| usage(format!("{} is not PEM text", chain.display())))?;
            let certs = x509::pem_certificates(&text)
                .map_err(|e| usage(format!("{}: {e}", chain.display())))?;
            if certs.is_empty() {
                return Err(usage(format!(
                    "{}: no CERTIFICATE block (give the chain as PEM, leaf first)",
                    chain.display()
                )));
            }
            let custom = roots.as_deref().map(roots_from).transpose()?;
            let list = revocations
                .as_deref()
                .map(|path| {
                    RevocationList::from_json(&read(path)?)
                        .map_err(|e| usage(format!("--revocations {}: {e}", path.display())))
                })
                .transpose()?;
            let mut params = KeyAttestationParams::new(challenge.bytes(), unix(at)?)
                .allow_unlocked(allow_unlocked)
                .allow_software(allow_software);
            if let Some(p) = &package {
                params = params.package(p);
            }
            if let Some(d) = &signing_digest {
                params = params.signing_digest(d.bytes());
            }
            if let Some(m) = min_patch_level {
                params = params.min_os_patch_level(m);
            }
            if let Some(r) = &custom {
                params = params.roots(r);
            }
            if let Some(l) = &list {
                params = params.revocations(l);
            }
            match android::verify(&certs, &params) {
                Ok(a) => {
                    let mut v = json!({
                        "verdict": "pass", "reasons": [],
                        "security_level": a.security_level.as_str(),
                        "hardware_backed": a.hardware_backed,
                        "anchor": a.anchor,
                        "public_key_spki": hex(&a.public_key_spki),
                        "serials": a.serials,
                    });
                    android_fields(&mut v, &a.key_description);
                    (true, v)
                }
                Err(r) => {
                    let mut v = json!({
                        "verdict": "fail",
                        "reasons": r.reasons.iter().map(|e| e.code()).collect::<Vec<_>>(),
                        "messages": r.reasons.iter().map(ToString::to_string).collect::<Vec<_>>(),
                        "serials": r.serials,
                    });
                    if let Some(kd) = &r.key_description {
                        android_fields(&mut v, kd);
                    }
                    (false, v)
                }
            }
        }
        VerifyCmd::PlayIntegrity {
            decryption_key,
            verification_key,
            package,
            request_hash,
            nonce,
            certificate_digest,
            at,
        } => {
            let token = token_file.ok_or_else(|| usage("give the token file with --token FILE"))?;
            let token = String::from_utf8(read(&token)?)
                .map_err(|_| usage(format!("{} is not text", token.display())))?;
            let keys = Keys::new(decryption_key.bytes(), verification_key.bytes())
                .map_err(|e| usage(format!("keys: {e}")))?;
            let mut expected = match (request_hash, nonce) {
                (Some(h), _) => Expectations::standard(package, h),
                (None, Some(n)) => Expectations::classic(package, n),
                (None, None) => return Err(usage("give --request-hash or --nonce")),
            };
            if let Some(d) = certificate_digest {
                let d: [u8; 32] = d
                    .into_bytes()
                    .try_into()
                    .map_err(|_| usage("--certificate-digest must be 32 bytes"))?;
                expected.certificate_sha256 = Some(d);
            }
            match playintegrity::verify(&token, &keys, &expected, at) {
                Ok(v) => {
                    let pass = v.is_valid();
                    let mut out = json!({
                        "verdict": if pass { "pass" } else { "fail" },
                        "reasons": v.reasons.iter().map(|r| r.code()).collect::<Vec<_>>(),
                        "messages": v.reasons.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    });
                    out["payload"] = serde_json::to_value(&v.payload).unwrap_or(Value::Null);
                    (pass, out)
                }
                Err(e) => (
                    false,
                    json!({"verdict": "fail", "reasons": [e.code()], "messages": [e.to_string()]}),
                ),
            }
        }
    };
    if json_out {
        println!("{report}");
    } else {
        print_report(&report);
    }
    Ok(pass)
}

fn print_report(v: &Value) {
    let verdict = v["verdict"].as_str().unwrap_or("fail");
    println!("{}", verdict.to_uppercase());
    if let (Some(codes), Some(messages)) = (v["reasons"].as_array(), v["messages"].as_array()) {
        for (c, m) in codes.iter().zip(messages) {
            println!(
                "  {}: {}",
                c.as_str().unwrap_or("-"),
                m.as_str().unwrap_or("-")
            );
        }
    }
    if let Value::Object(map) = v {
        for (k, val) in map {
            if k == "verdict" || k == "reasons" || k == "messages" {
                continue;
            }
            match val {
                Value::Object(inner) => {
                    for (ik, iv) in inner {
                        println!("{k}.{ik}: {iv}");
                    }
                }
                other => println!("{k}: {other}"),
            }
        }
    }
}
