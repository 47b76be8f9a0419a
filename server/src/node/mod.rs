//! The node loop: the one task that owns the tree, the sessions, the watches and prep.
//!
//! Requests arrive from connection tasks; writes are prepped into transactions, handed to
//! the log, and applied once durable, in zxid order; replies and watch notifications go back
//! to the connection tasks in the order they happen for each session. A read waits behind
//! its own session's earlier writes, never behind other sessions'.

use crate::acl;
use crate::admin::{self, AdminView, ConnInfo};
use crate::config::ServerConfig;
use crate::idhash::IdMap;
use crate::prep::{Prep, PrepConfig, PrepCtx};
use crate::session::{session_password, SessionTracker};
use crate::storage::{Log, LogEvent, SnapshotData};
use crate::tree::{DataTree, Trigger};
use crate::watch::{ConnId, WatchKind, WatchManager};
use corral_proto::{
    perms, ClientInfo, ConnectRequest, ConnectResponse, Create2Response, CreateResponse,
    CreateSessionTxn, ErrorCode, EventType, GetAclResponse, GetChildren2Response,
    GetChildrenResponse, GetDataResponse, Id, MultiResult, OpCode, PathRequest, Request, Response,
    Stat, Txn, TxnHeader, WatcherEvent, WatcherType,
};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

mod quorum;
pub use quorum::Quorum;

