//! `genuine demo`: the whole story on one machine.
//!
//! Starts a throw-away service in process (temp data dir, ephemeral port),
//! a demo API protected by `genuine_verify::layer::GenuineLayer` (enforce
//! mode) on another port, registers this very executable as the app
//! `com.example.demo`, and runs `genuine demo-app` (this executable again,
//! [`crate::demo_app`]) as a child, once untouched (token valid, API 200)
//! and then in hostile conditions, each of which gets a decoy that the API
//! refuses (401):
//!
//! 1. a copy of the executable with one byte flipped in a function the run
//!    never calls (`app-not-registered`);
//! 2. a run under gdb in batch mode and one under `strace -f` (`debugger`);
//! 3. a run with `LD_PRELOAD` of a library compiled here with `cc`
//!    (`preload`);
//! 4. a run with Frida attached, hooking `open64` in libc (`injected-code`,
//!    `code-patched`), when Python's `frida` module is installed.
//!
//! Each decoy's reasons are then read from the admin side (`token check`),
//! and the account's metrics are shown. A step whose tool is missing is
//! skipped with a message saying what to install.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::client::{AdminClient, CliError};
use crate::output::Table;

/// The demo app's id.
pub(crate) const APP_ID: &str = "com.example.demo";
/// The demo API's domain (the tokens' `aud`).
pub(crate) const API_DOMAIN: &str = "api.demo.example";

/// How long one run of the demo app may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the demo app may take to say it is ready, and Frida to attach
/// and hook.
const LINE_TIMEOUT: Duration = Duration::from_secs(60);

/// A function `genuine demo-app` never calls: the tampered copy has one byte
/// of it flipped, so the copy runs exactly as the original but measures
/// differently.
#[inline(never)]
fn never_called_by_the_demo_app(x: u64) -> u64 {
    std::hint::black_box(x).rotate_left(13) ^ 0x6765_6e75_696e_6521
}

/// The interposing library of the `LD_PRELOAD` run: it wraps `getpid` and
/// passes the call on, as a hooking library would.
const PRELOAD_C: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <unistd.h>
pid_t getpid(void) {
    static pid_t (*real)(void);
    if (!real) real = (pid_t (*)(void))dlsym(RTLD_NEXT, "getpid");
    return real();
}
"#;

/// Attaches Frida to a process and hooks `open64` in libc; keeps the
/// session until its stdin closes.
const FRIDA_PY: &str = r#"
import sys, threading
import frida
pid = int(sys.argv[1])
try:
    session = frida.attach(pid)
except Exception as e:
    print("attach-failed: %s" % e, flush=True)
    sys.exit(3)
hooked = threading.Event()
def on_message(message, data):
    if message.get("type") == "send" and message.get("payload") == "hooked":
        hooked.set()
    elif message.get("type") == "error":
        print("script-error: %s" % message.get("description"), flush=True)
script = session.create_script("""
const target = Module.findGlobalExportByName('open64') || Module.getGlobalExportByName('open');
Interceptor.attach(target, { onEnter(args) {} });
send('hooked');
""")
script.on("message", on_message)
script.load()
if not hooked.wait(20):
    print("hook-failed: no confirmation from the agent", flush=True)
    sys.exit(4)
print("hooked", flush=True)
sys.stdin.read()
session.detach()
"#;

/// One hostile (or not) run of the demo app.
struct Step {
    key: &'static str,
    title: String,
    /// The reason the service must record (none for the untouched run).
    expect: Option<&'static str>,
    outcome: Outcome,
}

enum Outcome {
    Skipped(String),
    Ran {
        api_status: u16,
        valid: bool,
        reasons: Vec<String>,
        sdk_status: String,
        /// What the SDK reported in the evidence (the findings only).
        findings: Vec<String>,
    },
    Failed(String),
}

