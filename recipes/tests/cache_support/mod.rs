//! Helpers shared by the cache, discovery, group and persistent-node tests: clients that
//! renew expired sessions, forced expiry through the proxy, reading a subtree from the
//! server, checking that an event stream replays consistently, an in-process ensemble
//! (Corral only), and a proxy that hides persistent watches from the client.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use corral_client::{Client, ClientBuilder, CreateOptions, Error};
use corral_recipes::cache::{CacheEvent, CacheEvents, ChildData, TreeCache};
use corral_server::testing::TestingCluster;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

use crate::common::{self, within, Ctx, Proxy, WAIT};

/// What the tests compare of a node: data, czxid, mzxid, version.
pub type NodeView = (Vec<u8>, i64, i64, i32);

/// A client with session renewal, connected through `proxy`.
pub async fn renewing_client_via(ctx: &Ctx, proxy: &Proxy) -> Client {
    within(
        "connect a renewing client via the proxy",
        ctx.builder_for(proxy.addr())
            .with_session_renewal(true)
            .connect(),
    )
    .await
    .expect("connect")
}

/// Expires the session of `client` (connected through `proxy`) by force: cut it off,
/// resume its session from another client and close it, then let it reconnect; waits
/// until the client has a new session and returns its epoch.
pub async fn expire_through(ctx: &Ctx, proxy: &Proxy, client: &Client) -> u64 {
    let before = client.status();
    proxy.cut();
    let mut states = client.state_watcher();
    states
        .wait_for(WAIT, |s| !s.is_connected())
        .await
        .expect("the client sees the cut");
    ctx.expire(&before).await;
    proxy.heal();
    let after = states
        .wait_for(WAIT, |s| s.is_connected() && s.epoch > before.epoch)
        .await
        .expect("a new session after the expiry");
    assert_ne!(after.session_id, before.session_id);
    after.epoch
}

/// Cuts `proxy` and waits until `client` sees it.
pub async fn cut_and_wait(proxy: &Proxy, client: &Client) {
    proxy.cut();
    client
        .state_watcher()
        .wait_for(WAIT, |s| !s.is_connected())
        .await
        .expect("the client sees the cut");
}

/// Heals `proxy` and waits until `client` is connected again.
pub async fn heal_and_wait(proxy: &Proxy, client: &Client) {
    proxy.heal();
    client
        .state_watcher()
        .wait_for(WAIT, |s| s.is_connected())
        .await
        .expect("the client reconnects");
}

/// The subtree at `root` (down to `max_depth`) as the server has it now.
pub async fn server_tree(
    client: &Client,
    root: &str,
    max_depth: usize,
) -> BTreeMap<String, NodeView> {
    let mut out = BTreeMap::new();
    let mut level = vec![(root.to_owned(), 0usize)];
    while let Some((path, depth)) = level.pop() {
        let (data, stat) = match client.get_data(&path).await {
            Ok(r) => r,
            Err(Error::NoNode) => continue,
            Err(e) => panic!("read {path}: {e:?}"),
        };
        out.insert(path.clone(), (data, stat.czxid, stat.mzxid, stat.version));
        if depth < max_depth {
            match client.get_children(&path).await {
                Ok(children) => {
                    for c in children {
                        let child = if path == "/" {
                            format!("/{c}")
                        } else {
                            format!("{path}/{c}")
                        };
                        level.push((child, depth + 1));
                    }
                }
                Err(Error::NoNode) => {}
                Err(e) => panic!("list {path}: {e:?}"),
            }
        }
    }
    out
}

/// A cache's content in the shape of [`server_tree`].
pub fn view_of(nodes: &BTreeMap<String, ChildData>) -> BTreeMap<String, NodeView> {
    nodes
        .iter()
        .map(|(p, d)| {
            (
                p.clone(),
                (d.data.clone(), d.stat.czxid, d.stat.mzxid, d.stat.version),
            )
        })
        .collect()
}

