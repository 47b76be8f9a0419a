//! Harness of the recipe tests: a real server per test over real sockets, a TCP proxy that
//! can cut connections (also right after a create), and helpers to wait on znodes.
//!
//! Server sources, in order:
//! 1. `CORRAL_TEST_ZK=host:port`: a running ZooKeeper-compatible server (shared; tests use
//!    unique roots);
//! 2. `CORRAL_TEST_BACKEND=zookeeper`: a private Apache ZooKeeper 3.8 started from the
//!    Debian packages (`java`, `/usr/share/java/zookeeper.jar`) on a free port;
//! 3. otherwise: Corral's in-process `TestingServer`.
//!
//! When the chosen source is unavailable the test prints `SKIPPED: …` and passes, unless
//! `CORRAL_REQUIRE_SERVER=1`.

#![allow(dead_code)]

use std::future::Future;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use corral_client::{Client, ClientBuilder, CreateOptions, Error, SessionStatus};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The bound on every await in the tests.
pub const WAIT: Duration = Duration::from_secs(30);

/// Awaits `fut` for at most [`WAIT`], panicking with `what` otherwise.
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}

/// Installs the shared tracing subscriber once (`RUST_LOG` filters; off by default).
pub fn init_tracing() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}

/// Whether the tests run against Apache ZooKeeper (for messages).
pub fn backend_name() -> &'static str {
    if std::env::var("CORRAL_TEST_ZK").is_ok() {
        "external"
    } else if std::env::var("CORRAL_TEST_BACKEND").as_deref() == Ok("zookeeper") {
        "zookeeper"
    } else {
        "corral"
    }
}

enum Backend {
    External(String),
    Zookeeper(ZkProcess),
    Corral(Box<corral_server::testing::TestingServer>),
}

/// A server for one test.
pub struct TestServer {
    backend: Backend,
}

impl TestServer {
    /// A server, or `None` (after printing why) if none is available.
    pub async fn start() -> Option<TestServer> {
        init_tracing();
        if let Ok(addr) = std::env::var("CORRAL_TEST_ZK") {
            return Some(TestServer {
                backend: Backend::External(addr),
            });
        }
        let started = if backend_name() == "zookeeper" {
            ZkProcess::start(ZkOptions::default())
                .await
                .map(Backend::Zookeeper)
        } else {
            corral_server::testing::TestingServer::start()
                .await
                .map(|s| Backend::Corral(Box::new(s)))
                .map_err(|e| format!("corral TestingServer: {e}"))
        };
        match started {
            Ok(backend) => Some(TestServer { backend }),
            Err(reason) => {
                if std::env::var("CORRAL_REQUIRE_SERVER").as_deref() == Ok("1") {
                    panic!("no test server: {reason}");
                }
                eprintln!("SKIPPED: no test server available: {reason}");
                None
            }
        }
    }

    /// `host:port` of the server.
    pub fn addr(&self) -> String {
        match &self.backend {
            Backend::External(a) => a.clone(),
            Backend::Zookeeper(zk) => zk.addr(),
            Backend::Corral(s) => s.connect_string(),
        }
    }
}

// Not every test binary uses every helper.
#[allow(unused_imports)]
pub use corral_testkit::{command_works, four_letter_word, unique, ZkOptions, ZkProcess};

/// A test's server plus a fresh root node (the chroot of the test's clients).
pub struct Ctx {
    pub server: TestServer,
    pub root: String,
}

impl Ctx {
    /// Starts a server and creates the test's root; `None` if the test is to be skipped.
    pub async fn new() -> Option<Ctx> {
        let server = TestServer::start().await?;
        let root = format!("/{}", unique("recipes-test"));
        let admin = within("admin connect", Client::connect(&server.addr()))
            .await
            .expect("connect without chroot");
        admin
            .create(&root, b"", &CreateOptions::persistent())
            .await
            .expect("create the test root");
        admin.close().await.expect("close");
        Some(Ctx { server, root })
    }

    /// A builder with test-friendly timeouts for `host:port` (plus the test's chroot).
    pub fn builder_for(&self, host_port: &str) -> ClientBuilder {
        Client::builder(format!("{host_port}{}", self.root))
            .with_session_timeout(Duration::from_secs(10))
            .with_connection_timeout(Duration::from_secs(10))
    }

    /// A connected client chrooted at the test root.
    pub async fn client(&self) -> Client {
        within("connect", self.builder_for(&self.server.addr()).connect())
            .await
            .expect("connect")
    }

    /// A connected client chrooted at the test root, through `proxy`.
    pub async fn client_via(&self, proxy: &Proxy) -> Client {
        within(
            "connect via proxy",
            self.builder_for(proxy.addr()).connect(),
        )
        .await
        .expect("connect via proxy")
    }

    /// Expires the session of `status` on the server: another client resumes it (id +
    /// password) and closes it. The owner should be cut off first (see [`Proxy::cut`]).
    pub async fn expire(&self, status: &SessionStatus) {
        let thief = within(
            "resume the session",
            self.builder_for(&self.server.addr())
                .with_session(status.session_id, status.password())
                .connect(),
        )
        .await
        .expect("resume the session");
        assert_eq!(thief.session_id(), status.session_id);
        thief.close().await.expect("close the session");
    }
}

