//! The client listener and per-connection tasks.
//!
//! Each connection has a reader task (frames in, decoded requests to the node loop) and a
//! writer task (replies and notifications out, coalesced into as few writes as possible).
//! A connection's reader stops reading while too many of its requests are unanswered, which
//! bounds the node's outgoing queue for it.

use crate::admin::WORDS;
use crate::node::{NodeMsg, Out};
use crate::watch::ConnId;
use bytes::{Buf, BytesMut};
use corral_proto::frame::{begin_frame, end_frame, frame_len};
use corral_proto::{
    ConnectRequest, DecodeError, ErrorCode, Jute, OpCode, ReplyHeader, Request, RequestError,
    RequestHeader, XID_NOTIFICATION,
};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

/// Settings of the client listener.
#[derive(Clone)]
pub struct NetConfig {
    /// Largest frame accepted (jute.maxbuffer).
    pub max_buffer: usize,
    /// Connections allowed per client IP (0 = unlimited).
    pub max_client_cnxns: u32,
    /// Four-letter words allowed.
    pub allows: Arc<dyn Fn(&str) -> bool + Send + Sync>,
    /// Requests one connection may have unanswered before its reader pauses.
    pub outstanding_per_conn: usize,
    /// How long a new connection may take to send its ConnectRequest.
    pub sessionless_timeout: Duration,
}

impl std::fmt::Debug for NetConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetConfig")
            .field("max_buffer", &self.max_buffer)
            .field("max_client_cnxns", &self.max_client_cnxns)
            .field("outstanding_per_conn", &self.outstanding_per_conn)
            .finish_non_exhaustive()
    }
}

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// Accepts client connections until `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    node: mpsc::Sender<NodeMsg>,
    cfg: NetConfig,
    shutdown: CancellationToken,
) {
    let per_ip: Arc<Mutex<HashMap<IpAddr, u32>>> = Arc::default();
    let cfg = Arc::new(cfg);
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let guard = {
            let mut m = per_ip.lock().expect("per-ip table");
            let n = m.entry(peer.ip()).or_insert(0);
            if cfg.max_client_cnxns != 0 && *n >= cfg.max_client_cnxns {
                warn!(%peer, limit = cfg.max_client_cnxns, "too many connections from this address; closing");
                drop(stream);
                continue;
            }
            *n += 1;
            IpGuard {
                table: per_ip.clone(),
                ip: peer.ip(),
            }
        };
        let _ = stream.set_nodelay(true);
        let conn = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
        let node = node.clone();
        let cfg = cfg.clone();
        let shutdown = shutdown.clone();
        let span = tracing::debug_span!("conn", %peer, conn);
        tokio::spawn(
            async move {
                let _guard = guard;
                connection(stream, peer, conn, node, cfg, shutdown).await;
            }
            .instrument(span),
        );
    }
}

struct IpGuard {
    table: Arc<Mutex<HashMap<IpAddr, u32>>>,
    ip: IpAddr,
}

impl Drop for IpGuard {
    fn drop(&mut self) {
        if let Ok(mut m) = self.table.lock() {
            if let Some(n) = m.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&self.ip);
                }
            }
        }
    }
}

/// Why a connection ended.
#[derive(Debug)]
enum End {
    Eof,
    Io(std::io::Error),
    Malformed(String),
    Shutdown,
    Closed,
}

async fn read_more(rd: &mut OwnedReadHalf, buf: &mut BytesMut) -> Result<(), End> {
    match rd.read_buf(buf).await {
        Ok(0) => Err(End::Eof),
        Ok(_) => Ok(()),
        Err(e) => Err(End::Io(e)),
    }
}

