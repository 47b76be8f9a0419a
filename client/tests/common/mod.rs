//! Shared harness of the client's integration tests: a real server per test, over real
//! sockets, plus a fault-injecting TCP proxy.
//!
//! Server sources, in order:
//! 1. `CORRAL_TEST_ZK=host:port`: a running ZooKeeper-compatible server (shared; tests use
//!    unique roots; it cannot be restarted, so restart tests are skipped);
//! 2. `CORRAL_TEST_BACKEND=zookeeper`: a private Apache ZooKeeper 3.8 started from the
//!    Debian packages (`java` and `/usr/share/java/zookeeper.jar`), on a free port and a
//!    temporary data dir, killed on drop, restartable on the same port and data dir;
//! 3. otherwise (the default): Corral's in-process `TestingServer`, restartable too.
//!
//! If the chosen source is not available the test prints why and passes (skips), unless
//! `CORRAL_REQUIRE_SERVER=1`, which turns that into a panic. The whole suite runs once per
//! source in CI: against Corral and against Apache ZooKeeper.

#![allow(dead_code)]

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use corral_client::{Client, ClientBuilder, Error};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The bound on every await in the tests.
pub const WAIT: Duration = Duration::from_secs(20);

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

/// Where a test's server comes from.
enum Backend {
    /// A server somebody else runs.
    External(String),
    /// A private Apache ZooKeeper process.
    Zookeeper(ZkProcess),
    /// Corral's in-process server.
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
        let started = if std::env::var("CORRAL_TEST_BACKEND").as_deref() == Ok("zookeeper") {
            ZkProcess::start(ZkOptions {
                extended_types: true,
            })
            .await
            .map(Backend::Zookeeper)
        } else {
            corral_server::testing::TestingServer::start_with(|c| {
                // Reap containers and TTL nodes quickly, as the Apache harness does.
                c.container_check_interval_ms = 100;
            })
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

    /// Whether [`TestServer::stop`] / [`TestServer::restart`] work.
    pub fn can_restart(&self) -> bool {
        matches!(self.backend, Backend::Zookeeper(_) | Backend::Corral(_))
    }

    /// Whether containers and TTL nodes are reaped within a second or so.
    pub fn reaps_quickly(&self) -> bool {
        matches!(self.backend, Backend::Zookeeper(_) | Backend::Corral(_))
    }

    /// Kills the server (like a crash); its data dir and port are kept.
    pub async fn stop(&mut self) {
        match &mut self.backend {
            Backend::External(_) => panic!("an external server cannot be stopped"),
            Backend::Zookeeper(zk) => zk.stop(),
            Backend::Corral(s) => s.stop().await,
        }
    }

    /// Starts the server again on the same port and data dir, and waits until it serves.
    pub async fn restart(&mut self) {
        match &mut self.backend {
            Backend::External(_) => panic!("an external server cannot be restarted"),
            Backend::Zookeeper(zk) => zk.launch().await.expect("restart the server"),
            Backend::Corral(s) => s.restart().await.expect("restart the server"),
        }
    }
}

/// Prints a skip notice for tests that need a restartable server.
pub fn skip_unless_restartable(server: &TestServer) -> bool {
    if server.can_restart() {
        return false;
    }
    eprintln!("SKIPPED: this test needs a server it can stop and restart");
    true
}

pub use corral_testkit::{unique, ZkOptions, ZkProcess};

/// A test's server plus a fresh root node under which the test works.
pub struct Ctx {
    pub server: TestServer,
    /// The test's root, e.g. `/corral-test-…` (the chroot of [`Ctx::client`]).
    pub root: String,
}

impl Ctx {
    /// Starts a server and creates the test's root; `None` if the test is to be skipped.
    pub async fn new() -> Option<Ctx> {
        let server = TestServer::start().await?;
        let root = format!("/{}", unique("corral-test"));
        let admin = within("admin connect", Client::connect(&server.addr()))
            .await
            .expect("connect without chroot");
        admin
            .create(&root, b"", &corral_client::CreateOptions::persistent())
            .await
            .expect("create the test root");
        admin.close().await.expect("close");
        Some(Ctx { server, root })
    }

    /// The connect string with the test root as chroot.
    pub fn connect_string(&self) -> String {
        format!("{}{}", self.server.addr(), self.root)
    }

    /// A builder for a client chrooted at the test root, with test-friendly timeouts.
    pub fn builder(&self) -> ClientBuilder {
        Self::test_builder(self.connect_string())
    }

    /// A builder with test-friendly timeouts for any connect string.
    pub fn test_builder(connect_string: String) -> ClientBuilder {
        Client::builder(connect_string)
            .with_session_timeout(Duration::from_secs(10))
            .with_connection_timeout(Duration::from_secs(10))
    }

    /// A connected client chrooted at the test root.
    pub async fn client(&self) -> Client {
        within("connect", self.builder().connect())
            .await
            .expect("connect")
    }

