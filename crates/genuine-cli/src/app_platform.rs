//! `genuine app platform …`: an app's platform attestation settings on the
//! service (App Attest app id, Android package and signing digest, Play
//! Integrity keys). Values V are `hex:…`, `b64:…` or `utf8:…`, as in
//! `genuine platform verify`.

use clap::Subcommand;
use genuine_platform::value::Value as Bytes;
use serde_json::{Value, json};

use crate::client::AdminClient;

/// `genuine app platform …`.
#[derive(Debug, Subcommand)]
pub(crate) enum PlatformSettingsCmd {
    /// Show an app's platform settings (Play's decryption key is never shown).
    Show {
        /// App id, e.g. com.example.shop.
        app_id: String,
    },
    /// Set an app's settings for one platform.
    #[command(subcommand)]
    Set(SetCmd),
    /// Remove an app's settings for one platform (apple, android or play).
    Clear {
        /// App id.
        app_id: String,
        /// apple, android or play.
        kind: String,
    },
}

/// `genuine app platform set …`.
#[derive(Debug, Subcommand)]
pub(crate) enum SetCmd {
    /// Apple App Attest: the App ID is TEAM_ID.BUNDLE_ID.
    Apple {
        /// App id.
        app_id: String,
        /// The Apple Developer team id.
        #[arg(long)]
        team_id: String,
        /// The bundle id.
        #[arg(long)]
        bundle_id: String,
        /// Accept the development environment too.
        #[arg(long)]
        allow_development: bool,
    },
    /// Android Key Attestation.
    Android {
        /// App id.
        app_id: String,
        /// The package name.
        #[arg(long)]
        package: String,
        /// SHA-256 of the app's signing certificate (V).
        #[arg(long)]
        signing_digest: Bytes,
        /// Accept an unlocked bootloader or unverified boot.
        #[arg(long)]
        allow_unlocked: bool,
        /// Accept software (not TEE or StrongBox) attestation.
        #[arg(long)]
        allow_software: bool,
        /// Oldest acceptable OS patch level, YYYYMM.
        #[arg(long)]
        min_patch_level: Option<u32>,
    },
    /// Play Integrity, verified locally with the app's keys from Play Console.
    Play {
        /// App id.
        app_id: String,
        /// The package name.
        #[arg(long)]
        package: String,
        /// The 32-byte AES decryption key (V); sealed on the service, never shown again.
        #[arg(long)]
        decryption_key: Bytes,
        /// The verification key: DER SubjectPublicKeyInfo (V).
        #[arg(long)]
        verification_key: Bytes,
        /// SHA-256 of the app's signing certificate (V).
        #[arg(long)]
        certificate_digest: Option<Bytes>,
        /// A device label that must be present (repeatable; default MEETS_DEVICE_INTEGRITY).
        #[arg(long = "device-label")]
        device_labels: Vec<String>,
        /// Accept test responses configured in Play Console.
        #[arg(long)]
        allow_testing_response: bool,
        /// Oldest verdict accepted, seconds.
        #[arg(long)]
        max_age_secs: Option<u64>,
    },
}

fn b64(b: &Bytes) -> String {
    data_encoding::BASE64.encode(b.bytes())
}

fn hex(b: &Bytes) -> String {
    data_encoding::HEXLOWER.encode(b.bytes())
}

fn path(c: &AdminClient, app_id: &str, kind: Option<&str>) -> anyhow::Result<String> {
    let mut p = format!("apps/{}/platform", crate::seg(app_id)?);
    if let Some(k) = kind {
        p.push('/');
        p.push_str(&crate::seg(k)?);
    }
    Ok(c.path(&p))
}

fn print(v: &Value) {
    let app = crate::s(v, "app_id");
    let mut any = false;
    if let Some(a) = v.get("apple") {
        any = true;
        println!(
            "{app} apple: App ID {}.{}{}",
            crate::s(a, "team_id"),
            crate::s(a, "bundle_id"),
            if a["allow_development"] == json!(true) {
                ", development allowed"
            } else {
                ", production only"
            }
        );
    }
    if let Some(a) = v.get("android") {
        any = true;
        println!(
            "{app} android: package {}, signing digest {}{}{}{}",
            crate::s(a, "package"),
            crate::s(a, "signing_digest"),
            if a["allow_unlocked"] == json!(true) {
                ", unlocked allowed"
            } else {
                ""
            },
            if a["allow_software"] == json!(true) {
                ", software allowed"
            } else {
                ""
            },
            a.get("min_patch_level")
                .map(|p| format!(", patch level >= {p}"))
                .unwrap_or_default()
        );
    }
    if let Some(p) = v.get("play") {
        any = true;
        println!(
            "{app} play: package {}, device labels {}, max age {} s, decryption key set",
            crate::s(p, "package"),
            p.get("device_labels").map_or_else(String::new, |l| l
                .as_array()
                .map(|a| a
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(","))
                .unwrap_or_default()),
            crate::s(p, "max_age_secs"),
        );
    }
    if !any {
        println!("{app}: no platform settings");
    }
}

/// Prints a result: as JSON with `--json`, else with the human printer.
pub(crate) type Out<'a> = &'a dyn Fn(&Value, &dyn Fn(&Value));

/// Runs one `genuine app platform …` command.
pub(crate) async fn run(
    cmd: PlatformSettingsCmd,
    c: &AdminClient,
    out: Out<'_>,
) -> anyhow::Result<()> {
    match cmd {
        PlatformSettingsCmd::Show { app_id } => {
            let v = c.get(&path(c, &app_id, None)?).await?;
            out(&v, &print);
        }
        PlatformSettingsCmd::Clear { app_id, kind } => {
            c.delete(&path(c, &app_id, Some(&kind))?).await?;
            out(&json!({"app_id": app_id, "cleared": kind}), &|_| {
                println!("cleared {kind} settings of {app_id}");
            });
        }
        PlatformSettingsCmd::Set(set) => {
            let (app_id, kind, body) = match set {
                SetCmd::Apple {
                    app_id,
                    team_id,
                    bundle_id,
                    allow_development,
                } => (
                    app_id,
                    "apple",
                    json!({"team_id": team_id, "bundle_id": bundle_id, "allow_development": allow_development}),
                ),
                SetCmd::Android {
                    app_id,
                    package,
                    signing_digest,
                    allow_unlocked,
                    allow_software,
                    min_patch_level,
                } => {
                    let mut body = json!({"package": package, "signing_digest": hex(&signing_digest),
                        "allow_unlocked": allow_unlocked, "allow_software": allow_software});
                    if let Some(p) = min_patch_level {
                        body["min_patch_level"] = json!(p);
                    }
                    (app_id, "android", body)
                }
                SetCmd::Play {
                    app_id,
                    package,
                    decryption_key,
                    verification_key,
                    certificate_digest,
                    device_labels,
                    allow_testing_response,
                    max_age_secs,
                } => {
                    let mut body = json!({"package": package,
                        "decryption_key": b64(&decryption_key),
                        "verification_key": b64(&verification_key),
                        "allow_testing_response": allow_testing_response});
                    if let Some(d) = certificate_digest {
                        body["certificate_digest"] = json!(hex(&d));
                    }
                    if !device_labels.is_empty() {
                        body["device_labels"] = json!(device_labels);
                    }
                    if let Some(a) = max_age_secs {
                        body["max_age_secs"] = json!(a);
                    }
                    (app_id, "play", body)
                }
            };
            let v = c.put(&path(c, &app_id, Some(kind))?, &body).await?;
            out(&v, &print);
        }
    }
    Ok(())
}