/// Reads one frame's payload (cancel-safe: partial data stays in `buf`).
async fn read_frame(
    rd: &mut OwnedReadHalf,
    buf: &mut BytesMut,
    max: usize,
) -> Result<BytesMut, End> {
    loop {
        match frame_len(buf, max) {
            Ok(len) => {
                buf.advance(4);
                return Ok(buf.split_to(len));
            }
            Err(DecodeError::Incomplete) => read_more(rd, buf).await?,
            Err(e) => return Err(End::Malformed(format!("bad frame: {e}"))),
        }
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    conn: ConnId,
    node: mpsc::Sender<NodeMsg>,
    cfg: Arc<NetConfig>,
    shutdown: CancellationToken,
) {
    let (mut rd, wr) = stream.into_split();
    let mut buf = BytesMut::with_capacity(8 * 1024);
    // The first four bytes are either a four-letter word or the start of a ConnectRequest.
    let first = tokio::time::timeout(cfg.sessionless_timeout, async {
        while buf.len() < 4 {
            read_more(&mut rd, &mut buf).await?;
        }
        Ok::<(), End>(())
    })
    .await;
    match first {
        Ok(Ok(())) => {}
        Ok(Err(_)) => return,
        Err(_) => {
            debug!("no ConnectRequest in time; closing");
            return;
        }
    }
    if let Ok(word) = std::str::from_utf8(&buf[..4]) {
        if WORDS.contains(&word) {
            let word = word.to_owned();
            four_letter(word, wr, &node, &cfg).await;
            return;
        }
    }
    let req = match tokio::time::timeout(
        cfg.sessionless_timeout,
        read_frame(&mut rd, &mut buf, cfg.max_buffer),
    )
    .await
    {
        Ok(Ok(payload)) => ConnectRequest::from_bytes(&payload),
        Ok(Err(End::Malformed(reason))) => {
            warn!(%reason, "closing connection");
            return;
        }
        _ => return,
    };
    let req = match req {
        Ok(r) => r,
        Err(e) => {
            warn!(error = %e, "malformed ConnectRequest; closing connection");
            return;
        }
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let permits = Arc::new(Semaphore::new(cfg.outstanding_per_conn));
    let (hs_tx, hs_rx) = oneshot::channel();
    let writer_done = CancellationToken::new();
    let writer =
        tokio::spawn(writer(wr, rx, permits.clone(), hs_tx, writer_done.clone()).in_current_span());
    if node
        .send(NodeMsg::Connect {
            conn,
            peer,
            req,
            tx,
        })
        .await
        .is_err()
    {
        return;
    }
    // Read nothing more until the session is established.
    let established = tokio::select! {
        biased;
        _ = shutdown.cancelled() => false,
        r = hs_rx => r.unwrap_or(false),
    };
    let end = if established {
        read_loop(
            &mut rd,
            &mut buf,
            conn,
            &node,
            &cfg,
            &permits,
            &shutdown,
            &writer_done,
        )
        .await
    } else {
        End::Closed
    };
    match &end {
        End::Malformed(reason) => warn!(%reason, "closing connection"),
        End::Io(e) => debug!(error = %e, "connection error"),
        _ => debug!(?end, "connection ended"),
    }
    let _ = node.send(NodeMsg::Closed { conn }).await;
    // The node drops its sender when it forgets the connection; give the writer a moment
    // to flush what was queued (e.g. a closeSession reply), then stop it.
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
}

#[allow(clippy::too_many_arguments)]
async fn read_loop(
    rd: &mut OwnedReadHalf,
    buf: &mut BytesMut,
    conn: ConnId,
    node: &mpsc::Sender<NodeMsg>,
    cfg: &NetConfig,
    permits: &Arc<Semaphore>,
    shutdown: &CancellationToken,
    writer_done: &CancellationToken,
) -> End {
    loop {
        let frame = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return End::Shutdown,
            _ = writer_done.cancelled() => return End::Closed,
            f = read_frame(rd, buf, cfg.max_buffer) => f,
        };
        let frame = match frame {
            Ok(f) => f,
            Err(e) => return e,
        };
        let mut r = corral_proto::Reader::new(&frame);
        let hdr = match RequestHeader::read(&mut r) {
            Ok(h) => h,
            Err(e) => return End::Malformed(format!("bad request header: {e}")),
        };
        let req = match Request::decode(hdr.op, r.rest()) {
            Ok(req) => Ok(req),
            Err(RequestError::UnknownOp(op)) if op == OpCode::CreateSession as i32 => {
                Err((op, ErrorCode::MarshallingError))
            }
            Err(RequestError::UnknownOp(op)) => Err((op, ErrorCode::Unimplemented)),
            Err(RequestError::BadMulti(op)) => {
                return End::Malformed(format!("operation {op} is not allowed in multi"))
            }
            Err(RequestError::Decode(e)) => {
                return End::Malformed(format!("bad body for op {}: {e}", hdr.op))
            }
        };
        // One permit per unanswered request; the writer returns it with the reply.
        let permit = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return End::Shutdown,
            _ = writer_done.cancelled() => return End::Closed,
            p = permits.acquire() => p,
        };
        match permit {
            Ok(p) => p.forget(),
            Err(_) => return End::Closed,
        }
        let msg = NodeMsg::Request {
            conn,
            xid: hdr.xid,
            req,
            at: Instant::now(),
        };
        if node.send(msg).await.is_err() {
            return End::Shutdown;
        }
    }
}