impl Step {
    fn as_expected(&self) -> bool {
        match (&self.outcome, self.expect) {
            (Outcome::Skipped(_), _) => true,
            (Outcome::Failed(_), _) => false,
            (
                Outcome::Ran {
                    api_status, valid, ..
                },
                None,
            ) => *api_status == 200 && *valid,
            (
                Outcome::Ran {
                    api_status,
                    valid,
                    reasons,
                    ..
                },
                Some(r),
            ) => *api_status == 401 && !*valid && reasons.iter().any(|x| x == r),
        }
    }

    fn to_json(&self) -> Value {
        let mut v = json!({"step": self.key, "title": self.title, "expected_reason": self.expect,
            "as_expected": self.as_expected()});
        match &self.outcome {
            Outcome::Skipped(why) => v["skipped"] = json!(why),
            Outcome::Failed(why) => v["failed"] = json!(why),
            Outcome::Ran {
                api_status,
                valid,
                reasons,
                sdk_status,
                findings,
            } => {
                v["findings"] = json!(findings);
                v["api_status"] = json!(api_status);
                v["token_valid"] = json!(valid);
                v["reasons"] = json!(reasons);
                v["sdk_status"] = json!(sdk_status);
            }
        }
        v
    }
}

/// What every run shares.
struct Demo {
    exe: PathBuf,
    dir: PathBuf,
    service_url: String,
    api_url: String,
    admin: AdminClient,
    json_out: bool,
    runs: usize,
}

fn say(json_out: bool, text: &str) {
    if !json_out {
        println!("{text}");
    }
}

/// Runs the demo; an error (exit 1) when a step did not end as it should.
pub(crate) async fn run(json_out: bool) -> anyhow::Result<()> {
    if !cfg!(target_os = "linux") {
        bail!(CliError::Usage(
            "the demo measures Linux ELF programs; run it on Linux".into()
        ));
    }
    let tmp = tempfile::Builder::new()
        .prefix("genuine-demo-")
        .tempdir()
        .context("cannot create a temp dir")?;
    let exe = std::env::current_exe().context("cannot find this executable")?;
    say(
        json_out,
        "genuine demo: app attestation end to end, on this machine\n",
    );

    // 1. A throw-away service.
    let config = genuine_server::config::Config {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: tmp.path().join("service"),
        ..genuine_server::config::Config::default()
    };
    let running =
        genuine_server::start_embedded(&config, Arc::new(genuine_server::service::SystemClock))
            .await
            .context("cannot start the demo service")?;
    let service_url = format!("http://{}", running.addr);
    let admin_token = std::fs::read_to_string(&running.admin_token_file)?;
    let admin = AdminClient::new(&service_url, Some(admin_token.trim()), "default")?;
    admin
        .post(
            &admin.path("apis"),
            &json!({"domain": API_DOMAIN, "alg": "ES256", "ttl": 300}),
        )
        .await?;
    let (alg, digest) = crate::measure(&exe)?;
    admin
        .post(
            &admin.path("registrations"),
            &json!({"app_id": APP_ID, "digest": digest, "alg": alg, "platform": "linux",
                "version": env!("CARGO_PKG_VERSION")}),
        )
        .await?;
    let root = is_root();
    if root {
        admin
            .put(
                &admin.path("policy/reject.root"),
                &json!({"value": "false"}),
            )
            .await?;
    }

    // 2. The demo API behind the verification layer.
    let (api_url, api_task) = start_api(&service_url).await?;
    say(
        json_out,
        &format!(
            "  service   {service_url} (throw-away; data in {})\n  demo API  {api_url} (genuine-verify layer, enforce mode, keys from the service's JWKS)\n  app       {APP_ID} = this executable, registered as {alg} {}…",
            tmp.path().display(),
            digest.get(..16).unwrap_or(&digest)
        ),
    );
    if root {
        say(
            json_out,
            "  note      running as root: the demo sets `reject.root false`, or every run would be refused as `rooted`",
        );
    }
    say(json_out, "");

    let mut demo = Demo {
        exe: exe.clone(),
        dir: tmp.path().to_path_buf(),
        service_url,
        api_url,
        admin,
        json_out,
        runs: 0,
    };
    let mut steps = Vec::new();
    steps.push(
        demo.step("untouched", "the untouched app".into(), None, |d| {
            d.run_app(&d.exe.clone(), &[], &[])
        })
        .await,
    );
    steps.push(demo.tampered_copy().await);
    steps.push(demo.gdb().await);
    steps.push(demo.strace().await);
    steps.push(demo.preload().await);
    steps.push(demo.frida().await);

    // 3. The admin side.
    running.service.flush_counters().await;
    let metrics = demo
        .admin
        .get(&format!("{}?since=3600", demo.admin.path("metrics")))
        .await?;
    let ok = steps.iter().all(Step::as_expected);
    if json_out {
        crate::print_json(&json!({
            "service": demo.service_url,
            "api": demo.api_url,
            "app_id": APP_ID,
            "digest": digest,
            "steps": steps.iter().map(Step::to_json).collect::<Vec<_>>(),
            "metrics": metrics,
            "as_expected": ok,
        }));
    } else {
        print_summary(&steps, &metrics);
        println!(
            "{}",
            if ok {
                "\nEvery tampered, debugged or instrumented run got a decoy that the API refused; the reasons are visible only from the admin side."
            } else {
                "\nSome steps did not end as expected (see above)."
            }
        );
    }
    api_task.abort();
    running.shutdown().await;
    if ok {
        Ok(())
    } else {
        Err(CliError::Refused("the demo did not go as expected".into()).into())
    }
}

