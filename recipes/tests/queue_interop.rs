//! Interoperation with Apache Curator 5.4's queues: Java producers and consumers
//! (tests/interop/QueueMember.java, compiled with javac at test time) and the Rust queues
//! share `DistributedQueue`, `DistributedPriorityQueue` and `SimpleDistributedQueue` paths
//! in both directions, and lock-safe consumers of both take each item once.
//!
//! Skipped (with the reason printed) when javac, java or the Curator jars are missing,
//! unless `CORRAL_REQUIRE_COMPAT=1`.

mod common;

use std::collections::BTreeSet;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use common::{children, ok, within, Ctx};
use corral_recipes::queue::{DistributedPriorityQueue, DistributedQueue, QueueFormat};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

const QUEUE: &str = "/interop/queue";
const LOCKS: &str = "/interop/queue-locks";

/// The classpath with QueueMember compiled, or why not.
fn compiled() -> &'static Result<String, String> {
    static COMPILED: OnceLock<Result<String, String>> = OnceLock::new();
    COMPILED.get_or_init(|| common::compile_java("QueueMember.java", &common::CURATOR_JARS))
}

fn classpath_or_skip() -> Option<String> {
    common::classpath_or_skip(compiled())
}

/// A running QueueMember.
struct Java {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::UnboundedReceiver<String>,
}