async fn writer(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Out>,
    permits: Arc<Semaphore>,
    hs: oneshot::Sender<bool>,
    done: CancellationToken,
) {
    let mut hs = Some(hs);
    let mut out = Vec::with_capacity(16 * 1024);
    'outer: while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        let mut close = false;
        let mut n = 0;
        while let Some(msg) = next.take() {
            n += 1;
            match msg {
                Out::Connected(resp) => {
                    let at = begin_frame(&mut out);
                    resp.write(&mut out);
                    end_frame(&mut out, at);
                    if let Some(h) = hs.take() {
                        let _ = h.send(true);
                    }
                }
                Out::Rejected(resp) => {
                    let at = begin_frame(&mut out);
                    resp.write(&mut out);
                    end_frame(&mut out, at);
                    close = true;
                }
                Out::Reply {
                    xid,
                    zxid,
                    err,
                    body,
                } => {
                    let at = begin_frame(&mut out);
                    ReplyHeader { xid, zxid, err }.write(&mut out);
                    if err == 0 {
                        body.write(&mut out);
                    }
                    end_frame(&mut out, at);
                    permits.add_permits(1);
                }
                Out::Event(ev) => {
                    let at = begin_frame(&mut out);
                    ReplyHeader {
                        xid: XID_NOTIFICATION,
                        zxid: -1,
                        err: 0,
                    }
                    .write(&mut out);
                    ev.write(&mut out);
                    end_frame(&mut out, at);
                }
                Out::Close(reason) => {
                    debug!(reason, "closing connection");
                    close = true;
                }
            }
            if close || n >= 1024 || out.len() >= 64 * 1024 {
                break;
            }
            next = rx.try_recv().ok();
        }
        if !out.is_empty() {
            if let Err(e) = wr.write_all(&out).await {
                debug!(error = %e, "write failed");
                break 'outer;
            }
            out.clear();
        }
        if close {
            break;
        }
    }
    let _ = wr.shutdown().await;
    if let Some(h) = hs.take() {
        let _ = h.send(false);
    }
    done.cancel();
}

async fn four_letter(
    word: String,
    mut wr: OwnedWriteHalf,
    node: &mpsc::Sender<NodeMsg>,
    cfg: &NetConfig,
) {
    let text = if word == "srvr" || (cfg.allows)(&word) {
        let (tx, rx) = oneshot::channel();
        if node
            .send(NodeMsg::FourLetter {
                cmd: word.clone(),
                reply: tx,
            })
            .await
            .is_err()
        {
            "This ZooKeeper instance is not currently serving requests\n".to_owned()
        } else {
            rx.await.unwrap_or_default()
        }
    } else {
        format!("{word} is not executed because it is not in the whitelist.\n")
    };
    info!(word, "four-letter word");
    let _ = wr.write_all(text.as_bytes()).await;
    let _ = wr.shutdown().await;
}