/// What the node sends to a connection task.
#[derive(Debug)]
pub enum Out {
    /// The handshake succeeded.
    Connected(ConnectResponse),
    /// The handshake failed: send this, then close.
    Rejected(ConnectResponse),
    /// A reply; `body` is written only when `err` is 0.
    Reply {
        /// Request xid.
        xid: i32,
        /// Zxid for the reply header.
        zxid: i64,
        /// Error code.
        err: i32,
        /// Body.
        body: Response,
    },
    /// A watch notification.
    Event(WatcherEvent),
    /// Flush what was queued, then close the connection.
    Close(&'static str),
}

/// Sender side of a connection's outgoing queue (unbounded: the connection's reader stops
/// reading once too many of its requests are unanswered, which bounds it).
pub type ConnTx = mpsc::UnboundedSender<Out>;

/// What connection tasks send to the node.
#[derive(Debug)]
pub enum NodeMsg {
    /// A new connection sent its ConnectRequest.
    Connect {
        /// Connection id.
        conn: ConnId,
        /// Remote address.
        peer: SocketAddr,
        /// The request.
        req: ConnectRequest,
        /// Where to send replies.
        tx: ConnTx,
    },
    /// A decoded request.
    Request {
        /// Connection id.
        conn: ConnId,
        /// Request xid.
        xid: i32,
        /// The request, or the error to answer with (unknown opcode).
        req: Result<Request, (i32, ErrorCode)>,
        /// When it was read, for latency figures.
        at: Instant,
    },
    /// The connection is gone.
    Closed {
        /// Connection id.
        conn: ConnId,
    },
    /// A peer link came up; messages for `peer` go to `tx` from now on.
    PeerUp {
        /// The other server.
        peer: u64,
        /// Link id (a later link replaces an earlier one).
        link: u64,
        /// Outgoing messages of the link.
        tx: crate::peer::link::LinkTx,
    },
    /// A peer link broke.
    PeerDown {
        /// The other server.
        peer: u64,
        /// Link id.
        link: u64,
    },
    /// A message from another server.
    PeerMessage {
        /// The sender.
        from: u64,
        /// The message.
        msg: corral_zab::Message,
    },
    /// A snapshot encoded for a learner is ready to send.
    SnapshotReady {
        /// The learner.
        to: u64,
        /// The snapshot's zxid.
        zxid: i64,
        /// The encoded snapshot.
        bytes: Vec<u8>,
    },
    /// A four-letter word.
    FourLetter {
        /// The word.
        cmd: String,
        /// Where to send the text.
        reply: oneshot::Sender<String>,
    },
}

/// Why a transaction is in flight.
#[derive(Debug)]
enum Origin {
    Client {
        conn: ConnId,
        xid: i32,
        req_ops: ReqShape,
        at: Instant,
    },
    CreateSession {
        conn: ConnId,
        timeout_ms: i32,
        read_only: Option<bool>,
    },
    /// Nobody here waits for it (server-internal, or a write from another server's client).
    Internal,
    /// Came from elsewhere (the leader's proposal); a local client may be waiting for it.
    Remote,
}

/// What a write request needs to shape its reply after apply.
#[derive(Debug, Clone)]
enum ReqShape {
    Op(OpCode),
    Multi(Vec<OpCode>),
}

#[derive(Debug)]
struct InFlight {
    hdr: TxnHeader,
    /// Shared with the log writer, which encodes it on its own thread: handing a batch to
    /// the log copies no transaction.
    txn: Arc<Txn>,
    origin: Origin,
}

#[derive(Debug)]
enum Queued {
    Write(i64),
    /// A request sent to the leader, answered when its commit (or sync reply) comes back.
    Forwarded {
        cxid: i32,
        conn: ConnId,
        shape: ReqShape,
        at: Instant,
        sync_path: Option<String>,
    },
    Read {
        conn: ConnId,
        xid: i32,
        req: Result<Request, (i32, ErrorCode)>,
        at: Instant,
    },
}

#[derive(Debug)]
struct Conn {
    tx: ConnTx,
    session: Option<i64>,
    /// Shared so that each request takes its connection's identities without copying them;
    /// an auth packet copies them on write.
    ids: Arc<Vec<Id>>,
    stats: ConnInfo,
    /// Served by a server without a quorum in read-only mode: reads only.
    read_only: bool,
}

/// Counters for four-letter words.
#[derive(Debug, Default, Clone)]
pub struct ServerStats {
    /// Requests received.
    pub received: u64,
    /// Replies sent.
    pub sent: u64,
    /// Latency figures, ms.
    pub min_latency: u64,
    /// Maximum latency, ms.
    pub max_latency: u64,
    /// Total latency, ms.
    pub total_latency: u64,
    /// Number of latency samples.
    pub count: u64,
}

impl ServerStats {
    fn record(&mut self, ms: u64) {
        if self.count == 0 || ms < self.min_latency {
            self.min_latency = ms;
        }
        self.max_latency = self.max_latency.max(ms);
        self.total_latency += ms;
        self.count += 1;
    }
}

/// The node: everything the loop owns.
pub struct Node {
    cfg: ServerConfig,
    tree: DataTree,
    sessions: SessionTracker,
    watches: WatchManager,
    prep: Prep,
    conns: IdMap<ConnId, Conn>,
    session_conn: IdMap<i64, ConnId>,
    queues: IdMap<i64, VecDeque<Queued>>,
    in_flight: VecDeque<InFlight>,
    /// How many entries at the back of `in_flight` are not yet handed to the log.
    staged: usize,
    next_zxid: i64,
    log: Log,
    /// Kept so the log-event channel stays open while the node runs.
    _log_events: mpsc::UnboundedSender<LogEvent>,
    started: Instant,
    stats: ServerStats,
    last_sweep_ms: i64,
    /// Quorum mode: the ZAB core and what goes with it; `None` for a standalone server.
    quorum: Option<Quorum>,
    /// Set when the node must stop (storage failure, broken invariant).
    fatal: Option<String>,
    /// The node's own inbox, for work finished on other threads.
    self_tx: mpsc::Sender<NodeMsg>,
}

/// An idle session keeps its emptied request queue up to this capacity (entries of
/// `Queued`, 160 bytes each).
const SESSION_QUEUE_KEEP: usize = 64;

/// Length of one tick of the ZAB core in quorum mode.
pub const PEER_TICK_MS: u64 = 20;

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Node {
    /// A node over a recovered tree and session table, writing to `log`.
    pub fn new(
        cfg: ServerConfig,
        tree: DataTree,
        sessions: SessionTracker,
        log: Log,
        log_events: mpsc::UnboundedSender<LogEvent>,
        quorum: Option<Quorum>,
        self_tx: mpsc::Sender<NodeMsg>,
    ) -> Self {
        let next_zxid = tree.last_zxid() + 1;
        let prep = Prep::new(PrepConfig {
            extended_types: cfg.extended_types_enabled,
        });
        Node {
            cfg,
            tree,
            sessions,
            watches: WatchManager::new(),
            prep,
            conns: IdMap::default(),
            session_conn: IdMap::default(),
            queues: IdMap::default(),
            in_flight: VecDeque::new(),
            staged: 0,
            next_zxid,
            log,
            _log_events: log_events,
            started: Instant::now(),
            stats: ServerStats::default(),
            last_sweep_ms: 0,
            quorum,
            fatal: None,
            self_tx,
        }
    }

    fn now_ms(&self) -> i64 {
        self.started.elapsed().as_millis() as i64
    }

    /// Runs until `shutdown` fires or every sender is gone.
    pub async fn run(
        mut self,
        mut rx: mpsc::Receiver<NodeMsg>,
        mut log_rx: mpsc::UnboundedReceiver<LogEvent>,
        shutdown: CancellationToken,
    ) {
        let tick = if self.quorum.is_some() {
            Duration::from_millis(PEER_TICK_MS)
        } else {
            Duration::from_millis(u64::from(self.cfg.tick_time_ms.clamp(10, 100)))
        };
        let mut timer = tokio::time::interval(tick);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        if self.quorum.is_some() {
            self.quorum_start();
        }
        loop {
            if let Some(reason) = self.fatal.take() {
                tracing::error!(%reason, "stopping the server");
                shutdown.cancel();
                break;
            }
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                ev = log_rx.recv() => match ev {
                    Some(LogEvent::Durable(zxid)) => self.on_durable(zxid),
                    Some(LogEvent::Failed(e)) => {
                        tracing::error!(error = %e, "transaction log failed; stopping the server");
                        shutdown.cancel();
                        break;
                    }
                    None => break,
                },
                msg = rx.recv() => {
                    let Some(msg) = msg else { break };
                    self.handle(msg);
                    // Take what else is waiting, so one log write covers the batch.
                    for _ in 0..256 {
                        match rx.try_recv() {
                            Ok(m) => self.handle(m),
                            Err(_) => break,
                        }
                    }
                    self.flush_log();
                }
                _ = timer.tick() => {
                    if self.quorum.is_some() {
                        self.quorum_tick();
                    }
                    self.on_tick();
                    self.flush_log();
                }
            }
        }
        for conn in self.conns.values() {
            let _ = conn.tx.send(Out::Close("server shutting down"));
        }
        self.log.close().await;
    }

    fn handle(&mut self, msg: NodeMsg) {
        match msg {
            NodeMsg::Connect {
                conn,
                peer,
                req,
                tx,
            } => self.on_connect(conn, peer, req, tx),
            NodeMsg::Request { conn, xid, req, at } => self.on_request(conn, xid, req, at),
            NodeMsg::Closed { conn } => self.on_closed(conn),
            NodeMsg::PeerUp { peer, link, tx } => {
                if self.quorum.is_some() {
                    self.peer_up(peer, link, tx);
                }
            }
            NodeMsg::PeerDown { peer, link } => {
                if self.quorum.is_some() {
                    self.peer_down(peer, link);
                }
            }
            NodeMsg::SnapshotReady { to, zxid, bytes } => {
                if self.quorum.is_some() {
                    self.snapshot_ready(to, zxid, bytes);
                }
            }
            NodeMsg::PeerMessage { from, msg } => {
                if self.quorum.is_some() {
                    self.peer_message(from, msg);
                }
            }
            NodeMsg::FourLetter { cmd, reply } => {
                let serving = self.quorum.as_ref().is_none_or(|q| q.serving());
                let always = [
                    "ruok", "conf", "envi", "dirs", "crst", "srst", "gtmk", "stmk",
                ];
                let text = if serving || always.contains(&cmd.as_str()) {
                    admin::render(&cmd, &self.admin_view())
                } else if cmd == "isro" {
                    if self.cfg.read_only_mode {
                        "ro"
                    } else {
                        "null"
                    }
                    .into()
                } else {
                    "This ZooKeeper instance is not currently serving requests\n".into()
                };
                let _ = reply.send(text);
            }
        }
    }

