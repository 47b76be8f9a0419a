//! Shared test helpers: in-process servers, running corral-cli and Apache's zkCli on a
//! script, and the transcript normaliser.

#![allow(dead_code)]

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use corral_server::testing::TestingServer;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Apache zkCli, as the Debian package installs it (override with `ZKCLI`).
pub fn zkcli_path() -> String {
    std::env::var("ZKCLI").unwrap_or_else(|_| "/usr/share/zookeeper/bin/zkCli.sh".to_owned())
}

/// Why zkCli cannot run here, if it cannot.
pub fn zkcli_unavailable() -> Option<String> {
    let zkcli = zkcli_path();
    if !Path::new(&zkcli).is_file() {
        return Some(format!(
            "zkCli not found at {zkcli} (apt-get install zookeeper, or set ZKCLI)"
        ));
    }
    let java = std::process::Command::new("java")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !java.is_ok_and(|s| s.success()) {
        return Some("java not found on PATH".to_owned());
    }
    None
}

/// Whether a missing zkCli must fail the test rather than skip it.
pub fn compat_required() -> bool {
    std::env::var("CORRAL_REQUIRE_COMPAT").is_ok_and(|v| v == "1")
}

/// Skips (returns true) or fails when zkCli is unavailable.
pub fn skip_without_zkcli(test: &str) -> bool {
    match zkcli_unavailable() {
        None => false,
        Some(reason) if compat_required() => {
            panic!("{test}: {reason} (CORRAL_REQUIRE_COMPAT=1 forbids skipping)")
        }
        Some(reason) => {
            eprintln!("skipping {test}: {reason}");
            true
        }
    }
}

/// A fresh server with the settings every script expects (a super digest for
/// `super:admin`).
pub async fn server() -> TestingServer {
    TestingServer::start_with(|cfg| {
        cfg.super_digest = Some("super:xQJmxLMiHGwaqBvst5y6rkB6HQs=".to_owned());
    })
    .await
    .expect("test server")
}

/// Runs `program args` with `script` on standard input, standard error merged into
/// standard output; returns (output, exit code).
async fn run_merged(
    program: &str,
    args: &[String],
    script: &str,
    envs: &[(&str, String)],
    cwd: Option<&Path>,
) -> (String, i32) {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"exec "$0" "$@" 2>&1"#)
        .arg(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let mut child = cmd.spawn().expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let script = script.to_owned();
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(script.as_bytes()).await;
        // Dropping stdin closes it: the shell sees the end of the input.
    });
    let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{program} did not finish within 120 s"))
        .expect("wait");
    let _ = writer.await;
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        output.status.code().unwrap_or(-1),
    )
}

/// corral-cli on `server` with `script` on standard input.
pub async fn run_corral(server: &TestingServer, script: &str) -> (String, i32) {
    let args = vec!["-server".to_owned(), server.connect_string()];
    run_corral_args(&args, script).await
}

/// corral-cli with the given arguments and standard input.
pub async fn run_corral_args(args: &[String], script: &str) -> (String, i32) {
    run_merged(env!("CARGO_BIN_EXE_corral-cli"), args, script, &[], None).await
}

/// Apache zkCli on `server` with `script` on standard input.
pub async fn run_zkcli(server: &TestingServer, script: &str) -> (String, i32) {
    let dir = tempfile::tempdir().expect("temp dir");
    let envs = [
        (
            "CLIENT_JVMFLAGS",
            "-Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto".to_owned(),
        ),
        ("ZOO_LOG_DIR", dir.path().display().to_string()),
        ("JVMFLAGS", String::new()),
    ];
    let args = vec!["-server".to_owned(), server.connect_string()];
    run_merged(&zkcli_path(), &args, script, &envs, Some(dir.path())).await
}

/// A transcript with what legitimately differs between runs masked: command output
/// lines, and the watch events apart (zkCli prints them from another thread, so their
/// place among the command output is racy; their order is not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcript {
    /// Output lines, masked, blank lines dropped, the exit code last.
    pub lines: Vec<String>,
    /// `Type path (State)` per watch event, in order.
    pub events: Vec<String>,
}

impl Transcript {
    /// The lines as one text.
    pub fn text(&self) -> String {
        self.lines.join("\n") + "\n"
    }
}

fn hex_after<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    line.strip_prefix(prefix)
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Masks a raw transcript:
///
/// * zxids become `Z+n` relative to the first cZxid shown (every relative step is kept);
/// * ctime/mtime become `<time>`, the `Connecting to` address `<server>`;
/// * non-zero ephemeralOwner session ids become `<session#k>` in order of appearance;
/// * JVM logging noise (`SLF4J:`), `WATCHER::` markers and blank lines are dropped;
/// * watch events move to `events`; runs of `*WatchRemoved` events (which Java's client
///   makes in hash-map order) are sorted.
pub fn normalise(raw: &str, exit_code: i32) -> Transcript {
    let mut lines = Vec::new();
    let mut events = Vec::new();
    let mut base: Option<i64> = None;
    let mut sessions: Vec<String> = Vec::new();
    for line in raw.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty()
            || line.starts_with("SLF4J:")
            || line.starts_with("log4j:")
            || line == "WATCHER::"
        {
            continue;
        }
        if let Some(rest) = line.strip_prefix("WatchedEvent state:") {
            let mut parts = rest.splitn(3, ' ');
            let state = parts.next().unwrap_or("");
            let kind = parts.next().unwrap_or("").trim_start_matches("type:");
            let path = parts.next().unwrap_or("").trim_start_matches("path:");
            events.push(format!("{kind} {path} ({state})"));
            continue;
        }
        let mut out = line.to_owned();
        if line.starts_with("Connecting to ") {
            out = "Connecting to <server>".to_owned();
        }
        for key in ["cZxid", "mZxid", "pZxid"] {
            if let Some(hex) = hex_after(line, &format!("{key} = 0x")) {
                let value = i64::from_str_radix(hex, 16).expect("hex zxid");
                let base = *base.get_or_insert(value);
                out = format!("{key} = Z{:+}", value - base);
            }
        }
        if line.starts_with("ctime = ") || line.starts_with("mtime = ") {
            out = format!("{} = <time>", &line[..5]);
        }
        if let Some(hex) = hex_after(line, "ephemeralOwner = 0x") {
            if hex != "0" {
                let k = match sessions.iter().position(|s| s == hex) {
                    Some(k) => k + 1,
                    None => {
                        sessions.push(hex.to_owned());
                        sessions.len()
                    }
                };
                out = format!("ephemeralOwner = <session#{k}>");
            }
        }
        lines.push(out);
    }
    lines.push(format!("[exit {exit_code}]"));
    Transcript {
        lines,
        events: sort_removal_runs(events),
    }
}

fn sort_removal_runs(events: Vec<String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut run: Vec<String> = Vec::new();
    for event in events {
        if event.contains("WatchRemoved ") {
            run.push(event);
            continue;
        }
        run.sort();
        out.append(&mut run);
        out.push(event);
    }
    run.sort();
    out.append(&mut run);
    out
}

/// A line-by-line diff of two texts (`-` expected, `+` got), for assertion messages.
pub fn diff(expected: &str, got: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = got.lines().collect();
    // Longest common subsequence; transcripts are short.
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = String::new();
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push_str(&format!("  {}\n", a[i]));
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push_str(&format!("+ {}\n", b[j]));
            j += 1;
        } else {
            out.push_str(&format!("- {}\n", a[i]));
            i += 1;
        }
    }
    out
}

/// Serialises the JVM runs: two cores do not take many zkCli starts at once.
pub static JVM: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
