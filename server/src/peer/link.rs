//! Links between servers: one TCP connection per pair, initiated by the server with the
//! larger id (a connection from a smaller id is closed, as ZooKeeper does for its election
//! connections), carrying election and broadcast messages in order.
//!
//! Each live link is announced to the node loop with a sender for its outgoing messages;
//! when the link breaks the node is told, and whatever was queued for it is dropped (a new
//! link is a new FIFO channel; the protocol recovers lost messages by itself).

use super::codec::{decode, encode, HELLO_MAGIC, MAX_PEER_FRAME};
use crate::node::NodeMsg;
use bytes::{Buf, BytesMut};
use corral_proto::frame::{begin_frame, end_frame, frame_len};
use corral_proto::{DecodeError, Jute};
use corral_zab::{Message, ServerId};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, Instrument};

/// Outgoing messages of one live link.
pub type LinkTx = mpsc::UnboundedSender<Message>;

/// Fault injection for tests: isolated servers have no links to anyone.
#[derive(Debug)]
pub struct FaultHook {
    isolated: Mutex<BTreeSet<ServerId>>,
    muted: Mutex<BTreeSet<ServerId>>,
    changed: watch::Sender<u64>,
}

impl Default for FaultHook {
    fn default() -> Self {
        FaultHook {
            isolated: Mutex::new(BTreeSet::new()),
            muted: Mutex::new(BTreeSet::new()),
            changed: watch::channel(0).0,
        }
    }
}

impl FaultHook {
    /// Cuts every link of `id` and refuses new ones until healed.
    pub fn isolate(&self, id: ServerId) {
        self.isolated.lock().expect("fault hook").insert(id);
        self.changed.send_modify(|v| *v += 1);
    }

    /// Lets `id` talk to others again.
    pub fn heal(&self, id: ServerId) {
        self.isolated.lock().expect("fault hook").remove(&id);
        self.changed.send_modify(|v| *v += 1);
    }

    /// Drops every message to and from `id` while its connections stay open, as a network
    /// that silently loses packets would: only timeouts notice.
    pub fn mute(&self, id: ServerId) {
        self.muted.lock().expect("fault hook").insert(id);
    }

    /// Stops dropping `id`'s messages.
    pub fn unmute(&self, id: ServerId) {
        self.muted.lock().expect("fault hook").remove(&id);
    }

    /// Whether messages between `a` and `b` are dropped.
    pub fn drops(&self, a: ServerId, b: ServerId) -> bool {
        let muted = self.muted.lock().expect("fault hook");
        muted.contains(&a) || muted.contains(&b)
    }

    /// Whether a link between `a` and `b` is allowed.
    pub fn allows(&self, a: ServerId, b: ServerId) -> bool {
        let iso = self.isolated.lock().expect("fault hook");
        !iso.contains(&a) && !iso.contains(&b)
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

/// Where this server's links go.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// This server.
    pub my_id: ServerId,
    /// Every other server and its election address.
    pub peers: BTreeMap<ServerId, SocketAddr>,
    /// Fault injection (tests); `None` in production.
    pub faults: Option<Arc<FaultHook>>,
}

static NEXT_LINK: AtomicU64 = AtomicU64::new(1);

/// Runs the links: accepts connections from larger ids on `listener` and connects to
/// smaller ids, until `shutdown`.
pub async fn run(
    listener: TcpListener,
    cfg: LinkConfig,
    node: mpsc::Sender<NodeMsg>,
    shutdown: CancellationToken,
) {
    let cfg = Arc::new(cfg);
    for (&peer, &addr) in &cfg.peers {
        if peer < cfg.my_id {
            let (cfg, node, shutdown) = (cfg.clone(), node.clone(), shutdown.clone());
            tokio::spawn(
                connector(peer, addr, cfg, node, shutdown)
                    .instrument(tracing::debug_span!("peer", sid = peer)),
            );
        }
    }
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            r = listener.accept() => r,
        };
        let Ok((stream, addr)) = accepted else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let (cfg, node, shutdown) = (cfg.clone(), node.clone(), shutdown.clone());
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let mut stream = stream;
            let Some(peer) = read_hello(&mut stream).await else {
                debug!(%addr, "peer connection without a valid hello; closing");
                return;
            };
            if !cfg.peers.contains_key(&peer) || peer < cfg.my_id {
                debug!(peer, "closing a connection the larger id should have made");
                return;
            }
            if !allowed(&cfg, peer) {
                return;
            }
            run_link(peer, stream, &cfg, &node, &shutdown)
                .instrument(tracing::debug_span!("peer", sid = peer))
                .await;
        });
    }
}