/// The SDK's own `root` signal (effective uid 0).
fn is_root() -> bool {
    #[cfg(target_os = "linux")]
    {
        genuine_sdk::linux::signals::root()
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

/// The demo API: `GET /hello`, answered only with a valid token.
async fn start_api(service_url: &str) -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
    use axum::routing::get;
    use genuine_verify::layer::GenuineLayer;
    use genuine_verify::{Claims, Expectations, Jwks, Verifier};

    let _ = rustls::crypto::ring::default_provider().install_default();
    let jwks: Jwks = reqwest::get(format!("{service_url}/v1/accounts/default/jwks.json"))
        .await?
        .json()
        .await
        .context("the service's JWKS")?;
    let verifier = Verifier::from_jwks(
        &jwks,
        Expectations {
            issuer: format!("{service_url}/v1/accounts/default"),
            audiences: vec![API_DOMAIN.into()],
            leeway_secs: 5,
        },
    )?;
    async fn hello(axum::Extension(claims): axum::Extension<Claims>) -> axum::Json<Value> {
        axum::Json(json!({"hello": claims.sub, "device": claims.did}))
    }
    let app = axum::Router::new()
        .route("/hello", get(hello))
        .layer(GenuineLayer::new(Arc::new(verifier)).enforce());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let url = format!("http://{}/hello", listener.local_addr()?);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((url, task))
}

/// Whether a program is on the PATH.
fn have(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|d| {
            let p = d.join(tool);
            std::fs::metadata(&p).is_ok_and(|m| {
                use std::os::unix::fs::PermissionsExt;
                m.is_file() && m.permissions().mode() & 0o111 != 0
            })
        })
    })
}

/// The file offset of a runtime code address of this process.
#[cfg(target_os = "linux")]
fn file_offset_of(addr: u64) -> anyhow::Result<u64> {
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    genuine_sdk::linux::maps::parse(&maps)
        .into_iter()
        .find(|m| m.start <= addr && addr < m.end && m.inode != 0)
        .map(|m| addr - m.start + m.offset)
        .context("the function is not in a file mapping")
}

#[cfg(not(target_os = "linux"))]
fn file_offset_of(_addr: u64) -> anyhow::Result<u64> {
    bail!("only on Linux")
}

