//! `genuine`: runs the attestation service and administers it over its admin API.

#![forbid(unsafe_code)]

mod app_platform;
mod client;
mod demo;
mod demo_app;
mod output;
mod platform;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};

use crate::client::{AdminClient, CliError};
use crate::output::Table;

/// Genuine: app attestation without embedded secrets.
#[derive(Parser)]
#[command(name = "genuine", version, about)]
struct Cli {
    /// The service's URL.
    #[arg(
        long,
        global = true,
        env = "GENUINE_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    server: String,
    /// Admin token (default: GENUINE_ADMIN_TOKEN, then the admin.token file of the local data dir);
    /// for `platform verify play-integrity`, the token file.
    #[arg(
        long,
        global = true,
        env = "GENUINE_ADMIN_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// Account to act on.
    #[arg(long, global = true, default_value = "default")]
    account: String,
    /// Print exactly one JSON document.
    #[arg(long, global = true)]
    json: bool,
    /// Whether `--token` came from the command line (set after parsing).
    #[arg(skip)]
    token_on_command_line: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service (embedded default: SQLite in ./genuine-data).
    Serve(ServeArgs),
    /// API domains and their signing keys.
    #[command(subcommand)]
    Api(ApiCmd),
    /// Print the app digest of a binary without registering it.
    Measure {
        /// The executable (64-bit ELF).
        file: PathBuf,
    },
    /// App registrations.
    #[command(subcommand)]
    App(AppCmd),
    /// Per-device overrides.
    #[command(subcommand)]
    Device(DeviceCmd),
    /// The account policy.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Inspect and mint tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Attestations per outcome and reason; unique devices per hour, day and month.
    Metrics {
        /// Window, e.g. 1h, 1d, 30m.
        #[arg(long, default_value = "1h")]
        since: String,
        /// Grouping (only `reason` for now).
        #[arg(long, default_value = "reason", value_parser = ["reason"])]
        by: String,
    },
    /// Offline checks of platform attestations (App Attest, Android Key Attestation, Play Integrity).
    #[command(subcommand)]
    Platform(platform::PlatformCmd),
    /// Accounts (operator: the admin of the default account).
    #[command(subcommand)]
    Account(AccountCmd),
    /// Admin tokens of the account.
    #[command(subcommand, name = "admin-token")]
    AdminToken(AdminTokenCmd),
    /// A guided local walk-through: a throw-away service, the demo app attesting, a protected API,
    /// and tampered, debugged, preloaded and instrumented runs refused.
    Demo,
    /// The demo's app (run by `genuine demo`).
    #[command(name = "demo-app", hide = true)]
    DemoApp(demo_app::DemoAppArgs),
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Data dir (SQLite database, master key, admin token).
    #[arg(long)]
    data: Option<PathBuf>,
    /// TOML configuration file.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum ApiCmd {
    /// Add an API domain with a fresh key set (HS256: prints the secret once).
    Add {
        /// Domain, e.g. api.example.com (the tokens' aud).
        domain: String,
        /// Signing algorithm.
        #[arg(long, default_value = "ES256", value_parser = ["ES256", "EdDSA", "HS256"])]
        alg: String,
        /// Token lifetime in seconds.
        #[arg(long, default_value_t = 300)]
        ttl: i64,
    },
    /// List API domains.
    List,
    /// Remove an API domain and its keys.
    Remove {
        /// Domain.
        domain: String,
    },
    /// Rotate the signing key (the old one stays published until its tokens expire).
    Rotate {
        /// Domain.
        domain: String,
    },
}

#[derive(Debug, Subcommand)]
enum AppCmd {
    /// Register a binary's digest for an app.
    Register {
        /// App id, e.g. com.example.shop.
        app_id: String,
        /// The executable.
        file: PathBuf,
        /// Version label.
        #[arg(long)]
        version: Option<String>,
        /// Platform.
        #[arg(long, default_value = "linux")]
        platform: String,
        /// Expire the registration after this long, e.g. 30d.
        #[arg(long)]
        expire_after: Option<String>,
    },
    /// List registrations.
    List {
        /// Only this app.
        app_id: Option<String>,
    },
    /// Remove a registration.
    Remove {
        /// Registration id.
        registration_id: String,
    },
    /// An app's platform attestation settings (App Attest, Key Attestation, Play Integrity).
    #[command(subcommand)]
    Platform(app_platform::PlatformSettingsCmd),
}