    fn send(&mut self, conn: ConnId, out: Out) {
        if let Some(c) = self.conns.get_mut(&conn) {
            if matches!(out, Out::Reply { .. } | Out::Event(_)) {
                c.stats.sent += 1;
                self.stats.sent += 1;
            }
            let _ = c.tx.send(out);
        }
    }

    fn reply(&mut self, conn: ConnId, xid: i32, zxid: i64, res: Result<Response, ErrorCode>) {
        let (err, body) = match res {
            Ok(b) => (0, b),
            Err(e) => (e.code(), Response::Empty),
        };
        if let Some(c) = self.conns.get_mut(&conn) {
            c.stats.last_zxid = zxid;
            c.stats.last_cxid = xid;
        }
        self.send(
            conn,
            Out::Reply {
                xid,
                zxid,
                err,
                body,
            },
        );
    }

    // ----- sessions and connections -------------------------------------------------------

    fn on_connect(&mut self, conn: ConnId, peer: SocketAddr, req: ConnectRequest, tx: ConnTx) {
        let mut stats = ConnInfo {
            conn_id: conn,
            peer,
            established_ms: wall_ms(),
            ..ConnInfo::default()
        };
        stats.received = 1;
        self.conns.insert(
            conn,
            Conn {
                tx,
                session: None,
                ids: Arc::new(vec![Id::new("ip", peer.ip().to_string())]),
                stats,
                read_only: false,
            },
        );
        if self.quorum.as_ref().is_some_and(|q| !q.serving()) {
            if self.cfg.read_only_mode && req.read_only == Some(true) {
                self.connect_read_only(conn, &req);
                return;
            }
            debug!(conn, "not serving: closing a new client connection");
            self.send(conn, Out::Close("server is not serving"));
            self.drop_conn(conn);
            return;
        }
        if req.last_zxid_seen > self.tree.last_zxid() {
            warn!(
                conn,
                client_zxid = format_args!("0x{:x}", req.last_zxid_seen),
                our_zxid = format_args!("0x{:x}", self.tree.last_zxid()),
                "client has seen a newer zxid than this server; closing"
            );
            self.send(conn, Out::Close("client is ahead of this server"));
            return;
        }
        let min = self.cfg.min_session_timeout() as i32;
        let max = self.cfg.max_session_timeout() as i32;
        let timeout = req.timeout_ms.clamp(min, max);
        let ro = req.read_only.map(|_| false);
        if req.session_id == 0 {
            let id = self.sessions.next_session_id();
            if self.quorum.as_ref().is_some_and(|q| !q.leading()) {
                self.forward_create_session(conn, id, timeout, ro);
                return;
            }
            let hdr = self.header(id, 0, OpCode::CreateSession);
            self.stage(InFlight {
                hdr,
                txn: Arc::new(Txn::CreateSession(CreateSessionTxn {
                    timeout_ms: timeout,
                })),
                origin: Origin::CreateSession {
                    conn,
                    timeout_ms: timeout,
                    read_only: ro,
                },
            });
            return;
        }
        let id = req.session_id;
        // Any other connection of this session is closed, whatever the password.
        if let Some(old) = self.session_conn.remove(&id) {
            if old != conn {
                self.send(old, Out::Close("session moved to another connection"));
                self.drop_conn(old);
            }
        }
        let alive = self.sessions.get(id).is_some_and(|s| !s.closing);
        if alive && req.passwd == session_password(id) {
            let now = self.now_ms();
            self.sessions.set_timeout(id, timeout, now);
            self.bind(conn, id, timeout);
            info!(session = %format_args!("0x{id:x}"), conn, "session resumed");
            self.send(
                conn,
                Out::Connected(ConnectResponse {
                    protocol_version: 0,
                    timeout_ms: timeout,
                    session_id: id,
                    passwd: req.passwd.clone(),
                    read_only: ro,
                }),
            );
        } else {
            info!(session = %format_args!("0x{id:x}"), conn, "refusing expired or unknown session");
            self.send(
                conn,
                Out::Rejected(ConnectResponse {
                    protocol_version: 0,
                    timeout_ms: 0,
                    session_id: 0,
                    passwd: vec![0; 16],
                    read_only: ro,
                }),
            );
        }
    }

    /// Read-only mode: a client that accepts a read-only server gets a session known only
    /// here (a resumed session keeps its id), reads only, until the quorum is back.
    fn connect_read_only(&mut self, conn: ConnId, req: &ConnectRequest) {
        let min = self.cfg.min_session_timeout() as i32;
        let max = self.cfg.max_session_timeout() as i32;
        let timeout = req.timeout_ms.clamp(min, max);
        let id = if req.session_id != 0 && req.passwd == session_password(req.session_id) {
            req.session_id
        } else {
            self.sessions.next_session_id()
        };
        if let Some(c) = self.conns.get_mut(&conn) {
            c.read_only = true;
            c.session = Some(id);
            c.stats.session = id;
            c.stats.timeout_ms = timeout;
        }
        info!(session = %format_args!("0x{id:x}"), conn, "read-only session");
        self.send(
            conn,
            Out::Connected(ConnectResponse {
                protocol_version: 0,
                timeout_ms: timeout,
                session_id: id,
                passwd: session_password(id).to_vec(),
                read_only: Some(true),
            }),
        );
    }