/// Reads `r` line by line on a thread of its own, to its end (so a child
/// writing to it never blocks on a full pipe), and hands the lines over: a
/// caller waits for one with [`next_line`], never unboundedly.
fn line_reader(
    r: impl std::io::Read + Send + 'static,
) -> std::sync::mpsc::Receiver<std::io::Result<String>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            // Once the receiver is gone the rest is read and dropped.
            let _ = tx.send(line);
        }
    });
    rx
}

/// The next line from a [`line_reader`]: `None` at the end of the stream, an
/// error after `timeout`.
fn next_line(
    lines: &std::sync::mpsc::Receiver<std::io::Result<String>>,
    timeout: Duration,
) -> anyhow::Result<Option<String>> {
    use std::sync::mpsc::RecvTimeoutError;
    match lines.recv_timeout(timeout) {
        Ok(line) => Ok(Some(line?)),
        Err(RecvTimeoutError::Disconnected) => Ok(None),
        Err(RecvTimeoutError::Timeout) => bail!("no line within {} s", timeout.as_secs()),
    }
}

/// Waits for a child, killing it after [`RUN_TIMEOUT`].
fn wait_child(child: &mut Child) -> anyhow::Result<std::process::ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if start.elapsed() > RUN_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "the demo app did not finish within {} s",
                RUN_TIMEOUT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Demo {
    async fn step<F>(
        &mut self,
        key: &'static str,
        title: String,
        expect: Option<&'static str>,
        run: F,
    ) -> Step
    where
        F: FnOnce(&mut Self) -> anyhow::Result<Value>,
    {
        self.runs += 1;
        say(self.json_out, &format!("{}. {title}", self.runs));
        // The run blocks on a child process while this runtime serves it:
        // tell the runtime to move its other tasks off this thread.
        let outcome = match tokio::task::block_in_place(|| run(self)) {
            Ok(report) => self.judge(&report).await,
            Err(e) => Outcome::Failed(format!("{e:#}")),
        };
        let step = Step {
            key,
            title,
            expect,
            outcome,
        };
        self.print_step(&step);
        step
    }

    fn print_step(&self, step: &Step) {
        let line = match &step.outcome {
            Outcome::Skipped(why) => format!("   SKIPPED: {why}"),
            Outcome::Failed(why) => format!("   FAILED: {why}"),
            Outcome::Ran {
                api_status,
                valid,
                reasons,
                sdk_status,
                findings,
            } => format!(
                "   the SDK sees: {}\n   the app got a token (SDK status `{sdk_status}`) and the API answered {api_status}\n   admin side (`genuine token check`): {}{}",
                if findings.is_empty() {
                    "nothing suspicious".to_owned()
                } else {
                    findings.join("; ")
                },
                if *valid { "valid" } else { "DECOY" },
                if reasons.is_empty() {
                    String::new()
                } else {
                    format!(", reasons: {}", reasons.join(", "))
                }
            ),
        };
        let mark = if step.as_expected() {
            ""
        } else {
            "\n   NOT AS EXPECTED"
        };
        say(self.json_out, &format!("{line}{mark}\n"));
    }

    /// Reads the report and checks the token from the admin side.
    async fn judge(&self, report: &Value) -> Outcome {
        let api_status = report["api_status"]
            .as_u64()
            .and_then(|s| u16::try_from(s).ok())
            .unwrap_or(0);
        let sdk_status = report["sdk_status"].as_str().unwrap_or("-").to_owned();
        let Some(token) = report["token"].as_str() else {
            return Outcome::Failed(format!(
                "the app got no token: {}",
                report["error"].as_str().unwrap_or("no error given")
            ));
        };
        match self
            .admin
            .post(&self.admin.path("tokens/check"), &json!({"token": token}))
            .await
        {
            Ok(check) => Outcome::Ran {
                api_status,
                valid: check["valid"] == json!(true),
                reasons: check["reasons"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|r| r.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
                sdk_status,
                findings: findings(&report["signals"]),
            },
            Err(e) => Outcome::Failed(format!("token check: {e:#}")),
        }
    }

    fn app_args(&self, exe: &Path, report: &Path) -> Vec<OsString> {
        vec![
            exe.into(),
            "demo-app".into(),
            "--service-url".into(),
            self.service_url.clone().into(),
            "--api-url".into(),
            self.api_url.clone().into(),
            "--data".into(),
            self.dir.join("app-data").into(),
            "--report".into(),
            report.into(),
        ]
    }

    fn command(&self, exe: &Path, prefix: &[&str], report: &Path) -> Command {
        let mut args: Vec<OsString> = prefix.iter().map(OsString::from).collect();
        args.extend(self.app_args(exe, report));
        let mut cmd = Command::new(&args[0]);
        cmd.args(&args[1..])
            .env_remove("LD_PRELOAD")
            .env_remove("DEBUGINFOD_URLS")
            .stdin(Stdio::null());
        cmd
    }

    fn log_file(&self) -> anyhow::Result<std::fs::File> {
        Ok(std::fs::File::create(
            self.dir.join(format!("run-{}.log", self.runs)),
        )?)
    }

    fn read_report(report: &Path, log: &Path) -> anyhow::Result<Value> {
        let bytes = std::fs::read(report).with_context(|| {
            format!(
                "the demo app wrote no report; its output:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            )
        })?;
        Ok(serde_json::from_slice(&bytes)?)
    }

    /// Runs the demo app (`exe`, behind `prefix`, with `env`) to its end.
    fn run_app(
        &mut self,
        exe: &Path,
        prefix: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Value> {
        let report = self.dir.join(format!("report-{}.json", self.runs));
        let log_path = self.dir.join(format!("run-{}.log", self.runs));
        let log = self.log_file()?;
        let mut cmd = self.command(exe, prefix, &report);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| {
                format!(
                    "cannot run {}",
                    prefix.first().copied().unwrap_or("the demo app")
                )
            })?;
        wait_child(&mut child)?;
        Self::read_report(&report, &log_path)
    }

    async fn tampered_copy(&mut self) -> Step {
        let title = "a tampered copy: one byte flipped in a function the run never calls".into();
        self.step("tampered-copy", title, Some("app-not-registered"), |d| {
            let addr = never_called_by_the_demo_app as fn(u64) -> u64 as usize as u64;
            let offset = file_offset_of(addr + 4)?;
            let mut bytes = std::fs::read(&d.exe)?;
            let i = usize::try_from(offset)?;
            let b = bytes
                .get_mut(i)
                .context("offset past the end of the file")?;
            *b ^= 0xff;
            let copy = d.dir.join("genuine-tampered");
            std::fs::write(&copy, &bytes)?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755))?;
            let (_, digest) = crate::measure(&copy)?;
            say(
                d.json_out,
                &format!(
                    "   file offset {offset:#x} of {}; its digest is now {}…",
                    d.exe.display(),
                    digest.get(..16).unwrap_or(&digest)
                ),
            );
            d.run_app(&copy, &[], &[])
        })
        .await
    }

    async fn gdb(&mut self) -> Step {
        if !have("gdb") {
            return self.skipped(
                "gdb",
                "under gdb",
                "gdb is not installed (apt-get install gdb)",
            );
        }
        let exe = self.exe.clone();
        let title = "under a debugger: gdb -batch -ex run".into();
        self.step("gdb", title, Some("debugger"), |d| {
            d.run_app(
                &exe,
                &[
                    "gdb",
                    "-nx",
                    "-batch",
                    "-readnever",
                    "-iex",
                    "set debuginfod enabled off",
                    "-ex",
                    "run",
                    "--args",
                ],
                &[],
            )
        })
        .await
    }

    async fn strace(&mut self) -> Step {
        if !have("strace") {
            return self.skipped(
                "strace",
                "under strace",
                "strace is not installed (apt-get install strace)",
            );
        }
        let exe = self.exe.clone();
        let title = "under a tracer: strace -f".into();
        self.step("strace", title, Some("debugger"), |d| {
            d.run_app(&exe, &["strace", "-f", "-o", "/dev/null"], &[])
        })
        .await
    }

    async fn preload(&mut self) -> Step {
        if !have("cc") {
            return self.skipped(
                "preload",
                "with LD_PRELOAD",
                "no C compiler `cc` to build the preloaded library",
            );
        }
        let exe = self.exe.clone();
        let title = "with LD_PRELOAD of a library that interposes getpid (compiled with cc)".into();
        self.step("preload", title, Some("preload"), |d| {
            let src = d.dir.join("interpose.c");
            let so = d.dir.join("libinterpose.so");
            std::fs::write(&src, PRELOAD_C)?;
            let out = Command::new("cc")
                .args(["-shared", "-fPIC", "-O1", "-o"])
                .arg(&so)
                .arg(&src)
                .arg("-ldl")
                .output()?;
            if !out.status.success() {
                bail!("cc failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            let so = so.to_string_lossy().into_owned();
            d.run_app(&exe, &[], &[("LD_PRELOAD", &so)])
        })
        .await
    }

    async fn frida(&mut self) -> Step {
        let has_frida = have("python3")
            && Command::new("python3")
                .args(["-c", "import frida"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
        if !has_frida {
            return self.skipped(
                "frida",
                "with Frida attached",
                "Python's frida module is not installed (pip install frida-tools)",
            );
        }
        let title = "with Frida attached, hooking open64 in libc".into();
        self.step("frida", title, Some("injected-code"), Self::run_frida)
            .await
    }

    fn run_frida(&mut self) -> anyhow::Result<Value> {
        let script = self.dir.join("frida_hook.py");
        std::fs::write(&script, FRIDA_PY)?;
        let report = self.dir.join(format!("report-{}.json", self.runs));
        let log_path = self.dir.join(format!("run-{}.log", self.runs));
        let log = self.log_file()?;
        let exe = self.exe.clone();
        let mut app = self
            .command(&exe, &[], &report)
            .arg("--wait-stdin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()?;
        let result = self.frida_session(&mut app, &script);
        if result.is_err() {
            let _ = app.kill();
        }
        let _ = wait_child(&mut app);
        result?;
        Self::read_report(&report, &log_path)
    }

    /// Attaches Frida once the app is ready, then lets the app attest.
    /// Every wait for a line is bounded ([`LINE_TIMEOUT`]); on an error the
    /// caller kills the app, and Frida is killed here.
    fn frida_session(&self, app: &mut Child, script: &Path) -> anyhow::Result<()> {
        let stdout = app.stdout.take().context("no stdout")?;
        // Keeps reading (and so draining) the app's output to its end.
        let lines = line_reader(stdout);
        let ready = next_line(&lines, LINE_TIMEOUT)
            .context("waiting for the demo app to be ready")?
            .context("the demo app ended early")?;
        let pid = ready
            .strip_prefix("ready ")
            .context("the demo app did not say it is ready")?
            .to_owned();
        let mut frida = Command::new("python3")
            .arg(script)
            .arg(&pid)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let fout = frida.stdout.take().context("no stdout")?;
        let flines = line_reader(fout);
        // Drained from the start, so Frida never blocks on a full pipe.
        let ferr = frida.stderr.take().map(line_reader);
        let first = match next_line(&flines, LINE_TIMEOUT) {
            Ok(line) => line.unwrap_or_default(),
            Err(e) => format!("{e:#}"),
        };
        if first != "hooked" {
            let _ = frida.kill();
            let _ = frida.wait();
            // What it said on stderr, for a few seconds at most (a helper
            // process of Frida's may still hold the pipe open).
            let mut err = Vec::new();
            if let Some(ferr) = &ferr {
                while let Ok(Some(line)) = next_line(ferr, Duration::from_secs(2)) {
                    err.push(line);
                    if err.len() >= 50 {
                        break;
                    }
                }
            }
            bail!("Frida did not hook the app: {first} {}", err.join("\n"));
        }
        say(
            self.json_out,
            &format!("   Frida attached to pid {pid} and hooked open64"),
        );
        // Let the app attest with the hook in place, then detach.
        if let Some(mut stdin) = app.stdin.take() {
            writeln!(stdin)?;
        }
        let status = wait_child(app);
        drop(frida.stdin.take());
        let _ = wait_child(&mut frida);
        status.map(|_| ())
    }

    fn skipped(&mut self, key: &'static str, title: &str, why: &str) -> Step {
        self.runs += 1;
        let step = Step {
            key,
            title: title.into(),
            expect: None,
            outcome: Outcome::Skipped(why.into()),
        };
        say(self.json_out, &format!("{}. {title}", self.runs));
        self.print_step(&step);
        step
    }
}

/// The signals that found something, e.g. `debugger`, `preload: /tmp/x.so`.
fn findings(signals: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for flag in ["debugger", "virtualized", "root", "emulator"] {
        if signals[flag] == json!(true) {
            out.push(flag.to_owned());
        }
    }
    for list in ["preload", "injected", "code_patched"] {
        if let Some(items) = signals[list].as_array().filter(|a| !a.is_empty()) {
            let names: Vec<&str> = items.iter().filter_map(Value::as_str).take(3).collect();
            let more = if items.len() > 3 {
                format!(" (+{} more)", items.len() - 3)
            } else {
                String::new()
            };
            out.push(format!("{list}: {}{more}", names.join(", ")));
        }
    }
    out
}

fn print_summary(steps: &[Step], metrics: &Value) {
    println!("Summary");
    let mut t = Table::new(&["RUN", "API", "TOKEN (admin side)", "REASONS"]);
    for s in steps {
        let row = match &s.outcome {
            Outcome::Skipped(_) => vec![s.key.into(), "-".into(), "skipped".into(), "-".into()],
            Outcome::Failed(_) => vec![s.key.into(), "-".into(), "failed".into(), "-".into()],
            Outcome::Ran {
                api_status,
                valid,
                reasons,
                ..
            } => vec![
                s.key.into(),
                api_status.to_string(),
                if *valid { "valid" } else { "decoy" }.into(),
                if reasons.is_empty() {
                    "-".into()
                } else {
                    reasons.join(", ")
                },
            ],
        };
        t.push(row);
    }
    t.print();
    println!("\nAttestations from the admin side (`genuine metrics --since 1h`)");
    let mut t = Table::new(&["OUTCOME", "COUNT"]);
    if let Some(Value::Object(o)) = metrics.get("outcomes") {
        for (k, n) in o {
            t.push(vec![k.clone(), n.to_string()]);
        }
    }
    t.print();
    let mut t = Table::new(&["REASON", "COUNT"]);
    if let Some(Value::Object(o)) = metrics.get("reasons") {
        for (k, n) in o {
            t.push(vec![k.clone(), n.to_string()]);
        }
    }
    t.print();
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn waiting_for_a_line_is_bounded() {
        // A child that writes nothing for a long time: the wait ends.
        let mut quiet = Command::new("sleep")
            .arg("30")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = line_reader(quiet.stdout.take().unwrap());
        let started = Instant::now();
        let err = next_line(&lines, Duration::from_millis(200)).unwrap_err();
        assert!(err.to_string().contains("no line within"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
        let _ = quiet.kill();
        let _ = quiet.wait();
        // Lines, then the end of the stream.
        let mut talk = Command::new("printf")
            .arg("one\\ntwo\\n")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = line_reader(talk.stdout.take().unwrap());
        let t = Duration::from_secs(10);
        assert_eq!(next_line(&lines, t).unwrap().as_deref(), Some("one"));
        assert_eq!(next_line(&lines, t).unwrap().as_deref(), Some("two"));
        assert_eq!(next_line(&lines, t).unwrap(), None);
        let _ = talk.wait();
    }
}