    /// A connected client without chroot.
    pub async fn raw_client(&self) -> Client {
        within("connect", Self::test_builder(self.server.addr()).connect())
            .await
            .expect("connect")
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

/// Asserts that a result is the given error variant (by pattern).
#[macro_export]
macro_rules! assert_err {
    ($result:expr, $pat:pat) => {
        match $result {
            Err($pat) => {}
            other => panic!("expected {}, got {:?}", stringify!($pat), other),
        }
    };
}

/// What the proxy does with its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProxyMode {
    /// Forward bytes both ways.
    Forward,
    /// Close every connection and refuse new ones (a partition).
    Cut,
    /// Keep connections open but forward nothing (a silent server).
    Freeze,
}

/// A TCP proxy in front of a server, to cut, freeze or corrupt client connections while
/// the server keeps running.
pub struct Proxy {
    addr: String,
    mode: watch::Sender<ProxyMode>,
    /// Bytes to send to the clients of current connections, as if from the server.
    inject: Arc<Mutex<Vec<tokio::sync::mpsc::UnboundedSender<Vec<u8>>>>>,
    accepted: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy to `upstream` on a free local port.
    pub async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr").to_string();
        let (mode, mode_rx) = watch::channel(ProxyMode::Forward);
        let inject: Arc<Mutex<Vec<tokio::sync::mpsc::UnboundedSender<Vec<u8>>>>> = Arc::default();
        let accepted = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let task = {
            let inject = inject.clone();
            let accepted = accepted.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        return;
                    };
                    if *mode_rx.borrow() == ProxyMode::Cut {
                        drop(client);
                        continue;
                    }
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let Ok(server) = TcpStream::connect(&upstream).await else {
                        continue;
                    };
                    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                    inject.lock().unwrap().push(tx);
                    tokio::spawn(pipe(client, server, mode_rx.clone(), rx));
                }
            })
        };
        Proxy {
            addr,
            mode,
            inject,
            accepted,
            stop,
            task,
        }
    }

    /// `host:port` of the proxy.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Connections accepted and forwarded so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Closes every connection and refuses new ones.
    pub fn cut(&self) {
        self.mode.send_replace(ProxyMode::Cut);
    }

    /// Stops forwarding on current connections (they stay open); new ones are forwarded.
    pub fn freeze(&self) {
        self.mode.send_replace(ProxyMode::Freeze);
    }

    /// Forwards again.
    pub fn heal(&self) {
        self.mode.send_replace(ProxyMode::Forward);
    }

    /// Sends `bytes` to the clients of the current connections, as if from the server.
    pub fn inject_to_clients(&self, bytes: &[u8]) {
        let mut senders = self.inject.lock().unwrap();
        senders.retain(|tx| tx.send(bytes.to_vec()).is_ok());
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.mode.send_replace(ProxyMode::Cut);
        self.task.abort();
    }
}

/// Forwards one connection until either side closes or the proxy cuts it. After a
/// `freeze`, bytes are read and dropped on the floor, so nothing reaches either side.
async fn pipe(
    client: TcpStream,
    server: TcpStream,
    mut mode: watch::Receiver<ProxyMode>,
    mut inject: tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let mut cbuf = vec![0u8; 64 * 1024];
    let mut sbuf = vec![0u8; 64 * 1024];
    // Only later changes apply: a connection made during a freeze is forwarded.
    let mut frozen = false;
    mode.borrow_and_update();
    loop {
        tokio::select! {
            changed = mode.changed() => {
                if changed.is_err() {
                    return;
                }
                match *mode.borrow_and_update() {
                    ProxyMode::Cut => return,
                    ProxyMode::Freeze => frozen = true,
                    ProxyMode::Forward => frozen = false,
                }
            }
            Some(bytes) = inject.recv() => {
                if cw.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            r = cr.read(&mut cbuf) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) if !frozen => {
                    if sw.write_all(&cbuf[..n]).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
            },
            r = sr.read(&mut sbuf) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) if !frozen => {
                    if cw.write_all(&sbuf[..n]).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
            },
        }
    }
}

/// Waits for a session status matching `pred`.
pub async fn wait_status(
    client: &Client,
    what: &str,
    pred: impl FnMut(&corral_client::SessionStatus) -> bool,
) -> corral_client::SessionStatus {
    match client.state_watcher().wait_for(WAIT, pred).await {
        Ok(s) => s,
        Err(e) => panic!("waiting for {what}: {e} (status {:?})", client.status()),
    }
}

/// The digest ACL id of `user:password`: `user:base64(sha1("user:password"))`.
pub fn digest_id(user_password: &str) -> String {
    use base64::Engine;
    use sha1::Digest;
    let user = user_password.split(':').next().unwrap_or_default();
    let hash = sha1::Sha1::digest(user_password.as_bytes());
    format!(
        "{user}:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// Unwraps a result whose error is a client error, with context.
pub fn ok<T>(what: &str, r: Result<T, Error>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e:?}"),
    }
}