fn allowed(cfg: &LinkConfig, peer: ServerId) -> bool {
    cfg.faults
        .as_ref()
        .is_none_or(|f| f.allows(cfg.my_id, peer))
}

async fn connector(
    peer: ServerId,
    addr: SocketAddr,
    cfg: Arc<LinkConfig>,
    node: mpsc::Sender<NodeMsg>,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(20);
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        if allowed(&cfg, peer) {
            let attempt = tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(addr));
            if let Ok(Ok(mut stream)) = attempt.await {
                let _ = stream.set_nodelay(true);
                let mut hello = Vec::new();
                HELLO_MAGIC.write(&mut hello);
                (cfg.my_id as i64).write(&mut hello);
                if stream.write_all(&hello).await.is_ok() {
                    backoff = Duration::from_millis(20);
                    run_link(peer, stream, &cfg, &node, &shutdown).await;
                }
            }
        }
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_millis(500));
    }
}

async fn read_hello(stream: &mut TcpStream) -> Option<ServerId> {
    let mut buf = [0u8; 16];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut buf))
        .await
        .ok()?
        .ok()?;
    let magic = i64::from_be_bytes(buf[..8].try_into().ok()?);
    let id = i64::from_be_bytes(buf[8..].try_into().ok()?);
    (magic == HELLO_MAGIC && id > 0).then_some(id as ServerId)
}

async fn run_link(
    peer: ServerId,
    stream: TcpStream,
    cfg: &LinkConfig,
    node: &mpsc::Sender<NodeMsg>,
    shutdown: &CancellationToken,
) {
    let link = NEXT_LINK.fetch_add(1, Ordering::Relaxed);
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    if node.send(NodeMsg::PeerUp { peer, link, tx }).await.is_err() {
        return;
    }
    info!(peer, link, "peer link up");
    let writer = tokio::spawn(async move {
        let mut out = Vec::with_capacity(64 * 1024);
        while let Some(first) = rx.recv().await {
            let mut next = Some(first);
            while let Some(msg) = next.take() {
                let at = begin_frame(&mut out);
                encode(&msg, &mut out);
                end_frame(&mut out, at);
                if out.len() >= 256 * 1024 {
                    break;
                }
                next = rx.try_recv().ok();
            }
            if wr.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        let _ = wr.shutdown().await;
    });
    let mut faults = cfg.faults.as_ref().map(|f| f.subscribe());
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let reason = loop {
        let fault_changed = async {
            match faults.as_mut() {
                Some(w) => {
                    if w.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending::<()>().await,
            }
        };
        let frame = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break "shutdown",
            _ = fault_changed => {
                if !allowed(cfg, peer) { break "isolated by the fault hook" }
                continue;
            }
            f = read_frame(&mut rd, &mut buf) => f,
        };
        match frame {
            Ok(payload) => match decode(&payload) {
                Ok(_)
                    if cfg
                        .faults
                        .as_ref()
                        .is_some_and(|f| f.drops(cfg.my_id, peer)) => {}
                Ok(msg) => {
                    if node
                        .send(NodeMsg::PeerMessage { from: peer, msg })
                        .await
                        .is_err()
                    {
                        break "node stopped";
                    }
                }
                Err(e) => {
                    tracing::warn!(peer, error = %e, "malformed peer message; dropping the link");
                    break "malformed message";
                }
            },
            Err(reason) => break reason,
        }
    };
    info!(peer, link, reason, "peer link down");
    writer.abort();
    let _ = node.send(NodeMsg::PeerDown { peer, link }).await;
}

async fn read_frame(
    rd: &mut tokio::net::tcp::OwnedReadHalf,
    buf: &mut BytesMut,
) -> Result<BytesMut, &'static str> {
    loop {
        match frame_len(buf, MAX_PEER_FRAME) {
            Ok(len) => {
                buf.advance(4);
                return Ok(buf.split_to(len));
            }
            Err(DecodeError::Incomplete) => match rd.read_buf(buf).await {
                Ok(0) => return Err("closed by peer"),
                Ok(_) => {}
                Err(_) => return Err("read error"),
            },
            Err(_) => return Err("bad frame length"),
        }
    }
}