impl Java {
    fn start(cp: &str, ctx: &Ctx, path: &str, mode: &str, count: i64, lock: Option<&str>) -> Java {
        let connect = format!("{}{}", ctx.server.addr(), ctx.root);
        let mut child = Command::new("java")
            .args(["-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"])
            .args(["-cp", cp, "QueueMember", &connect, path, mode])
            .arg(count.to_string())
            .args(lock)
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
                if tx.send(line).is_err() {
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

    async fn line(&mut self, what: &str) -> String {
        within(&format!("java: {what}"), self.lines.recv())
            .await
            .unwrap_or_else(|| panic!("java exited before {what}"))
    }

    async fn ready(&mut self) {
        let line = self.line("READY").await;
        assert!(line.starts_with("READY"), "java said {line:?}");
    }

    /// The next consumed item.
    async fn item(&mut self) -> String {
        let line = self.line("ITEM").await;
        line.strip_prefix("ITEM ")
            .unwrap_or_else(|| panic!("java said {line:?}, expected an item"))
            .to_owned()
    }

    async fn send(&mut self, line: &str) {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("write");
        self.stdin.flush().await.expect("flush");
    }

    async fn finish(mut self) {
        let line = self.line("DONE").await;
        assert_eq!(line, "DONE");
        let status = within("java exit", self.child.wait()).await.expect("wait");
        assert!(status.success(), "java failed: {status}");
    }
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).expect("utf-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_curator_producer_feeds_a_rust_consumer_in_order() {
    let Some(cp) = classpath_or_skip() else {
        return;
    };
    let ctx = ctx_or_skip!();
    const N: i64 = 15;
    let mut java = Java::start(&cp, &ctx, QUEUE, "put", N, None);
    java.ready().await;
    java.finish().await;
    let mut java = Java::start(&cp, &ctx, QUEUE, "put-multi", 3, None);
    java.ready().await;
    java.finish().await;
    let queue = DistributedQueue::new(ctx.client().await, QUEUE);
    assert_eq!(ok("len", queue.len().await), N as usize + 1);
    let mut got = Vec::new();
    for _ in 0..N + 3 {
        got.push(text(ok("take", within("take", queue.take()).await)));
    }
    let mut expected: Vec<String> = (0..N).map(|n| format!("j-{n}")).collect();
    expected.extend((0..3).map(|n| format!("m-{n}")));
    assert_eq!(got, expected);
    assert!(ok("empty", queue.is_empty().await));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_producer_feeds_a_curator_consumer_in_order() {
    let Some(cp) = classpath_or_skip() else {
        return;
    };
    let ctx = ctx_or_skip!();
    const N: usize = 15;
    let queue = DistributedQueue::new(ctx.client().await, QUEUE);
    for n in 0..N {
        ok("put", queue.put(format!("r-{n}").as_bytes()).await);
    }
    ok("put_multi", queue.put_multi(&[b"m-0", b"m-1"]).await);
    let mut java = Java::start(&cp, &ctx, QUEUE, "take", N as i64 + 2, None);
    java.ready().await;
    let mut got = Vec::new();
    for _ in 0..N + 2 {
        got.push(java.item().await);
    }
    let mut expected: Vec<String> = (0..N).map(|n| format!("r-{n}")).collect();
    expected.extend(["m-0".to_string(), "m-1".to_string()]);
    assert_eq!(got, expected);
    java.finish().await;
    assert!(ok("empty", queue.is_empty().await));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curator_and_rust_lock_safe_consumers_take_each_item_exactly_once() {
    let Some(cp) = classpath_or_skip() else {
        return;
    };
    let ctx = ctx_or_skip!();
    const N: usize = 30;
    let mut java = Java::start(&cp, &ctx, QUEUE, "take", -1, Some(LOCKS));
    java.ready().await;
    let rust = DistributedQueue::new(ctx.client().await, QUEUE).with_lock_safety(LOCKS);
    let producer = DistributedQueue::new(ctx.client().await, QUEUE);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let consumer = tokio::spawn(async move {
        loop {
            let tx = tx.clone();
            let r = rust
                .take_with_timeout(
                    move |item| {
                        let tx = tx.clone();
                        async move { tx.send(text(item)).map_err(|_| ()) }
                    },
                    Duration::from_millis(300),
                )
                .await
                .expect("take_with");
            if let Some(Err(())) = r {
                return;
            }
        }
    });
    for n in 0..N {
        ok("put", producer.put(format!("x-{n}").as_bytes()).await);
    }
    let mut seen = BTreeSet::new();
    let (mut by_java, mut by_rust) = (0, 0);
    while seen.len() < N {
        tokio::select! {
            item = java.item() => {
                by_java += 1;
                assert!(seen.insert(item.clone()), "{item} taken twice");
            }
            item = rx.recv() => {
                let item = item.expect("rust consumer");
                by_rust += 1;
                assert!(seen.insert(item.clone()), "{item} taken twice");
            }
            _ = tokio::time::sleep(common::WAIT) => panic!("items missing: have {seen:?}"),
        }
    }
    let expected: BTreeSet<String> = (0..N).map(|n| format!("x-{n}")).collect();
    assert_eq!(seen, expected);
    eprintln!("lock-safe interop: {by_java} items by Curator, {by_rust} by Rust");
    java.send("stop").await;
    java.finish().await;
    drop(rx);
    consumer.abort();
    let observer = ctx.client().await;
    assert!(children(&observer, QUEUE).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_curator_priority_producer_feeds_a_rust_priority_consumer() {
    let Some(cp) = classpath_or_skip() else {
        return;
    };
    let ctx = ctx_or_skip!();
    let mut java = Java::start(&cp, &ctx, QUEUE, "put-priority", 9, None);
    java.ready().await;
    java.finish().await;
    let queue = DistributedPriorityQueue::new(ctx.client().await, QUEUE);
    let mut got = Vec::new();
    for _ in 0..9 {
        got.push(text(ok("take", queue.take().await)));
    }
    // Priority n % 3, lowest first, FIFO within a priority.
    assert_eq!(
        got,
        ["j-0", "j-3", "j-6", "j-1", "j-4", "j-7", "j-2", "j-5", "j-8"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curators_simple_queue_and_the_rust_simple_format_share_a_path() {
    let Some(cp) = classpath_or_skip() else {
        return;
    };
    let ctx = ctx_or_skip!();
    let path = "/interop/simple";
    let mut java = Java::start(&cp, &ctx, path, "simple-put", 5, None);
    java.ready().await;
    java.finish().await;
    let queue = DistributedQueue::new(ctx.client().await, path).with_format(QueueFormat::Simple);
    for n in 0..5 {
        assert_eq!(text(ok("take", queue.take().await)), format!("s-{n}"));
    }
    for n in 0..5 {
        ok("put", queue.put(format!("r-{n}").as_bytes()).await);
    }
    let mut java = Java::start(&cp, &ctx, path, "simple-take", 5, None);
    java.ready().await;
    for n in 0..5 {
        assert_eq!(java.item().await, format!("r-{n}"));
    }
    java.finish().await;
}