/// Starts a [`Ctx`] or returns from the test (skipped).
#[macro_export]
macro_rules! ctx_or_skip {
    () => {
        match common::Ctx::new().await {
            Some(ctx) => ctx,
            None => return,
        }
    };
}

/// Unwraps with context.
pub fn ok<T, E: std::fmt::Debug>(what: &str, r: Result<T, E>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e:?}"),
    }
}

/// The children of `dir` (empty if it does not exist).
pub async fn children(client: &Client, dir: &str) -> Vec<String> {
    match client.get_children(dir).await {
        Ok(mut c) => {
            c.sort();
            c
        }
        Err(Error::NoNode) => Vec::new(),
        Err(e) => panic!("list {dir}: {e:?}"),
    }
}

/// Waits (with watches, bounded by [`WAIT`]) until the children of `dir` satisfy `pred`,
/// and returns them sorted.
pub async fn wait_children(
    client: &Client,
    dir: &str,
    what: &str,
    mut pred: impl FnMut(&[String]) -> bool,
) -> Vec<String> {
    let wait = async {
        loop {
            match client.get_and_watch_children(dir).await {
                Ok((mut c, watcher)) => {
                    c.sort();
                    if pred(&c) {
                        return c;
                    }
                    watcher.await.expect("child watch");
                }
                Err(Error::NoNode) => {
                    if pred(&[]) {
                        return Vec::new();
                    }
                    let (stat, watcher) = client.exists_and_watch(dir).await.expect("exists");
                    if stat.is_none() {
                        watcher.await.expect("exists watch");
                    }
                }
                Err(e) => panic!("watch {dir}: {e:?}"),
            }
        }
    };
    match tokio::time::timeout(WAIT, wait).await {
        Ok(c) => c,
        Err(_) => panic!(
            "timed out waiting for {what}; children of {dir} now: {:?}",
            children(client, dir).await
        ),
    }
}

/// What the proxy does with its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProxyMode {
    Forward,
    /// Close every connection and refuse new ones.
    Cut,
}

/// A TCP proxy in front of a server. It can cut every connection (a partition), or cut one
/// connection right after a create request went through: the server applies the create,
/// its reply is swallowed and the client sees a connection loss.
pub struct Proxy {
    addr: String,
    mode: watch::Sender<ProxyMode>,
    trap: Arc<Mutex<Option<String>>>,
    trips: Arc<AtomicU64>,
    /// The error code of the last swallowed reply (0: the create was applied).
    swallowed: Arc<Mutex<Option<i32>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy to `upstream` on a free local port.
    pub async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr").to_string();
        let (mode, mode_rx) = watch::channel(ProxyMode::Forward);
        let trap: Arc<Mutex<Option<String>>> = Arc::default();
        let trips = Arc::new(AtomicU64::new(0));
        let swallowed: Arc<Mutex<Option<i32>>> = Arc::default();
        let task = {
            let (trap, trips, swallowed) = (trap.clone(), trips.clone(), swallowed.clone());
            tokio::spawn(async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        return;
                    };
                    if *mode_rx.borrow() == ProxyMode::Cut {
                        continue;
                    }
                    let Ok(server) = TcpStream::connect(&upstream).await else {
                        continue;
                    };
                    tokio::spawn(connection(
                        client,
                        server,
                        mode_rx.clone(),
                        trap.clone(),
                        trips.clone(),
                        swallowed.clone(),
                    ));
                }
            })
        };
        Proxy {
            addr,
            mode,
            trap,
            trips,
            swallowed,
            task,
        }
    }

    /// `host:port` of the proxy.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Closes every connection and refuses new ones.
    pub fn cut(&self) {
        self.mode.send_replace(ProxyMode::Cut);
    }

    /// Forwards again.
    pub fn heal(&self) {
        self.mode.send_replace(ProxyMode::Forward);
    }

    /// Arms a one-shot trap: the next create whose path contains `needle` is forwarded,
    /// then its reply is dropped and that connection closed.
    pub fn cut_after_create(&self, needle: &str) {
        *self.trap.lock().unwrap() = Some(needle.to_owned());
    }

    /// How many times the trap fired.
    pub fn trips(&self) -> u64 {
        self.trips.load(Ordering::SeqCst)
    }

    /// The error code of the reply the trap swallowed last (0: the create was applied).
    pub fn swallowed_error(&self) -> Option<i32> {
        *self.swallowed.lock().unwrap()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.mode.send_replace(ProxyMode::Cut);
        self.task.abort();
    }
}