    fn bind(&mut self, conn: ConnId, session: i64, timeout_ms: i32) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.session = Some(session);
            c.stats.session = session;
            c.stats.timeout_ms = timeout_ms;
        }
        self.session_conn.insert(session, conn);
    }

    fn on_closed(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get(&conn) {
            if let Some(s) = c.session {
                if self.session_conn.get(&s) == Some(&conn) {
                    self.session_conn.remove(&s);
                }
            }
        }
        self.drop_conn(conn);
    }

    fn drop_conn(&mut self, conn: ConnId) {
        self.watches.remove_conn(conn);
        self.conns.remove(&conn);
    }

    fn on_tick(&mut self) {
        if self.quorum.as_ref().is_some_and(|q| !q.leading()) {
            // Only the leader expires sessions and sweeps containers.
            return;
        }
        let now = self.now_ms();
        for id in self.sessions.expired(now) {
            info!(session = %format_args!("0x{id:x}"), "expiring session: timeout exceeded");
            self.close_session(id, None);
        }
        let wall = wall_ms();
        let interval = self.cfg.container_check_interval_ms as i64;
        if wall - self.last_sweep_ms >= interval {
            self.last_sweep_ms = wall;
            for path in self.tree.expired_containers_and_ttls(wall) {
                let req = Request::DeleteContainer(PathRequest { path });
                self.prep_write(0, req, Origin::Internal, &[]);
            }
        }
    }

    fn close_session(&mut self, id: i64, origin: Option<Origin>) {
        self.close_session_as(id, 0, origin);
    }

    fn close_session_as(&mut self, id: i64, cxid: i32, origin: Option<Origin>) {
        self.sessions.set_closing(id);
        let hdr = self.header(id, cxid, OpCode::CloseSession);
        let ctx = PrepCtx {
            tree: &self.tree,
            session: id,
            ids: &[],
            zxid: hdr.zxid,
            time: hdr.time,
        };
        let txn = Arc::new(self.prep.close_session(&ctx));
        self.stage(InFlight {
            hdr,
            txn,
            origin: origin.unwrap_or(Origin::Internal),
        });
    }

    // ----- requests --------------------------------------------------------------------------

    fn on_request(
        &mut self,
        conn: ConnId,
        xid: i32,
        req: Result<Request, (i32, ErrorCode)>,
        at: Instant,
    ) {
        self.stats.received += 1;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.stats.received += 1;
        let Some(session) = c.session else {
            return;
        };
        if let Ok(r) = &req {
            c.stats.last_op = r.op().short_name();
        }
        let now = self.now_ms();
        self.sessions.touch(session, now);
        let read_only = self.conns.get(&conn).is_some_and(|c| c.read_only);
        if read_only {
            // Read-only mode: reads are served from this server's tree, writes refused.
            let write = matches!(&req, Ok(r) if r.op().is_write() || matches!(r, Request::Sync(_)));
            if write && !matches!(req, Ok(Request::CloseSession)) {
                self.reply(conn, xid, -1, Err(ErrorCode::NotReadOnly));
            } else if matches!(req, Ok(Request::CloseSession)) {
                self.reply(conn, xid, self.tree.last_zxid(), Ok(Response::Empty));
                self.send(conn, Out::Close("session closed"));
            } else if !matches!(req, Ok(Request::Auth(_))) {
                self.execute_read(conn, xid, req, at);
            } else if let Ok(Request::Auth(a)) = &req {
                let ok = acl::authenticate(
                    &a.scheme,
                    a.auth.as_deref().unwrap_or(&[]),
                    self.cfg.super_digest.as_deref(),
                );
                let res = ok.map(|ids| {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        Arc::make_mut(&mut c.ids).extend(ids);
                    }
                    Response::Empty
                });
                self.reply(conn, xid, 0, res);
            }
            return;
        }
        if let Some(q) = self.quorum.as_mut() {
            if !q.serving() {
                self.send(conn, Out::Close("server is not serving"));
                self.drop_conn(conn);
                return;
            }
            if !q.leading() {
                q.touched.insert(session);
            }
        }

        // Auth packets are handled at once, outside the session's order.
        if let Ok(Request::Auth(a)) = &req {
            let res = acl::authenticate(
                &a.scheme,
                a.auth.as_deref().unwrap_or(&[]),
                self.cfg.super_digest.as_deref(),
            );
            match res {
                Ok(ids) => {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        for id in ids {
                            if !c.ids.contains(&id) {
                                Arc::make_mut(&mut c.ids).push(id);
                            }
                        }
                    }
                    self.reply(conn, xid, 0, Ok(Response::Empty));
                }
                Err(e) => {
                    warn!(conn, scheme = %a.scheme, "authentication failed");
                    self.reply(conn, xid, 0, Err(e));
                    self.send(conn, Out::Close("authentication failed"));
                }
            }
            return;
        }

        // A client's createSession request is a failed write (ZooKeeper logs an error
        // transaction for it); its deleteContainer runs through prep like the sweep's own.
        if let Err((op, code)) = &req {
            if *op == OpCode::CreateSession as i32 {
                let code = *code;
                let mut hdr = self.header(session, xid, OpCode::Error);
                hdr.txn_type = OpCode::Error as i32;
                self.queues
                    .entry(session)
                    .or_default()
                    .push_back(Queued::Write(hdr.zxid));
                self.stage(InFlight {
                    hdr,
                    txn: Arc::new(Txn::Error(code.code())),
                    origin: Origin::Client {
                        conn,
                        xid,
                        req_ops: ReqShape::Op(OpCode::Error),
                        at,
                    },
                });
                return;
            }
        }
        let is_write =
            matches!(&req, Ok(r) if r.op().is_write() || r.op() == OpCode::DeleteContainer);
        if is_write {
            let req = req.expect("checked Ok");
            let shape = match &req {
                Request::Multi(ops) => {
                    ReqShape::Multi(ops.iter().map(crate::prep::multi_op_code).collect())
                }
                r => ReqShape::Op(r.op()),
            };
            if self.quorum.as_ref().is_some_and(|q| !q.leading()) {
                self.forward_request(session, conn, xid, req, shape, at);
                return;
            }
            if matches!(req, Request::CloseSession) {
                let origin = Origin::Client {
                    conn,
                    xid,
                    req_ops: shape,
                    at,
                };
                self.queues
                    .entry(session)
                    .or_default()
                    .push_back(Queued::Write(self.next_zxid));
                self.close_session_as(session, xid, Some(origin));
                return;
            }
            let ids = self
                .conns
                .get(&conn)
                .map(|c| c.ids.clone())
                .unwrap_or_default();
            let origin = Origin::Client {
                conn,
                xid,
                req_ops: shape,
                at,
            };
            self.queues
                .entry(session)
                .or_default()
                .push_back(Queued::Write(self.next_zxid));
            self.prep_write_as(session, xid, req, origin, &ids);
            return;
        }
        if let (Some(q), Ok(Request::Sync(p))) = (self.quorum.as_ref(), &req) {
            // In an ensemble a sync waits until this server has applied what the leader had
            // proposed when the sync reached it.
            let path = p.path.clone();
            if q.leading() {
                self.leader_sync(session, conn, xid, path);
            } else {
                let req = req.expect("checked Ok");
                self.forward_request(session, conn, xid, req, ReqShape::Op(OpCode::Sync), at);
            }
            return;
        }
        self.enqueue_read(session, conn, xid, req, at);
    }

    fn enqueue_read(
        &mut self,
        session: i64,
        conn: ConnId,
        xid: i32,
        req: Result<Request, (i32, ErrorCode)>,
        at: Instant,
    ) {
        let q = self.queues.entry(session).or_default();
        if q.is_empty() {
            self.execute_read(conn, xid, req, at);
        } else {
            q.push_back(Queued::Read { conn, xid, req, at });
        }
    }

    fn header(&mut self, session: i64, xid: i32, op: OpCode) -> TxnHeader {
        let zxid = self.next_zxid;
        self.next_zxid += 1;
        TxnHeader {
            client_id: session,
            cxid: xid,
            zxid,
            time: wall_ms(),
            txn_type: op as i32,
        }
    }

    fn prep_write(&mut self, session: i64, req: Request, origin: Origin, ids: &[Id]) {
        self.prep_write_as(session, 0, req, origin, ids);
    }

    fn prep_write_as(&mut self, session: i64, xid: i32, req: Request, origin: Origin, ids: &[Id]) {
        let op = req.op();
        let mut hdr = self.header(session, xid, op);
        let ctx = PrepCtx {
            tree: &self.tree,
            session,
            ids,
            zxid: hdr.zxid,
            time: hdr.time,
        };
        let txn = self.prep.prep(&ctx, req);
        hdr.txn_type = txn.txn_type();
        debug!(zxid = %format_args!("0x{:x}", hdr.zxid), ?op, "prepped");
        self.stage(InFlight {
            hdr,
            txn: Arc::new(txn),
            origin,
        });
    }

    fn stage(&mut self, f: InFlight) {
        self.staged += 1;
        self.in_flight.push_back(f);
    }

    /// Hands the staged transactions to the log; they are applied once durable.
    fn flush_log(&mut self) {
        if self.staged == 0 {
            return;
        }
        if self.quorum.is_some() {
            self.propose_staged();
            return;
        }
        let start = self.in_flight.len() - self.staged;
        let batch: Vec<(TxnHeader, Arc<Txn>)> = self
            .in_flight
            .range(start..)
            .map(|f| (f.hdr.clone(), Arc::clone(&f.txn)))
            .collect();
        self.staged = 0;
        if let Some(zxid) = self.log.append(batch) {
            self.on_durable(zxid);
        }
    }

    /// Applies, in order, every logged transaction up to `zxid`. Staged entries always have
    /// higher zxids than logged ones, so they are never applied early.
    fn on_durable(&mut self, zxid: i64) {
        if self.quorum.is_some() {
            self.quorum_durable(zxid);
            return;
        }
        while self.in_flight.len() > self.staged
            && self.in_flight.front().is_some_and(|f| f.hdr.zxid <= zxid)
        {
            let f = self.in_flight.pop_front().expect("front exists");
            self.apply(f);
        }
        self.maybe_snapshot();
    }

    fn maybe_snapshot(&mut self) {
        if self.log.wants_snapshot() {
            // ACLs no node uses any more are dropped once per snapshot interval.
            self.tree.purge_acl_cache();
            // A copy-on-write clone between two transactions: consistent, and O(1).
            let data = SnapshotData {
                tree: self.tree.clone(),
                sessions: self
                    .sessions
                    .iter()
                    .map(|(id, s)| (id, s.timeout_ms))
                    .collect(),
                zxid: self.tree.last_zxid(),
            };
            self.log.snapshot(data);
        }
    }

    fn apply(&mut self, f: InFlight) {
        let InFlight { hdr, txn, origin } = f;
        let txn: &Txn = &txn;
        let origin = match origin {
            Origin::Remote => self.local_origin(&hdr, txn),
            o => o,
        };
        let mut triggers = Vec::new();
        let mut stats: Vec<Option<Stat>> = Vec::new();
        match txn {
            Txn::Multi(subs) if !subs.iter().any(|t| matches!(t, Txn::Error(_))) => {
                for t in subs {
                    match self.tree.apply(&hdr, t) {
                        Ok(tr) => triggers.extend(tr),
                        Err(e) => {
                            warn!(zxid = %format_args!("0x{:x}", hdr.zxid), err = ?e, "multi step did not apply")
                        }
                    }
                    stats.push(txn_path(t).and_then(|p| self.tree.get(p)).map(|n| n.stat()));
                }
                self.tree.advance_zxid(hdr.zxid);
            }
            _ => match self.tree.apply(&hdr, txn) {
                Ok(tr) => triggers = tr,
                Err(e) => {
                    warn!(zxid = %format_args!("0x{:x}", hdr.zxid), err = ?e, "transaction did not apply")
                }
            },
        }
        self.prep.applied(hdr.zxid);
        self.fire(&triggers);
        match txn {
            Txn::CreateSession(t) => {
                let now = self.now_ms();
                self.sessions.add(hdr.client_id, t.timeout_ms, now);
            }
            Txn::CloseSession(_) => {
                self.sessions.remove(hdr.client_id);
                self.queues.remove(&hdr.client_id);
                if !matches!(origin, Origin::Client { .. }) {
                    if let Some(conn) = self.session_conn.remove(&hdr.client_id) {
                        self.send(conn, Out::Close("session expired"));
                        self.drop_conn(conn);
                    }
                }
            }
            _ => {}
        }
        match origin {
            Origin::Internal | Origin::Remote => {}
            Origin::CreateSession {
                conn,
                timeout_ms,
                read_only,
            } => {
                let id = hdr.client_id;
                if self.conns.contains_key(&conn) {
                    self.bind(conn, id, timeout_ms);
                    info!(session = %format_args!("0x{id:x}"), timeout_ms, "session established");
                    self.send(
                        conn,
                        Out::Connected(ConnectResponse {
                            protocol_version: 0,
                            timeout_ms,
                            session_id: id,
                            passwd: session_password(id).to_vec(),
                            read_only,
                        }),
                    );
                } else if self.quorum.as_ref().is_some_and(|q| !q.leading()) {
                    // The client left before its session was created: the leader ends it.
                    self.forward_close_orphan(id);
                } else {
                    // The client left before its session was created: end it.
                    self.close_session(id, None);
                }
            }
            Origin::Client {
                conn,
                xid,
                req_ops,
                at,
            } => {
                let res = self.write_response(&hdr, txn, &req_ops, &stats);
                self.stats.record(at.elapsed().as_millis() as u64);
                self.reply(conn, xid, hdr.zxid, res);
                if matches!(txn, Txn::CloseSession(_)) {
                    self.send(conn, Out::Close("session closed"));
                    self.session_conn.remove(&hdr.client_id);
                    self.drop_conn(conn);
                    return;
                }
                self.after_write(hdr.client_id, hdr.zxid, hdr.cxid);
            }
        }
    }

    /// Pops the session's write marker and runs the reads that were waiting behind it.
    fn after_write(&mut self, session: i64, zxid: i64, cxid: i32) {
        let Some(q) = self.queues.get_mut(&session) else {
            return;
        };
        match q.front() {
            Some(Queued::Write(z)) if *z == zxid => {
                q.pop_front();
            }
            Some(Queued::Forwarded {
                cxid: c,
                sync_path: None,
                ..
            }) if *c == cxid => {
                q.pop_front();
            }
            _ => {}
        }
        self.drain_reads(session);
    }

    /// Runs the reads at the front of the session's queue, up to its next pending write.
    fn drain_reads(&mut self, session: i64) {
        loop {
            let Some(q) = self.queues.get_mut(&session) else {
                return;
            };
            match q.front() {
                Some(Queued::Read { .. }) => {
                    if let Some(Queued::Read { conn, xid, req, at }) = q.pop_front() {
                        self.execute_read(conn, xid, req, at);
                    }
                }
                Some(Queued::Write(_) | Queued::Forwarded { .. }) => return,
                None => {
                    // A session that has just drained its queue usually writes again soon:
                    // keep a small queue (removed when the session closes) rather than grow
                    // a new one from nothing for every burst; give a big one back.
                    if q.capacity() > SESSION_QUEUE_KEEP {
                        self.queues.remove(&session);
                    }
                    return;
                }
            }
        }
    }

    /// Sends the notifications `triggers` cause. As ZooKeeper does since 3.8.4 / 3.9.2
    /// (ZOOKEEPER-4799, CVE-2024-23944), a connection hears of a node only if it may READ it:
    /// otherwise a recursive watch high in the tree would reveal paths it cannot read.
    fn fire(&mut self, triggers: &[Trigger]) {
        for t in triggers {
            let watchers = self.watches.trigger(t);
            if watchers.is_empty() {
                continue;
            }
            // Who may hear of it is decided by the node's ACL: the deleted node's own, or,
            // for a node deleted later in the same multi, the one it had when deleted.
            let acl = match t {
                Trigger::Deleted(_, acl) => Some(acl.clone()),
                Trigger::Created(p) | Trigger::DataChanged(p) | Trigger::ChildrenChanged(p) => {
                    self.tree.get(p).map(|n| n.acl().clone()).or_else(|| {
                        triggers.iter().find_map(|d| match d {
                            Trigger::Deleted(dp, acl) if dp == p => Some(acl.clone()),
                            _ => None,
                        })
                    })
                }
            };
            for (conn, ty, path) in watchers {
                let allowed = match (&acl, self.conns.get(&conn)) {
                    (Some(acl), Some(c)) => acl::check(acl, perms::READ, &c.ids),
                    (None, Some(_)) => true,
                    (_, None) => false,
                };
                if !allowed {
                    continue;
                }
                self.send(
                    conn,
                    Out::Event(WatcherEvent {
                        event_type: ty as i32,
                        state: 3,
                        path,
                    }),
                );
            }
        }
    }

    fn write_response(
        &self,
        hdr: &TxnHeader,
        txn: &Txn,
        shape: &ReqShape,
        stats: &[Option<Stat>],
    ) -> Result<Response, ErrorCode> {
        let stat_of = |p: &str| self.tree.get(p).map(|n| n.stat()).unwrap_or_default();
        match (txn, shape) {
            (Txn::Error(code), ReqShape::Op(_)) => {
                Err(ErrorCode::from_i32(*code).unwrap_or(ErrorCode::SystemError))
            }
            (Txn::Multi(subs), ReqShape::Multi(ops)) => {
                let failed = subs.iter().any(|t| matches!(t, Txn::Error(_)));
                let results = subs
                    .iter()
                    .zip(ops)
                    .enumerate()
                    .map(|(i, (t, op))| match t {
                        Txn::Error(code) if failed => MultiResult::Error(*code),
                        _ => single_result(*op, t, stats.get(i).cloned().flatten()),
                    })
                    .collect();
                Ok(Response::Multi(results))
            }
            (t, ReqShape::Op(op)) => Ok(match (t, op) {
                (Txn::Create(c), OpCode::Create) => Response::Create(CreateResponse {
                    path: c.path.clone(),
                }),
                (Txn::Create(_) | Txn::CreateContainer(_) | Txn::CreateTtl(_), _) => {
                    let path = txn_path(t).unwrap_or_default().to_owned();
                    Response::Create2(Create2Response {
                        stat: stat_of(&path),
                        path,
                    })
                }
                (Txn::SetData(s), _) => Response::Stat(stat_of(&s.path)),
                (Txn::SetAcl(s), _) => Response::Stat(stat_of(&s.path)),
                (Txn::Check(s), _) => Response::Stat(stat_of(&s.path)),
                _ => Response::Empty,
            }),
            _ => {
                let _ = hdr;
                Ok(Response::Empty)
            }
        }
    }

    // ----- reads -----------------------------------------------------------------------------

    fn execute_read(
        &mut self,
        conn: ConnId,
        xid: i32,
        req: Result<Request, (i32, ErrorCode)>,
        at: Instant,
    ) {
        let req = match req {
            Ok(r) => r,
            Err((_op, e)) => {
                // ZooKeeper 3.8 answers an unknown opcode and then drops the connection.
                self.reply(conn, xid, -1, Err(e));
                self.send(conn, Out::Close("unknown opcode"));
                return;
            }
        };
        let ids = self
            .conns
            .get(&conn)
            .map(|c| c.ids.clone())
            .unwrap_or_default();
        let res = self.read(conn, &req, &ids);
        let zxid = self.tree.last_zxid();
        if matches!(req, Request::Ping) {
            // A ping is answered with xid -2 whatever xid it carried.
            self.reply(conn, corral_proto::XID_PING, zxid, res);
            return;
        }
        self.stats.record(at.elapsed().as_millis() as u64);
        self.reply(conn, xid, zxid, res);
    }

    fn read_node(
        &self,
        path: &str,
        perm: i32,
        ids: &[Id],
    ) -> Result<&crate::tree::Znode, ErrorCode> {
        let n = self.tree.get(path).ok_or(ErrorCode::NoNode)?;
        if !acl::check(n.acl(), perm, ids) {
            return Err(ErrorCode::NoAuth);
        }
        Ok(n)
    }

    fn read(&mut self, conn: ConnId, req: &Request, ids: &[Id]) -> Result<Response, ErrorCode> {
        match req {
            Request::Ping => Ok(Response::Empty),
            Request::Exists(r) => {
                if r.path.contains('\0') {
                    return Err(ErrorCode::BadArguments);
                }
                // As in ZooKeeper 3.8, exists needs no permission.
                let stat = self.tree.get(&r.path).map(|n| n.stat());
                if r.watch {
                    self.watches.add_data(&r.path, conn);
                }
                stat.map(Response::Stat).ok_or(ErrorCode::NoNode)
            }
            Request::GetData(r) => {
                let n = self.read_node(&r.path, perms::READ, ids)?;
                let resp = GetDataResponse {
                    data: n.data_vec(),
                    stat: n.stat(),
                };
                if r.watch {
                    self.watches.add_data(&r.path, conn);
                }
                Ok(Response::GetData(resp))
            }
            Request::GetChildren(r) | Request::GetChildren2(r) => {
                let n = self.read_node(&r.path, perms::READ, ids)?;
                let children: Vec<String> =
                    self.tree.child_names(&r.path).map(str::to_owned).collect();
                let stat = n.stat();
                if r.watch {
                    self.watches.add_child(&r.path, conn);
                }
                Ok(if matches!(req, Request::GetChildren(_)) {
                    Response::GetChildren(GetChildrenResponse { children })
                } else {
                    Response::GetChildren2(GetChildren2Response { children, stat })
                })
            }
            Request::GetAcl(r) => {
                let n = self.read_node(&r.path, perms::READ | perms::ADMIN, ids)?;
                let acl = if acl::check(n.acl(), perms::ADMIN, ids) {
                    n.acl().to_vec()
                } else {
                    acl::mask_digests(n.acl())
                };
                Ok(Response::GetAcl(GetAclResponse {
                    acl,
                    stat: n.stat(),
                }))
            }
            Request::GetAllChildrenNumber(r) => {
                self.read_node(&r.path, perms::READ, ids)?;
                Ok(Response::AllChildrenNumber(
                    self.tree.descendant_count(&r.path) as i32,
                ))
            }
            Request::GetEphemerals(r) => {
                let session = self.conns.get(&conn).and_then(|c| c.session).unwrap_or(0);
                let all = r.path.is_empty() || r.path == "/";
                // ZooKeeper answers from a clone of the session's HashSet of ephemerals, filtered
                // by prefix: reproduce that order (creation order standing in for insertion).
                let mut list: Vec<(i64, String)> = self
                    .tree
                    .ephemerals(session)
                    .map(|p| {
                        (
                            self.tree.get(p).map_or(0, |n| n.raw_stat().czxid),
                            p.to_owned(),
                        )
                    })
                    .collect();
                list.sort();
                let hashes: Vec<u32> = list.iter().map(|(_, p)| acl::java_string_hash(p)).collect();
                let original = acl::java_hash_order(&hashes);
                let ordered = acl::java_clone_order(&hashes, &original)
                    .into_iter()
                    .map(|i| list[i].1.clone())
                    .filter(|p| all || p.starts_with(&r.path))
                    .collect();
                Ok(Response::GetEphemerals(ordered))
            }
            Request::Sync(r) => Ok(Response::Sync(r.path.clone())),
            Request::WhoAmI => Ok(Response::WhoAmI(
                acl::zookeeper_order(ids)
                    .into_iter()
                    .map(|id| ClientInfo {
                        user: if id.scheme == "digest" {
                            id.id.split(':').next().unwrap_or("").to_owned()
                        } else {
                            id.id.clone()
                        },
                        auth_scheme: id.scheme,
                    })
                    .collect(),
            )),
            Request::MultiRead(ops) => {
                let mut results = Vec::with_capacity(ops.len());
                for op in ops {
                    let r = match op {
                        Request::GetData(g) => self.read_node(&g.path, perms::READ, ids).map(|n| {
                            MultiResult::GetData(GetDataResponse {
                                data: n.data_vec(),
                                stat: n.stat(),
                            })
                        }),
                        Request::GetChildren(g) => {
                            self.read_node(&g.path, perms::READ, ids).map(|_| {
                                MultiResult::GetChildren(
                                    self.tree.child_names(&g.path).map(str::to_owned).collect(),
                                )
                            })
                        }
                        _ => Err(ErrorCode::Unimplemented),
                    };
                    results.push(r.unwrap_or_else(|e| MultiResult::Error(e.code())));
                }
                Ok(Response::Multi(results))
            }
            Request::SetWatches(w) => {
                self.set_watches(
                    conn,
                    w.relative_zxid,
                    &w.data_watches,
                    &w.exist_watches,
                    &w.child_watches,
                    &[],
                    &[],
                );
                Ok(Response::Empty)
            }
            Request::SetWatches2(w) => {
                self.set_watches(
                    conn,
                    w.relative_zxid,
                    &w.data_watches,
                    &w.exist_watches,
                    &w.child_watches,
                    &w.persistent_watches,
                    &w.persistent_recursive_watches,
                );
                Ok(Response::Empty)
            }
            Request::AddWatch(w) => {
                match w.mode {
                    0 => self.watches.add_persistent(&w.path, conn),
                    1 => self.watches.add_recursive(&w.path, conn),
                    _ => return Err(ErrorCode::BadArguments),
                }
                Ok(Response::AddWatch)
            }
            Request::CheckWatches(w) | Request::RemoveWatches(w) => {
                let kind = match WatcherType::from_i32(w.watcher_type) {
                    Some(WatcherType::Children) => WatchKind::Children,
                    Some(WatcherType::Data) => WatchKind::Data,
                    Some(WatcherType::Any) => WatchKind::Any,
                    Some(WatcherType::Persistent) => WatchKind::Persistent,
                    Some(WatcherType::PersistentRecursive) => WatchKind::PersistentRecursive,
                    None => return Err(ErrorCode::BadArguments),
                };
                let remove = matches!(req, Request::RemoveWatches(_));
                if self.watches.check_or_remove(&w.path, conn, kind, remove) {
                    Ok(Response::Empty)
                } else {
                    Err(ErrorCode::NoWatcher)
                }
            }
            _ => Err(ErrorCode::Unimplemented),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn set_watches(
        &mut self,
        conn: ConnId,
        rel: i64,
        data: &[String],
        exist: &[String],
        child: &[String],
        persistent: &[String],
        recursive: &[String],
    ) {
        let mut events = Vec::new();
        for p in data {
            match self.tree.get(p) {
                None => events.push((EventType::NodeDeleted, p)),
                Some(n) if n.raw_stat().mzxid > rel => events.push((EventType::NodeDataChanged, p)),
                Some(_) => self.watches.add_data(p, conn),
            }
        }
        for p in exist {
            match self.tree.get(p) {
                Some(_) => events.push((EventType::NodeCreated, p)),
                None => self.watches.add_data(p, conn),
            }
        }
        for p in child {
            match self.tree.get(p) {
                None => events.push((EventType::NodeDeleted, p)),
                Some(n) if n.raw_stat().pzxid > rel => {
                    events.push((EventType::NodeChildrenChanged, p))
                }
                Some(_) => self.watches.add_child(p, conn),
            }
        }
        for p in persistent {
            self.watches.add_persistent(p, conn);
        }
        for p in recursive {
            self.watches.add_recursive(p, conn);
        }
        for (ty, p) in events {
            self.send(
                conn,
                Out::Event(WatcherEvent {
                    event_type: ty as i32,
                    state: 3,
                    path: p.clone(),
                }),
            );
        }
    }

    fn admin_view(&self) -> AdminView<'_> {
        let mut conns: Vec<ConnInfo> = self.conns.values().map(|c| c.stats.clone()).collect();
        conns.sort_by_key(|c| c.peer);
        AdminView {
            cfg: &self.cfg,
            tree: &self.tree,
            watches: &self.watches,
            sessions: &self.sessions,
            stats: &self.stats,
            conns,
            outstanding: self.in_flight.len(),
            started: self.started,
            mode: match self.quorum.as_ref() {
                None => "standalone",
                Some(q) => match q.role {
                    corral_zab::Role::Leading => "leader",
                    corral_zab::Role::Following => "follower",
                    corral_zab::Role::Observing => "observer",
                    _ => "looking",
                },
            },
        }
    }
}

fn txn_path(t: &Txn) -> Option<&str> {
    Some(match t {
        Txn::Create(c) => &c.path,
        Txn::CreateContainer(c) => &c.path,
        Txn::CreateTtl(c) => &c.path,
        Txn::Delete(d) | Txn::DeleteContainer(d) => &d.path,
        Txn::SetData(s) => &s.path,
        Txn::SetAcl(s) => &s.path,
        Txn::Check(c) => &c.path,
        _ => return None,
    })
}

fn single_result(op: OpCode, t: &Txn, stat: Option<Stat>) -> MultiResult {
    match (op, t) {
        (OpCode::Create, t) => MultiResult::Create(txn_path(t).unwrap_or_default().to_owned()),
        (OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl, t) => {
            MultiResult::Create2(Create2Response {
                path: txn_path(t).unwrap_or_default().to_owned(),
                stat: stat.unwrap_or_default(),
            })
        }
        (OpCode::Delete, _) => MultiResult::Delete,
        (OpCode::SetData, _) => MultiResult::SetData(stat.unwrap_or_default()),
        (OpCode::Check, _) => MultiResult::Check,
        _ => MultiResult::Error(0),
    }
}
