//! Interoperation with Apache Curator 5: a Java process (tests/interop/LockHolder.java,
//! compiled with javac at test time) and the Rust recipes share one lock on the same
//! server, and exclude each other in both directions.
//!
//! Skipped (with the reason printed) when javac, java or the Curator jars are missing,
//! unless `CORRAL_REQUIRE_COMPAT=1`.

mod common;

use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{ok, wait_children, within, Ctx};
use corral_recipes::lock::{Mutex, RwLock, Semaphore};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

/// The classpath with LockHolder compiled, or why not.
fn compiled() -> &'static Result<String, String> {
    static COMPILED: OnceLock<Result<String, String>> = OnceLock::new();
    COMPILED.get_or_init(|| common::compile_java("LockHolder.java", &common::CURATOR_JARS))
}

/// The classpath, or `None` after printing why the test is skipped.
fn classpath_or_skip() -> Option<String> {
    common::classpath_or_skip(compiled())
}

/// One line of LockHolder's output.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    word: String,
    ms: u128,
}

/// A running LockHolder.
struct Java {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::UnboundedReceiver<Line>,
}

impl Java {
    /// Starts LockHolder on `path` (relative to the test's chroot).
    fn start(cp: &str, ctx: &Ctx, path: &str, kind: &str, hold_ms: i64, rounds: u32) -> Java {
        let connect = format!("{}{}", ctx.server.addr(), ctx.root);
        let mut child = Command::new("java")
            .args(["-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"])
            .args(["-cp", cp, "LockHolder", &connect, path, kind])
            .arg(hold_ms.to_string())
            .arg(rounds.to_string())
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
                if tx.send(Line { word, ms }).is_err() {
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

    /// The next line, which must be `word`; returns its timestamp.
    async fn expect(&mut self, word: &str) -> u128 {
        let line = within(&format!("java {word}"), self.lines.recv())
            .await
            .unwrap_or_else(|| panic!("java exited before {word}"));
        assert_eq!(line.word, word, "java said {line:?}, expected {word}");
        line.ms
    }

    /// Lets a holder started with `hold_ms < 0` release.
    async fn release(&mut self) {
        self.stdin.write_all(b"release\n").await.expect("write");
        self.stdin.flush().await.expect("flush");
    }

    /// Waits for DONE and a successful exit.
    async fn finish(mut self) {
        self.expect("DONE").await;
        let status = within("java exit", self.child.wait()).await.expect("wait");
        assert!(status.success(), "java failed: {status}");
    }
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis()
}

fn is_curator_node(name: &str, marker: &str) -> bool {
    name.starts_with("_c_") && name.contains(marker)
}

#[tokio::test]
async fn a_curator_mutex_holder_excludes_a_rust_mutex() {
    let Some(cp) = classpath_or_skip() else {
        return;
    };
    let ctx = ctx_or_skip!();
    let observer = ctx.client().await;
    let mut java = Java::start(&cp, &ctx, "/interop/m", "mutex", -1, 1);
    java.expect("ACQUIRING").await;
    java.expect("HELD").await;
    let nodes = common::children(&observer, "/interop/m").await;
    assert!(
        nodes.len() == 1 && is_curator_node(&nodes[0], "-lock-"),
        "Curator's layout: {nodes:?}"
    );
    let mutex = Mutex::new(ctx.client().await, "/interop/m");
    let blocked = ok(
        "rust while java holds",
        mutex.acquire_timeout(Duration::from_millis(500)).await,
    );
    assert!(blocked.is_none(), "rust got the lock while Curator held it");
    let rust = tokio::spawn(async move {
        let guard = mutex.acquire().await.expect("rust acquire");
        (now_ms(), guard)
    });
    wait_children(&observer, "/interop/m", "rust queued behind java", |c| {
        c.len() == 2
    })
    .await;
    java.release().await;
    let java_releasing = java.expect("RELEASING").await;
    let (rust_held, guard) = within("rust acquires", rust).await.expect("task");
    assert!(
        rust_held >= java_releasing,
        "rust held at {rust_held}, java released at {java_releasing}"
    );
    assert!(guard.is_held());
    java.expect("RELEASED").await;
    java.finish().await;
}

#[tokio::test]
async fn a_rust_mutex_holder_excludes_a_curator_mutex() {
    let Some(cp) = classpath_or_skip() else {
        return;
    };
    let ctx = ctx_or_skip!();
    let observer = ctx.client().await;
    let guard = ok(
        "rust acquire",
        Mutex::new(ctx.client().await, "/interop/m").acquire().await,
    );
    let mut java = Java::start(&cp, &ctx, "/interop/m", "mutex", 0, 1);
    java.expect("ACQUIRING").await;
    wait_children(&observer, "/interop/m", "java queued behind rust", |c| {
        c.len() == 2
    })
    .await;
    let rust_releasing = now_ms();
    ok("rust release", guard.release().await);
    let java_held = java.expect("HELD").await;
    assert!(
        java_held >= rust_releasing,
        "java held at {java_held}, rust released at {rust_releasing}"
    );
    java.expect("RELEASING").await;
    java.expect("RELEASED").await;
    java.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curator_and_rust_contending_for_one_mutex_never_overlap() {
    let Some(cp) = classpath_or_skip() else {
        return;
    };
    let ctx = ctx_or_skip!();
    const ROUNDS: u32 = 6;
    let mut java = Java::start(&cp, &ctx, "/interop/m", "mutex", 20, ROUNDS);
    let mutex = Mutex::new(ctx.client().await, "/interop/m");
    java.expect("ACQUIRING").await;
    let rust = tokio::spawn(async move {
        let mut held = Vec::new();
        for _ in 0..ROUNDS {
            let guard = mutex.acquire().await.expect("acquire");
            let from = now_ms();
            // Hold for a while, as the Java side does (the workload, not a wait).
            tokio::time::sleep(Duration::from_millis(20)).await;
            let to = now_ms();
            guard.release().await.expect("release");
            held.push((from, to));
        }
        held
    });
    let mut intervals = Vec::new();
    for round in 0..ROUNDS {
        if round > 0 {
            java.expect("ACQUIRING").await;
        }
        let from = java.expect("HELD").await;
        let to = java.expect("RELEASING").await;
        java.expect("RELEASED").await;
        intervals.push(("java", from, to));
    }
    java.finish().await;
    for (from, to) in within("rust rounds", rust).await.expect("task") {
        intervals.push(("rust", from, to));
    }
    intervals.sort_by_key(|i| i.1);
    for pair in intervals.windows(2) {
        assert!(
            pair[1].1 >= pair[0].2,
            "overlapping holds: {:?} and {:?}",
            pair[0],
            pair[1]
        );
    }
    assert_eq!(intervals.len(), 2 * ROUNDS as usize);
}

#[tokio::test]
async fn a_curator_writer_excludes_rust_readers_and_a_rust_writer_excludes_curator_readers() {
    let Some(cp) = classpath_or_skip() else {
        return;
    };
    let ctx = ctx_or_skip!();
    let observer = ctx.client().await;
    let dir = "/interop/rw";

    // Java writes; a Rust reader waits for it.
    let mut java = Java::start(&cp, &ctx, dir, "write", -1, 1);
    java.expect("ACQUIRING").await;
    java.expect("HELD").await;
    let nodes = common::children(&observer, dir).await;
    assert!(
        nodes.len() == 1 && is_curator_node(&nodes[0], "-__WRIT__"),
        "Curator's layout: {nodes:?}"
    );
    let reader = RwLock::new(ctx.client().await, dir);
    let blocked = ok(
        "rust read while java writes",
        reader.read_timeout(Duration::from_millis(500)).await,
    );
    assert!(blocked.is_none(), "rust read while Curator wrote");
    let rust = tokio::spawn(async move {
        let guard = reader.read().await.expect("read");
        (now_ms(), guard)
    });
    wait_children(&observer, dir, "rust reader queued", |c| c.len() == 2).await;
    java.release().await;
    let java_releasing = java.expect("RELEASING").await;
    let (rust_held, read_guard) = within("rust reads", rust).await.expect("task");
    assert!(rust_held >= java_releasing);
    java.expect("RELEASED").await;
    java.finish().await;
    ok("rust read release", read_guard.release().await);

    // Rust writes; a Java reader waits for it.
    let writer = RwLock::new(ctx.client().await, dir);
    let write_guard = ok("rust write", writer.write().await);
    let mut java = Java::start(&cp, &ctx, dir, "read", 0, 1);
    java.expect("ACQUIRING").await;
    wait_children(&observer, dir, "java reader queued", |c| c.len() == 2).await;
    let rust_releasing = now_ms();
    ok("rust write release", write_guard.release().await);
    let java_held = java.expect("HELD").await;
    assert!(java_held >= rust_releasing);
    java.expect("RELEASING").await;
    java.expect("RELEASED").await;
    java.finish().await;
}

#[tokio::test]
async fn curator_and_rust_readers_share_the_read_lock() {
    let Some(cp) = classpath_or_skip() else {
        return;
    };
    let ctx = ctx_or_skip!();
    let dir = "/interop/rw";
    let mut java = Java::start(&cp, &ctx, dir, "read", -1, 1);
    java.expect("ACQUIRING").await;
    java.expect("HELD").await;
    let reader = RwLock::new(ctx.client().await, dir);
    let read = ok(
        "rust read beside java",
        reader.read_timeout(common::WAIT).await,
    );
    let read = read.expect("readers share");
    assert!(read.is_held());
    // A Rust writer waits for both readers.
    let writer = RwLock::new(ctx.client().await, dir);
    assert!(ok(
        "rust write while both read",
        writer.write_timeout(Duration::from_millis(500)).await
    )
    .is_none());
    ok("rust read release", read.release().await);
    java.release().await;
    java.expect("RELEASING").await;
    java.expect("RELEASED").await;
    java.finish().await;
}

#[tokio::test]
async fn curator_and_rust_share_one_semaphore() {
    let Some(cp) = classpath_or_skip() else {
        return;
    };
    let ctx = ctx_or_skip!();
    let observer = ctx.client().await;
    let dir = "/interop/sem";
    let mut java = Java::start(&cp, &ctx, dir, "semaphore:2", -1, 1);
    java.expect("ACQUIRING").await;
    java.expect("HELD").await;
    let sem = Semaphore::new(ctx.client().await, dir, 2);
    let lease = ok("rust lease", sem.acquire_timeout(common::WAIT).await).expect("second lease");
    let leases = common::children(&observer, &format!("{dir}/leases")).await;
    assert_eq!(leases.len(), 2, "{leases:?}");
    assert!(leases.iter().all(|l| is_curator_node(l, "-lease-")));
    let third = Semaphore::new(ctx.client().await, dir, 2);
    assert!(ok(
        "third lease",
        third.acquire_timeout(Duration::from_millis(500)).await
    )
    .is_none());
    let waiting = tokio::spawn(async move {
        let lease = third.acquire().await.expect("third lease");
        (now_ms(), lease)
    });
    wait_children(
        &observer,
        &format!("{dir}/leases"),
        "third taker waits",
        |c| c.len() == 3,
    )
    .await;
    java.release().await;
    let java_releasing = java.expect("RELEASING").await;
    let (third_held, third_lease) = within("third lease", waiting).await.expect("task");
    assert!(
        third_held >= java_releasing,
        "third lease at {third_held}, java returned its lease at {java_releasing}"
    );
    assert!(third_lease.is_held());
    java.expect("RELEASED").await;
    java.finish().await;
    drop(lease);
}