/// Waits until `cache` holds exactly what the server has under its root (no writer may
/// be running), re-checking after each event of `events`.
pub async fn wait_converged(
    what: &str,
    cache: &TreeCache,
    events: &mut CacheEvents,
    reader: &Client,
    max_depth: usize,
) -> BTreeMap<String, NodeView> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let server = server_tree(reader, cache.path(), max_depth).await;
        let cached = view_of(&cache.snapshot());
        if cached == server && cache.is_initialized() {
            return server;
        }
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(_)) => {}
            Ok(None) => panic!("{what}: the cache stopped"),
            Err(_) => panic!(
                "{what}: not converged after {WAIT:?}\n cache:  {:?}\n server: {:?}",
                cached.keys().collect::<Vec<_>>(),
                server.keys().collect::<Vec<_>>()
            ),
        }
    }
}

/// Applies a cache's events and checks that they make sense one by one: `Created` only
/// for an absent node whose parent is present, `Changed` / `Deleted` only for a present
/// node, `Deleted` only for a node without children, `Initialized` once (per reset).
#[derive(Debug)]
pub struct Replay {
    root: String,
    pub view: BTreeMap<String, ChildData>,
    pub initialized: bool,
    pub resets: usize,
    pub log: Vec<CacheEvent>,
}

impl Replay {
    pub fn new(root: &str) -> Self {
        Replay {
            root: root.to_owned(),
            view: BTreeMap::new(),
            initialized: false,
            resets: 0,
            log: Vec::new(),
        }
    }

    fn parent(path: &str) -> &str {
        match path.rfind('/') {
            Some(0) => "/",
            Some(i) => &path[..i],
            None => "/",
        }
    }

    pub fn apply(&mut self, event: &CacheEvent) {
        self.log.push(event.clone());
        match event {
            CacheEvent::Created(d) => {
                assert!(
                    !self.view.contains_key(&d.path),
                    "Created for a node already there: {event:?}"
                );
                if d.path != self.root {
                    assert!(
                        self.view.contains_key(Self::parent(&d.path)),
                        "Created before its parent: {event:?}"
                    );
                }
                self.view.insert(d.path.clone(), d.clone());
            }
            CacheEvent::Changed(d) => {
                let old = self.view.get(&d.path);
                assert!(old.is_some(), "Changed for a node not there: {event:?}");
                assert_eq!(
                    old.unwrap().stat.czxid,
                    d.stat.czxid,
                    "Changed across a re-creation: {event:?}"
                );
                self.view.insert(d.path.clone(), d.clone());
            }
            CacheEvent::Deleted(d) => {
                assert!(
                    self.view.remove(&d.path).is_some(),
                    "Deleted for a node not there: {event:?}"
                );
                let prefix = format!("{}/", d.path);
                assert!(
                    !self.view.keys().any(|k| k.starts_with(&prefix)),
                    "Deleted before its children: {event:?}"
                );
            }
            CacheEvent::Initialized => {
                assert!(!self.initialized, "Initialized twice");
                self.initialized = true;
            }
            CacheEvent::Reset => {
                self.view.clear();
                self.initialized = false;
                self.resets += 1;
            }
            other => panic!("unexpected event {other:?}"),
        }
    }

    /// Reads every event already available (without waiting).
    pub fn drain(&mut self, events: &mut CacheEvents) {
        use futures_core::Stream;
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        while let std::task::Poll::Ready(Some(e)) =
            std::pin::Pin::new(&mut *events).poll_next(&mut cx)
        {
            self.apply(&e);
        }
    }
}