#[derive(Debug, Subcommand)]
enum DeviceCmd {
    /// Always pass this device (developers' devices); reasons are still recorded.
    Allow(DeviceArgs),
    /// Always fail this device.
    Block(DeviceArgs),
    /// Remove the override.
    Clear {
        /// Device id.
        device_id: String,
    },
    /// List overrides.
    List,
}

#[derive(Debug, Args)]
struct DeviceArgs {
    /// Device id (22 characters).
    device_id: String,
    /// Note.
    #[arg(long)]
    note: Option<String>,
}

#[derive(Debug, Subcommand)]
enum PolicyCmd {
    /// Show the policy.
    Show,
    /// Set one key, e.g. `reject.debugger true`.
    Set {
        /// Key.
        key: String,
        /// Value (true or false).
        value: String,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCmd {
    /// Verify a token against the account's keys; print claims, validity and reasons.
    Check {
        /// The token.
        #[arg(value_name = "TOKEN")]
        jwt: String,
        /// Expected API domain.
        #[arg(long)]
        api: Option<String>,
    },
    /// Mint an example token for testing a backend.
    Example {
        /// API domain.
        domain: String,
        /// Mint a decoy instead of a valid token.
        #[arg(long)]
        invalid: bool,
        /// Bind the token to this data (pay claim).
        #[arg(long)]
        binding: Option<String>,
        /// Lifetime in seconds.
        #[arg(long)]
        ttl: Option<i64>,
    },
}

#[derive(Debug, Subcommand)]
enum AccountCmd {
    /// Create an account; prints its first admin token once.
    Add {
        /// Account name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum AdminTokenCmd {
    /// Create an admin token; prints it once.
    Create {
        /// Role.
        #[arg(long, default_value = "dev", value_parser = ["admin", "dev"])]
        role: String,
        /// Label.
        #[arg(long)]
        label: Option<String>,
    },
}

fn main() -> ExitCode {
    use clap::{CommandFactory, FromArgMatches};
    let parsed = Cli::command()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m).map(|cli| (cli, m)));
    let cli = match parsed {
        Ok((mut cli, matches)) => {
            // `--token` given on the command line, not taken from the
            // environment: `platform verify play-integrity` reads it as a file.
            cli.token_on_command_line =
                matches.value_source("token") == Some(clap::parser::ValueSource::CommandLine);
            cli
        }
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // One line that says what to do, as for every other error.
            let text = e.render().to_string();
            let first: Vec<&str> = text
                .lines()
                .take_while(|l| !l.starts_with("Usage:"))
                .map(str::trim)
                .filter(|l| {
                    !l.is_empty()
                        && !l.starts_with("tip:")
                        && !l.starts_with("For more information")
                })
                .collect();
            let first = first.join(" ");
            let first = first.trim_start_matches("error: ");
            eprintln!("error: {first} (see `genuine --help`)");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<CliError>() {
            Some(CliError::Usage(_)) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
            _ => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let json_out = cli.json;
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Demo => demo::run(json_out).await,
        Command::DemoApp(args) => demo_app::run(args).await,
        Command::Platform(cmd) => {
            let token_file = cli
                .token
                .filter(|_| cli.token_on_command_line)
                .map(std::path::PathBuf::from);
            if platform::run(cmd, json_out, token_file)? {
                Ok(())
            } else {
                Err(CliError::Failed.into())
            }
        }
        Command::Measure { file } => {
            let (alg, hex) = measure(&file)?;
            if json_out {
                print_json(&json!({"file": file, "alg": alg, "digest": hex}));
            } else {
                println!("{alg} {hex}  {}", file.display());
            }
            Ok(())
        }
        command => {
            let client = AdminClient::new(&cli.server, cli.token.as_deref(), &cli.account)?;
            admin(command, &client, json_out).await
        }
    }
}

fn measure(file: &std::path::Path) -> anyhow::Result<(&'static str, String)> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let digest = genuine_protocol::measure::elf_exec_segments_digest(&bytes)
        .map_err(|e| CliError::Usage(format!("{}: {e}", file.display())))?;
    Ok((
        genuine_protocol::measure::ELF_EXEC_SEGMENTS_SHA256_V1,
        digest.to_hex(),
    ))
}

fn print_json(v: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

fn parse_duration(text: &str) -> anyhow::Result<u64> {
    humantime::parse_duration(text)
        .map(|d| d.as_secs())
        .map_err(|e| {
            CliError::Usage(format!(
                "invalid duration {text:?}: {e} (use e.g. 30d, 12h, 90m)"
            ))
            .into()
        })
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    use genuine_server::config::Config;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let mut config = match &args.config {
        Some(p) => Config::from_file(p)?,
        None => Config::default(),
    };
    // The environment is read once, here.
    let env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("GENUINE_"))
        .collect();
    config.apply_env(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    if let Some(l) = args.listen {
        config.listen = l;
    }
    if let Some(d) = args.data {
        config.data_dir = d;
    }
    let running =
        genuine_server::start(&config, Arc::new(genuine_server::service::SystemClock)).await?;
    println!("genuine: listening on http://{}", running.addr);
    if config.is_cluster() {
        println!(
            "genuine: cluster mode (PostgreSQL and Redis); node data dir {}",
            config.data_dir.display()
        );
    } else {
        println!("genuine: data dir {}", config.data_dir.display());
    }
    if running.bootstrapped {
        println!(
            "genuine: created account `default`; its admin token is in {} (mode 0600)",
            running.admin_token_file.display()
        );
    }
    wait_for_signal().await;
    tracing::info!("shutting down");
    running.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}

fn s(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(other) => other.to_string(),
    }
}

fn time(v: &Value, k: &str) -> String {
    use std::fmt::Write;
    let Some(t) = v.get(k).and_then(Value::as_u64) else {
        return "-".into();
    };
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t);
    let mut out = String::new();
    // humantime refuses years past 9999: show the raw number then.
    if write!(out, "{}", humantime::format_rfc3339_seconds(at)).is_err() {
        return t.to_string();
    }
    out
}

/// One path segment for the admin API: percent-encoded, and never `.` or `..`.
fn seg(v: &str) -> anyhow::Result<String> {
    if v.is_empty() || v == "." || v == ".." {
        return Err(CliError::Usage(format!("{v:?} is not a valid name")).into());
    }
    Ok(client::encode_query(v))
}

#[allow(clippy::too_many_lines)]
async fn admin(command: Command, c: &AdminClient, json_out: bool) -> anyhow::Result<()> {
    let out = |v: &Value, human: &dyn Fn(&Value)| {
        if json_out {
            print_json(v);
        } else {
            human(v);
        }
    };
    match command {
        Command::Api(ApiCmd::Add { domain, alg, ttl }) => {
            let v = c
                .post(
                    &c.path("apis"),
                    &json!({"domain": domain, "alg": alg, "ttl": ttl}),
                )
                .await?;
            out(&v, &|v| {
                println!(
                    "added API {} ({}, tokens live {} s), key {}",
                    s(v, "domain"),
                    s(v, "alg"),
                    s(v, "ttl"),
                    s(v, "kid")
                );
                println!("issuer: {}", s(v, "issuer"));
                if v.get("secret").is_some() {
                    println!(
                        "HS256 secret (base64url, shown once; give it to the backend operator): {}",
                        s(v, "secret")
                    );
                }
            });
        }
        Command::Api(ApiCmd::List) => {
            let v = c.get(&c.path("apis")).await?;
            out(&v, &|v| {
                Table::new(&["DOMAIN", "ALG", "TTL", "KID"])
                    .rows(v, |a| {
                        vec![s(a, "domain"), s(a, "alg"), s(a, "ttl"), s(a, "kid")]
                    })
                    .print()
            });
        }
        Command::Api(ApiCmd::Remove { domain }) => {
            c.delete(&c.path(&format!("apis/{}", seg(&domain)?)))
                .await?;
            out(&json!({"removed": domain}), &|_| {
                println!("removed API {domain}")
            });
        }
        Command::Api(ApiCmd::Rotate { domain }) => {
            let v = c
                .post(
                    &c.path(&format!("apis/{}/rotate", seg(&domain)?)),
                    &json!({}),
                )
                .await?;
            out(&v, &|v| {
                println!(
                    "rotated {}: new key {}; the previous key stays published until its tokens expire",
                    s(v, "domain"),
                    s(v, "kid")
                );
                if v.get("secret").is_some() {
                    println!(
                        "new HS256 secret (base64url, shown once): {}",
                        s(v, "secret")
                    );
                }
            });
        }
        Command::App(AppCmd::Register {
            app_id,
            file,
            version,
            platform,
            expire_after,
        }) => {
            let (alg, digest) = measure(&file)?;
            let mut body =
                json!({"app_id": app_id, "digest": digest, "alg": alg, "platform": platform});
            if let Some(v) = version {
                body["version"] = json!(v);
            }
            if let Some(e) = expire_after {
                body["expire_after_secs"] = json!(parse_duration(&e)?);
            }
            let v = c.post(&c.path("registrations"), &body).await?;
            out(&v, &|v| {
                println!("{}", s(v, "id"));
                eprintln!(
                    "registered {} {} ({} {})",
                    s(v, "app_id"),
                    s(v, "version"),
                    s(v, "alg"),
                    s(v, "digest")
                );
            });
        }
        Command::App(AppCmd::List { app_id }) => {
            let mut path = c.path("registrations");
            if let Some(a) = app_id {
                path = format!("{path}?app_id={}", client::encode_query(&a));
            }
            let v = c.get(&path).await?;
            out(&v, &|v| {
                Table::new(&["ID", "APP", "VERSION", "PLATFORM", "DIGEST", "EXPIRES"])
                    .rows(v, |r| {
                        vec![
                            s(r, "id"),
                            s(r, "app_id"),
                            s(r, "version"),
                            s(r, "platform"),
                            s(r, "digest").chars().take(16).collect(),
                            time(r, "expires_at"),
                        ]
                    })
                    .print();
            });
        }
        Command::App(AppCmd::Remove { registration_id }) => {
            c.delete(&c.path(&format!("registrations/{}", seg(&registration_id)?)))
                .await?;
            out(&json!({"removed": registration_id}), &|_| {
                println!("removed registration {registration_id}")
            });
        }
        Command::App(AppCmd::Platform(cmd)) => app_platform::run(cmd, c, &out).await?,
        Command::Device(DeviceCmd::Allow(a)) => set_device(c, "allow", a, &out).await?,
        Command::Device(DeviceCmd::Block(a)) => set_device(c, "block", a, &out).await?,
        Command::Device(DeviceCmd::Clear { device_id }) => {
            c.delete(&c.path(&format!("devices/{}", seg(&device_id)?)))
                .await?;
            out(&json!({"cleared": device_id}), &|_| {
                println!("cleared device {device_id}")
            });
        }
        Command::Device(DeviceCmd::List) => {
            let v = c.get(&c.path("devices")).await?;
            out(&v, &|v| {
                Table::new(&["DEVICE", "ACTION", "NOTE", "UPDATED"])
                    .rows(v, |d| {
                        vec![
                            s(d, "device_id"),
                            s(d, "action"),
                            s(d, "note"),
                            time(d, "updated_at"),
                        ]
                    })
                    .print()
            });
        }
        Command::Policy(PolicyCmd::Show) => {
            let v = c.get(&c.path("policy")).await?;
            out(&v, &|v| print_policy(v));
        }
        Command::Policy(PolicyCmd::Set { key, value }) => {
            let v = c
                .put(
                    &c.path(&format!("policy/{}", seg(&key)?)),
                    &json!({"value": value}),
                )
                .await?;
            out(&v, &|v| print_policy(v));
        }
        Command::Token(TokenCmd::Check { jwt, api }) => {
            let v = c
                .post(&c.path("tokens/check"), &json!({"token": jwt, "api": api}))
                .await?;
            out(&v, &|v| {
                let verdict = if v["valid"] == json!(true) {
                    "valid"
                } else if v["decoy"] == json!(true) {
                    "DECOY (attestation failed)"
                } else {
                    "INVALID"
                };
                println!("token:   {verdict}");
                println!("kid:     {} ({})", s(v, "kid"), s(v, "alg"));
                if let Some(Value::Array(r)) = v.get("reasons") {
                    let names: Vec<String> = r
                        .iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect();
                    println!(
                        "reasons: {}",
                        if names.is_empty() {
                            "none".into()
                        } else {
                            names.join(", ")
                        }
                    );
                }
                if let Some(Value::String(e)) = v.get("error") {
                    println!("why:     {e}");
                }
                if let Some(Value::Object(claims)) = v.get("claims") {
                    for (k, val) in claims {
                        println!(
                            "  {k:<4} {}",
                            match val {
                                Value::String(s) => s.clone(),
                                o => o.to_string(),
                            }
                        );
                    }
                }
            });
            if v["valid"] != json!(true) {
                return Err(CliError::Refused("token is not valid".into()).into());
            }
        }
        Command::Token(TokenCmd::Example {
            domain,
            invalid,
            binding,
            ttl,
        }) => {
            let v = c
                .post(
                    &c.path("tokens/example"),
                    &json!({"api": domain, "invalid": invalid, "binding": binding, "ttl": ttl}),
                )
                .await?;
            out(&v, &|v| println!("{}", s(v, "token")));
        }
        Command::Metrics { since, by: _ } => {
            let secs = parse_duration(&since)?;
            let v = c
                .get(&format!("{}?since={secs}", c.path("metrics")))
                .await?;
            out(&v, &|v| {
                println!("attestations since {} ({} window)", time(v, "since"), since);
                let mut t = Table::new(&["OUTCOME", "COUNT"]);
                if let Some(Value::Object(o)) = v.get("outcomes") {
                    for (k, n) in o {
                        t.push(vec![k.clone(), n.to_string()]);
                    }
                }
                t.print();
                let mut t = Table::new(&["REASON", "COUNT"]);
                if let Some(Value::Object(o)) = v.get("reasons") {
                    for (k, n) in o {
                        t.push(vec![k.clone(), n.to_string()]);
                    }
                }
                t.print();
                let mut t = Table::new(&["UNIQUE DEVICES (UTC)", "COUNT"]);
                if let Some(u) = v.get("unique_devices") {
                    for (label, k) in [
                        ("this hour", "hour"),
                        ("today", "day"),
                        ("this month", "month"),
                    ] {
                        t.push(vec![label.to_owned(), s(u, k)]);
                    }
                }
                t.print();
            });
        }
        Command::Account(AccountCmd::Add { name }) => {
            let v = c.post("/admin/v1/accounts", &json!({"name": name})).await?;
            out(&v, &|v| {
                println!("created account {}", s(v, "account"));
                println!("admin token (shown once): {}", s(v, "admin_token"));
            });
        }
        Command::AdminToken(AdminTokenCmd::Create { role, label }) => {
            let v = c
                .post(&c.path("tokens"), &json!({"role": role, "label": label}))
                .await?;
            out(&v, &|v| {
                println!(
                    "{} token {} (shown once): {}",
                    s(v, "role"),
                    s(v, "id"),
                    s(v, "token")
                )
            });
        }
        Command::Serve(_)
        | Command::Measure { .. }
        | Command::Platform(_)
        | Command::Demo
        | Command::DemoApp(_) => {
            return Err(CliError::Usage("this command does not use the admin API".into()).into());
        }
    }
    Ok(())
}

/// Prints a value as JSON or, for people, through the given printer.
type Out<'a> = dyn Fn(&Value, &dyn Fn(&Value)) + 'a;

async fn set_device(
    c: &AdminClient,
    action: &str,
    a: DeviceArgs,
    out: &Out<'_>,
) -> anyhow::Result<()> {
    let v = c
        .put(
            &c.path(&format!("devices/{}", seg(&a.device_id)?)),
            &json!({"action": action, "note": a.note}),
        )
        .await?;
    out(&v, &|v| {
        println!("device {}: {}", s(v, "device_id"), s(v, "action"))
    });
    Ok(())
}

fn print_policy(v: &Value) {
    let mut t = Table::new(&["KEY", "VALUE"]);
    for key in genuine_server::policy::Policy::KEYS {
        let mut cur = v;
        for part in key.split('.') {
            cur = cur.get(part).unwrap_or(&Value::Null);
        }
        t.push(vec![(*key).to_owned(), cur.to_string()]);
    }
    t.print();
}
