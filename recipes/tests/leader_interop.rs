//! Interoperation with Apache Curator 5.4's `LeaderLatch`: a Java participant
//! (tests/interop/LatchMember.java, compiled with javac at test time) and Rust latches on
//! the same path elect one leader between them and hand leadership over both ways.
//!
//! Skipped (with the reason printed) when javac, java or the Curator jars are missing,
//! unless `CORRAL_REQUIRE_COMPAT=1`.

mod common;

use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{ok, wait_children, within, Ctx};
use corral_recipes::leader::{LatchState, LeaderLatch};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

const LATCH: &str = "/interop/latch";

/// The classpath with LatchMember compiled, or why not.
fn compiled() -> &'static Result<String, String> {
    static COMPILED: OnceLock<Result<String, String>> = OnceLock::new();
    COMPILED.get_or_init(|| common::compile_java("LatchMember.java", &common::CURATOR_JARS))
}

fn classpath_or_skip() -> Option<String> {
    common::classpath_or_skip(compiled())
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis()
}

/// A running LatchMember.
struct Java {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::UnboundedReceiver<(String, u128)>,
}

impl Java {
    fn start(cp: &str, ctx: &Ctx, id: &str) -> Java {
        let connect = format!("{}{}", ctx.server.addr(), ctx.root);
        let mut child = Command::new("java")
            .args(["-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"])
            .args(["-cp", cp, "LatchMember", &connect, LATCH, id])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start java");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                let mut parts = line.split_whitespace();
                let word = parts.next().unwrap_or_default().to_owned();
                let ms = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
                if tx.send((word, ms)).is_err() {
                    return;
                }
            }
        });
        Java {
            child,
            stdin,
            lines,
        }
    }

    async fn expect(&mut self, word: &str) -> u128 {
        let (got, ms) = within(&format!("java {word}"), self.lines.recv())
            .await
            .unwrap_or_else(|| panic!("java exited before {word}"));
        assert_eq!(got, word, "java said {got}, expected {word}");
        ms
    }

    /// Whether Java printed nothing for `d`.
    async fn quiet_for(&mut self, d: Duration) -> bool {
        tokio::time::timeout(d, self.lines.recv()).await.is_err()
    }

    async fn close(&mut self) {
        self.stdin.write_all(b"close\n").await.expect("write");
        self.stdin.flush().await.expect("flush");
    }

    async fn finish(mut self) {
        self.expect("DONE").await;
        let status = within("java exit", self.child.wait()).await.expect("wait");
        assert!(status.success(), "java failed: {status}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_curator_latch_and_a_rust_latch_elect_one_leader_and_hand_over_both_ways() {
    let Some(cp) = classpath_or_skip() else {
        return;
    };
    let ctx = ctx_or_skip!();
    let observer = ctx.client().await;

    // Java first: it leads, and the Rust latch queues behind it.
    let mut java = Java::start(&cp, &ctx, "java-1");
    java.expect("STARTED").await;
    java.expect("LEADER").await;
    let rust = LeaderLatch::start_with_id(ctx.client().await, LATCH, "rust");
    let nodes = wait_children(&observer, LATCH, "rust queued", |c| c.len() == 2).await;
    assert!(
        nodes
            .iter()
            .all(|n| n.starts_with("_c_") && n.contains("-latch-")),
        "one layout: {nodes:?}"
    );
    let mut states = rust.state_watcher();
    within(
        "rust follows",
        states.wait_for(|s| *s == LatchState::Follower),
    )
    .await
    .expect("state");
    let participants = ok("participants", rust.participants().await);
    let ids: Vec<(&str, bool)> = participants
        .iter()
        .map(|p| (p.id(), p.is_leader()))
        .collect();
    assert_eq!(ids, [("java-1", true), ("rust", false)]);
    assert!(
        ok(
            "short wait",
            rust.leadership_timeout(Duration::from_millis(300)).await
        )
        .is_none(),
        "rust led while Curator did"
    );

    // Java gives up: Rust leads, not before.
    java.close().await;
    let java_closing = java.expect("CLOSING").await;
    let term = ok("rust leads", within("rust leads", rust.leadership()).await);
    let rust_led = now_ms();
    assert!(rust_led >= java_closing);
    java.expect("NOT_LEADER").await;
    java.expect("CLOSED").await;
    java.finish().await;

    // Rust leads; a new Java participant queues and takes over only when Rust closes.
    let mut java = Java::start(&cp, &ctx, "java-2");
    java.expect("STARTED").await;
    wait_children(&observer, LATCH, "java queued", |c| c.len() == 2).await;
    assert!(
        java.quiet_for(Duration::from_millis(300)).await,
        "Curator led while Rust did"
    );
    assert!(rust.has_leadership());
    let participants = ok("participants", rust.participants().await);
    assert_eq!(participants[0].id(), "rust");
    let rust_closing = now_ms();
    ok("rust closes", rust.close().await);
    let java_led = java.expect("LEADER").await;
    assert!(
        java_led >= rust_closing,
        "java led at {java_led}, rust closed at {rust_closing}"
    );
    assert_eq!(ok("rust's node", observer.exists(term.node()).await), None);
    java.close().await;
    java.expect("CLOSING").await;
    java.expect("NOT_LEADER").await;
    java.expect("CLOSED").await;
    java.finish().await;
}