/// A small seeded PRNG (xorshift64*), so a failing mix can be replayed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded from `CORRAL_TEST_SEED` or the clock; prints the seed.
    pub fn from_env(test: &str) -> Rng {
        let seed = std::env::var("CORRAL_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        println!("{test}: seed {seed} (replay with CORRAL_TEST_SEED={seed})");
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// An in-process three-server ensemble with a root node for the test, or `None` (after
/// printing why) when the backend is not Corral.
pub struct ClusterCtx {
    pub cluster: TestingCluster,
    pub root: String,
}

impl ClusterCtx {
    pub async fn start(test: &str) -> Option<ClusterCtx> {
        common::init_tracing();
        if common::backend_name() != "corral" {
            eprintln!(
                "SKIPPED: {test} needs an in-process ensemble (backend {})",
                common::backend_name()
            );
            return None;
        }
        let cluster = TestingCluster::start(3).await.expect("start the ensemble");
        cluster
            .wait_for_leader(WAIT)
            .await
            .expect("the ensemble elects a leader");
        let root = format!("/{}", common::unique("recipes-cluster"));
        let admin = within(
            "connect to the ensemble",
            Client::connect(&cluster.connect_string()),
        )
        .await
        .expect("connect");
        admin
            .create(&root, b"", &CreateOptions::persistent())
            .await
            .expect("create the test root");
        admin.close().await.expect("close");
        Some(ClusterCtx { cluster, root })
    }

    pub fn builder(&self) -> ClientBuilder {
        Client::builder(format!("{}{}", self.cluster.connect_string(), self.root))
            .with_session_timeout(Duration::from_secs(10))
            .with_connection_timeout(Duration::from_secs(10))
    }

    pub async fn client(&self) -> Client {
        within("connect to the ensemble", self.builder().connect())
            .await
            .expect("connect")
    }

    /// The member `client` is connected to (from the members' `cons` output).
    pub async fn server_of(&self, client: &Client) -> u64 {
        let sid = format!("sid=0x{:x}", client.session_id().0);
        for id in self.cluster.ids() {
            if !self.cluster.is_running(id) {
                continue;
            }
            if let Ok(cons) =
                corral_server::testing::four_letter(self.cluster.addr(id), "cons").await
            {
                if cons.contains(&sid) {
                    return id;
                }
            }
        }
        panic!("no member serves session {sid}");
    }
}

/// A proxy that makes the server look older than ZooKeeper 3.6: every addWatch is
/// answered `Unimplemented` (it is sent on as a harmless exists, so replies stay in
/// order, and that reply is rewritten).
pub struct LegacyProxy {
    addr: String,
    task: tokio::task::JoinHandle<()>,
    pub refused: Arc<Mutex<u64>>,
}

impl LegacyProxy {
    pub async fn start(upstream: String) -> LegacyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let refused = Arc::new(Mutex::new(0));
        let counter = refused.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                let rewritten: Arc<Mutex<HashSet<i32>>> = Arc::default();
                let counter = counter.clone();
                let up_set = rewritten.clone();
                tokio::spawn(async move {
                    let up = pump(cr, sw, move |frame| {
                        let op = i32::from_be_bytes(frame[8..12].try_into().unwrap());
                        if op != 106 {
                            return frame;
                        }
                        *counter.lock().unwrap() += 1;
                        let xid = i32::from_be_bytes(frame[4..8].try_into().unwrap());
                        up_set.lock().unwrap().insert(xid);
                        let n = i32::from_be_bytes(frame[12..16].try_into().unwrap()) as usize;
                        let mut body = frame[4..8].to_vec();
                        body.extend_from_slice(&3i32.to_be_bytes());
                        body.extend_from_slice(&frame[12..16 + n]);
                        body.push(0);
                        let mut out = (body.len() as i32).to_be_bytes().to_vec();
                        out.extend_from_slice(&body);
                        out
                    });
                    let down = pump(sr, cw, move |frame| {
                        let xid = i32::from_be_bytes(frame[4..8].try_into().unwrap());
                        if !rewritten.lock().unwrap().remove(&xid) {
                            return frame;
                        }
                        let mut body = frame[4..16].to_vec();
                        body.extend_from_slice(&(-6i32).to_be_bytes());
                        let mut out = (body.len() as i32).to_be_bytes().to_vec();
                        out.extend_from_slice(&body);
                        out
                    });
                    tokio::select! {
                        _ = up => {}
                        _ = down => {}
                    }
                });
            }
        });
        LegacyProxy {
            addr,
            task,
            refused,
        }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }
}

impl Drop for LegacyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies frames, passing every frame after the first (the handshake) through `map`.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut map: impl FnMut(Vec<u8>) -> Vec<u8>,
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
            let frame = if first || frame.len() < 16 {
                frame
            } else {
                map(frame)
            };
            first = false;
            if to.write_all(&frame).await.is_err() {
                return;
            }
        }
    }
}