/// Forwards one connection frame by frame until a side closes, the proxy cuts, or a
/// trapped create's reply arrives.
async fn connection(
    client: TcpStream,
    server: TcpStream,
    mut mode: watch::Receiver<ProxyMode>,
    trap: Arc<Mutex<Option<String>>>,
    trips: Arc<AtomicU64>,
    swallowed: Arc<Mutex<Option<i32>>>,
) {
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let trapped: Arc<Mutex<Option<i32>>> = Arc::default();
    let up = forward(cr, sw, |frame| {
        // Request: len, xid, type, then for creates the path (len + bytes).
        if frame.len() >= 16 {
            let op = i32::from_be_bytes(frame[8..12].try_into().unwrap());
            if matches!(op, 1 | 15 | 19 | 21) {
                let n = i32::from_be_bytes(frame[12..16].try_into().unwrap()).max(0) as usize;
                let path = String::from_utf8_lossy(&frame[16..(16 + n).min(frame.len())]);
                let mut armed = trap.lock().unwrap();
                if armed.as_deref().is_some_and(|needle| path.contains(needle)) {
                    *armed = None;
                    let xid = i32::from_be_bytes(frame[4..8].try_into().unwrap());
                    *trapped.lock().unwrap() = Some(xid);
                }
            }
        }
        true
    });
    let down = forward(sr, cw, |frame| {
        // Reply: len, xid, zxid, err.
        if frame.len() >= 8 {
            let xid = i32::from_be_bytes(frame[4..8].try_into().unwrap());
            if *trapped.lock().unwrap() == Some(xid) {
                if frame.len() >= 20 {
                    let err = i32::from_be_bytes(frame[16..20].try_into().unwrap());
                    *swallowed.lock().unwrap() = Some(err);
                }
                trips.fetch_add(1, Ordering::SeqCst);
                return false;
            }
        }
        true
    });
    let cut = async {
        loop {
            if *mode.borrow_and_update() == ProxyMode::Cut || mode.changed().await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = up => {}
        _ = down => {}
        _ = cut => {}
    }
}

/// Copies length-prefixed frames from `from` to `to`; the first frame (the handshake) is
/// always copied, later ones only while `keep(frame)` says so (false closes the
/// connection).
async fn forward(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut keep: impl FnMut(&[u8]) -> bool,
) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut first = true;
    loop {
        let n = match from.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        while buf.len() >= 4 {
            let len = i32::from_be_bytes(buf[..4].try_into().unwrap()).max(0) as usize;
            if buf.len() < 4 + len {
                break;
            }
            let frame: Vec<u8> = buf.drain(..4 + len).collect();
            if !first && !keep(&frame) {
                return;
            }
            first = false;
            if to.write_all(&frame).await.is_err() {
                return;
            }
        }
    }
}

/// Waits until a guard's state satisfies `pred`.
pub async fn wait_state(
    what: &str,
    mut rx: watch::Receiver<corral_recipes::lock::LockState>,
    pred: impl FnMut(&corral_recipes::lock::LockState) -> bool,
) -> corral_recipes::lock::LockState {
    let state = within(what, rx.wait_for(pred)).await;
    *state.expect("state channel open")
}

/// Jars every Curator interop program needs (under /usr/share/java).
pub const CURATOR_JARS: [&str; 8] = [
    "curator-recipes.jar",
    "curator-framework.jar",
    "curator-client.jar",
    "zookeeper.jar",
    "zookeeper-jute.jar",
    "guava.jar",
    "slf4j-api.jar",
    "slf4j-nop.jar",
];

/// Compiles `tests/interop/<source>` with javac against `jars` (in /usr/share/java) into a
/// directory kept for the test run. Returns the classpath with the compiled class first, or
/// why it cannot be had (no JDK, a jar missing, a compile error).
pub fn compile_java(source: &str, jars: &[&str]) -> Result<String, String> {
    for tool in ["javac", "java"] {
        if !command_works(tool, &["-version"]) {
            return Err(format!("no working `{tool}` on PATH"));
        }
    }
    let mut classpath = Vec::new();
    for jar in jars {
        let path = std::path::Path::new("/usr/share/java").join(jar);
        if !path.exists() {
            return Err(format!(
                "{} not found (apt install libcurator-recipes-java libcurator-discovery-java)",
                path.display()
            ));
        }
        classpath.push(path.display().to_string());
    }
    let source = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/interop")
        .join(source);
    let out = tempfile::tempdir().map_err(|e| e.to_string())?.keep();
    let status = Command::new("javac")
        .arg("-d")
        .arg(&out)
        .arg("-cp")
        .arg(classpath.join(":"))
        .arg(&source)
        .status()
        .map_err(|e| format!("javac: {e}"))?;
    if !status.success() {
        return Err(format!("javac {} failed: {status}", source.display()));
    }
    classpath.insert(0, out.display().to_string());
    Ok(classpath.join(":"))
}

/// The classpath, or `None` after printing why the interop test is skipped; with
/// `CORRAL_REQUIRE_COMPAT=1` a missing peer is a failure instead.
pub fn classpath_or_skip(compiled: &Result<String, String>) -> Option<String> {
    match compiled {
        Ok(cp) => Some(cp.clone()),
        Err(reason) => {
            if std::env::var("CORRAL_REQUIRE_COMPAT").as_deref() == Ok("1") {
                panic!("interop with Curator required but unavailable: {reason}");
            }
            eprintln!("SKIPPED: interop with Curator: {reason}");
            None
        }
    }
}
