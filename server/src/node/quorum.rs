//! Quorum mode of the node loop: it drives the `corral-zab` core (ticks, peer messages,
//! durability) and performs its actions: sending on peer links, logging proposals, applying
//! commits, and role changes. Learners forward writes, session creation and syncs to the
//! leader and answer their clients when the commit comes back.
//!
//! ```text
//!   leader:   client write ─► prep ─► Peer::propose ─► Persist (log) ─► on_persisted ─┐
//!                                                            quorum acks ─► Commit ◄───┘ ─► apply ─► reply
//!   follower: client write ─► Forward ─► leader …  Proposal ─► Persist ─► Ack … Commit ─► apply ─► reply
//! ```

use super::{InFlight, Node, Origin, Out, Queued, ReqShape};
use crate::peer::forward::{decode_txn, encode_txn, FromLeader, ToLeader};
use crate::peer::link::LinkTx;
use crate::prep::{Prep, PrepConfig};
use crate::watch::ConnId;
use corral_proto::{CreateSessionTxn, ErrorCode, OpCode, Request, Response, Txn};
use corral_zab::{Action, Entry, Message, Peer, ProposeError, Role, ServerId};
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use tracing::{debug, error, info, warn};

/// Where a sync's answer goes once the commit point it waits for is applied.
#[derive(Debug)]
pub(super) enum SyncDest {
    /// A client of this server (the leader's own).
    Local { session: i64, cxid: i32 },
    /// A client of a learner.
    Remote {
        peer: ServerId,
        session: i64,
        cxid: i32,
    },
}

/// The quorum state owned by the node: the ZAB core, the live peer links, and what a learner
/// or leader tracks on behalf of clients.
#[derive(Debug)]
pub struct Quorum {
    pub(super) peer: Peer,
    /// The action buffer [`Node::drain_peer`] swaps with the core's.
    pub(super) spare_actions: Vec<corral_zab::peer::Action>,
    pub(super) my_id: ServerId,
    pub(super) links: HashMap<ServerId, (u64, LinkTx)>,
    pub(super) role: Role,
    pub(super) leader: Option<ServerId>,
    pub(super) epoch: u32,
    /// Learner: sessions created here and waiting for their CreateSession commit.
    pub(super) pending_connects: HashMap<i64, (ConnId, i32, Option<bool>)>,
    /// Learner: sessions active since the last report to the leader.
    pub(super) touched: BTreeSet<i64>,
    /// Leader: syncs waiting for a commit point.
    pub(super) pending_syncs: Vec<(i64, SyncDest)>,
    /// Where the epoch files live.
    pub(super) epoch_dir: PathBuf,
    pub(super) ticks: u64,
    /// Messages waiting behind a snapshot being encoded for that learner.
    pub(super) held: HashMap<ServerId, Vec<Message>>,
}

impl Quorum {
    /// A quorum state around a peer core that has not started yet.
    pub fn new(peer: Peer, epoch_dir: PathBuf) -> Quorum {
        Quorum {
            my_id: peer.id(),
            spare_actions: Vec::new(),
            peer,
            links: HashMap::new(),
            role: Role::Looking,
            leader: None,
            epoch: 0,
            pending_connects: HashMap::new(),
            touched: BTreeSet::new(),
            pending_syncs: Vec::new(),
            epoch_dir,
            ticks: 0,
            held: HashMap::new(),
        }
    }

    /// Whether clients are served.
    pub(super) fn serving(&self) -> bool {
        self.leader.is_some()
    }

    /// Whether this server is the serving leader.
    pub(super) fn leading(&self) -> bool {
        self.leader == Some(self.my_id)
    }
}

impl Node {
    fn q(&mut self) -> &mut Quorum {
        self.quorum.as_mut().expect("quorum mode")
    }

    /// Starts the election.
    pub(super) fn quorum_start(&mut self) {
        self.q().peer.start();
        self.drain_peer();
    }

    /// One peer tick (the node's timer in quorum mode).
    pub(super) fn quorum_tick(&mut self) {
        let q = self.q();
        q.ticks += 1;
        q.peer.tick();
        let report = q.ticks % 5 == 0 && !q.touched.is_empty() && !q.leading();
        if report {
            let ids: Vec<i64> = std::mem::take(&mut q.touched).into_iter().collect();
            self.send_to_leader(ToLeader::Touch(ids));
        }
        self.drain_peer();
    }

    pub(super) fn peer_up(&mut self, peer: ServerId, link: u64, tx: LinkTx) {
        let q = self.q();
        q.links.insert(peer, (link, tx));
        q.peer.on_connected(peer);
        self.drain_peer();
    }

    pub(super) fn peer_down(&mut self, peer: ServerId, link: u64) {
        let q = self.q();
        if q.links.get(&peer).is_some_and(|(l, _)| *l == link) {
            q.links.remove(&peer);
            q.held.remove(&peer);
            q.peer.on_disconnected(peer);
            self.drain_peer();
        }
    }

    pub(super) fn peer_message(&mut self, from: ServerId, msg: Message) {
        self.q().peer.on_message(from, msg);
        self.drain_peer();
    }

    /// The log made everything up to `zxid` durable.
    pub(super) fn quorum_durable(&mut self, zxid: i64) {
        self.q().peer.on_persisted(zxid);
        self.drain_peer();
    }

    /// Performs every action the core recorded, in order, until it records no more.
    pub(super) fn drain_peer(&mut self) {
        // The core records into one buffer while this drains the other.
        let mut actions = std::mem::take(&mut self.q().spare_actions);
        loop {
            self.q().peer.swap_actions(&mut actions);
            if actions.is_empty() {
                break;
            }
            // Entries to persist go to the log as one batch (one hand-over to the writer
            // rather than one per proposal). Sends may pass them, as nothing a server sends
            // waits for its own log; any other action waits until they are handed over.
            let mut persist: Vec<Entry> = Vec::new();
            for a in actions.drain(..) {
                match a {
                    Action::Persist(entries) => persist.extend(entries),
                    a @ Action::Send { .. } => self.perform(a),
                    a => {
                        if !persist.is_empty() {
                            self.persist_entries(std::mem::take(&mut persist));
                        }
                        self.perform(a);
                    }
                }
            }
            if !persist.is_empty() {
                self.persist_entries(persist);
            }
        }
        self.q().spare_actions = actions;
    }

    fn send_peer(&mut self, to: ServerId, msg: Message) {
        if let Some(held) = self.q().held.get_mut(&to) {
            held.push(msg);
            return;
        }
        self.send_peer_now(to, msg);
    }

    fn send_peer_now(&mut self, to: ServerId, msg: Message) {
        let q = self.q();
        let delivered = q.links.get(&to).is_some_and(|(_, tx)| tx.send(msg).is_ok());
        if !delivered {
            // The core must hear of a message it could not send, as of a broken link.
            q.links.remove(&to);
            q.peer.on_disconnected(to);
        }
    }

    fn send_to_leader(&mut self, m: ToLeader) -> bool {
        let q = self.q();
        let Some(leader) = q.leader else {
            return false;
        };
        match q.links.get(&leader) {
            Some((_, tx)) => tx.send(Message::Forward(m.encode())).is_ok(),
            None => false,
        }
    }

    fn perform(&mut self, action: Action) {
        match action {
            Action::Send { to, msg } => self.send_peer(to, msg),
            Action::Persist(entries) => self.persist_entries(entries),
            Action::PersistEpochs { accepted, current } => {
                let dir = self.q().epoch_dir.clone();
                if let Err(e) = crate::peer::epochs::write(&dir, accepted, current) {
                    error!(error = %e, "cannot record the epochs; stopping");
                    self.fatal = Some(format!("epoch files: {e}"));
                }
            }
            Action::Truncate { zxid } => self.truncate(zxid),
            Action::InstallSnapshot { zxid, data } => self.install_snapshot(zxid, &data),
            Action::SendSnapshot { to, zxid } => self.send_snapshot(to, zxid),
            Action::Commit { zxid } => self.apply_upto(zxid),
            Action::Deliver { from, msg } => match msg {
                Message::Forward(b) => match ToLeader::decode(&b) {
                    Ok(m) => self.on_forwarded(from, m),
                    Err(e) => warn!(from, error = %e, "malformed forwarded request"),
                },
                Message::Reply(b) => match FromLeader::decode(&b) {
                    Ok(m) => self.on_leader_reply(m),
                    Err(e) => warn!(from, error = %e, "malformed leader reply"),
                },
                _ => {}
            },
            Action::RoleChanged {
                role,
                leader,
                epoch,
            } => self.on_role(role, leader, epoch),
        }
    }

    /// Logs entries the core handed over; a learner's are not in flight yet. The log gets
    /// each proposal's bytes as they are (they are the log record's payload), so nothing is
    /// encoded twice.
    fn persist_entries(&mut self, entries: Vec<Entry>) {
        let mut batch = Vec::with_capacity(entries.len());
        for e in entries {
            // The leader's own proposals are in flight already. In flight is in zxid order;
            // a learner's new entries are past its end.
            let known = match self.in_flight.back() {
                Some(last) if last.hdr.zxid >= e.zxid => {
                    self.in_flight
                        .binary_search_by_key(&e.zxid, |f| f.hdr.zxid)
                        .is_ok()
                        || self.in_flight.iter().any(|f| f.hdr.zxid == e.zxid)
                }
                _ => false,
            };
            if !known {
                match decode_txn(&e.data) {
                    Ok((hdr, txn)) if hdr.zxid == e.zxid => {
                        self.in_flight.push_back(InFlight {
                            hdr,
                            txn: Arc::new(txn),
                            origin: Origin::Remote,
                        });
                    }
                    Ok((hdr, _)) => {
                        error!(zxid = %format_args!("0x{:x}", e.zxid), carried = %format_args!("0x{:x}", hdr.zxid), "proposal carries another zxid; stopping");
                        self.fatal = Some(format!(
                            "proposal 0x{:x} carries zxid 0x{:x}",
                            e.zxid, hdr.zxid
                        ));
                        return;
                    }
                    Err(err) => {
                        error!(zxid = %format_args!("0x{:x}", e.zxid), error = %err, "undecodable proposal; stopping");
                        self.fatal = Some(format!("undecodable proposal 0x{:x}", e.zxid));
                        return;
                    }
                }
            }
            batch.push((e.zxid, e.data));
        }
        if let Some(z) = self.log.append_encoded(batch) {
            self.q().peer.on_persisted(z);
        }
    }

    /// Proposes what prep staged (the leader's flush).
    pub(super) fn propose_staged(&mut self) {
        let start = self.in_flight.len() - self.staged;
        self.staged = 0;
        for i in start..self.in_flight.len() {
            let data = {
                let f = &self.in_flight[i];
                encode_txn(&f.hdr, &f.txn)
            };
            let want = self.in_flight[i].hdr.zxid;
            match self.q().peer.propose(data) {
                Ok(z) if z == want => {}
                Ok(z) => {
                    error!(expected = want, got = z, "proposal zxid mismatch; stopping");
                    self.fatal = Some("proposal zxid mismatch".into());
                    return;
                }
                Err(ProposeError::NotLeader | ProposeError::EpochExhausted) => {
                    // Leadership is gone: what was not proposed is dropped; its clients
                    // are disconnected by the role change and will retry elsewhere.
                    self.in_flight.truncate(i);
                    break;
                }
            }
        }
        self.drain_peer();
    }

    /// Applies every logged transaction up to `zxid` (a commit).
    pub(super) fn apply_upto(&mut self, zxid: i64) {
        while self.in_flight.len() > self.staged
            && self.in_flight.front().is_some_and(|f| f.hdr.zxid <= zxid)
        {
            let f = self.in_flight.pop_front().expect("front exists");
            self.apply(f);
        }
        self.maybe_snapshot();
        self.complete_syncs();
    }

    fn complete_syncs(&mut self) {
        let applied = self.tree.last_zxid();
        let q = self.q();
        if q.pending_syncs.is_empty() {
            return;
        }
        let (done, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut q.pending_syncs)
            .into_iter()
            .partition(|(z, _)| *z <= applied);
        q.pending_syncs = keep;
        for (_, dest) in done {
            match dest {
                SyncDest::Local { session, cxid } => self.finish_local_sync(session, cxid),
                SyncDest::Remote {
                    peer,
                    session,
                    cxid,
                } => {
                    let m = FromLeader::SyncDone {
                        session,
                        cxid,
                        zxid: applied,
                    };
                    self.send_peer(peer, Message::Reply(m.encode()));
                }
            }
        }
    }

    fn finish_local_sync(&mut self, session: i64, cxid: i32) {
        let front = self.queues.get(&session).and_then(|q| q.front());
        let Some(Queued::Forwarded {
            cxid: c,
            conn,
            sync_path: Some(path),
            ..
        }) = front
        else {
            return;
        };
        if *c != cxid {
            return;
        }
        let (conn, path) = (*conn, path.clone());
        if let Some(q) = self.queues.get_mut(&session) {
            q.pop_front();
        }
        let zxid = self.tree.last_zxid();
        self.reply(conn, cxid, zxid, Ok(Response::Sync(path)));
        self.drain_reads(session);
    }

    fn on_leader_reply(&mut self, m: FromLeader) {
        match m {
            FromLeader::SyncDone { session, cxid, .. } => self.finish_local_sync(session, cxid),
        }
    }

    /// The leader runs a learner's request through prep and proposes it.
    fn on_forwarded(&mut self, from: ServerId, m: ToLeader) {
        if !self.q().leading() {
            return;
        }
        match m {
            ToLeader::Request {
                session,
                cxid,
                op,
                body,
                ids,
            } => {
                let req = match Request::decode(op, &body) {
                    Ok(r) => r,
                    Err(_) => {
                        let hdr = self.header(session, cxid, OpCode::Error);
                        self.stage(InFlight {
                            hdr,
                            txn: Arc::new(Txn::Error(ErrorCode::MarshallingError.code())),
                            origin: Origin::Remote,
                        });
                        return;
                    }
                };
                self.prep_write_as(session, cxid, req, Origin::Remote, &ids);
            }
            ToLeader::CreateSession {
                session,
                timeout_ms,
            } => {
                let hdr = self.header(session, 0, OpCode::CreateSession);
                self.stage(InFlight {
                    hdr,
                    txn: Arc::new(Txn::CreateSession(CreateSessionTxn { timeout_ms })),
                    origin: Origin::Remote,
                });
            }
            ToLeader::CloseSession { session, cxid } => {
                self.close_session_as(session, cxid, Some(Origin::Remote));
            }
            ToLeader::Sync { session, cxid } => {
                let target = self.last_proposed();
                self.q().pending_syncs.push((
                    target,
                    SyncDest::Remote {
                        peer: from,
                        session,
                        cxid,
                    },
                ));
                self.complete_syncs();
            }
            ToLeader::Touch(ids) => {
                let now = self.now_ms();
                for id in ids {
                    self.sessions.touch(id, now);
                }
            }
        }
    }

    /// A learner's client request that must go through the leader.
    pub(super) fn forward_request(
        &mut self,
        session: i64,
        conn: ConnId,
        xid: i32,
        req: Request,
        shape: ReqShape,
        at: Instant,
    ) {
        let ids = self
            .conns
            .get(&conn)
            .map(|c| c.ids.to_vec())
            .unwrap_or_default();
        let (m, sync_path) = match &req {
            Request::Sync(p) => (ToLeader::Sync { session, cxid: xid }, Some(p.path.clone())),
            Request::CloseSession => (ToLeader::CloseSession { session, cxid: xid }, None),
            r => (
                ToLeader::Request {
                    session,
                    cxid: xid,
                    op: r.op() as i32,
                    body: r.body_bytes(),
                    ids,
                },
                None,
            ),
        };
        if !self.send_to_leader(m) {
            self.send(conn, Out::Close("no connection to the leader"));
            return;
        }
        self.queues
            .entry(session)
            .or_default()
            .push_back(Queued::Forwarded {
                cxid: xid,
                conn,
                shape,
                at,
                sync_path,
            });
    }

    /// The newest zxid proposed so far: what a sync must see applied. Right after an election
    /// nothing of the new epoch is proposed yet and this is the last applied zxid.
    fn last_proposed(&self) -> i64 {
        self.in_flight
            .back()
            .map_or(self.tree.last_zxid(), |f| f.hdr.zxid)
    }

    /// The leader's own client asks for a sync: answer once what is proposed is applied.
    pub(super) fn leader_sync(&mut self, session: i64, conn: ConnId, xid: i32, path: String) {
        let target = self.last_proposed();
        self.queues
            .entry(session)
            .or_default()
            .push_back(Queued::Forwarded {
                cxid: xid,
                conn,
                shape: ReqShape::Op(OpCode::Sync),
                at: Instant::now(),
                sync_path: Some(path),
            });
        self.q()
            .pending_syncs
            .push((target, SyncDest::Local { session, cxid: xid }));
        self.complete_syncs();
    }

    /// A session whose client left before its creation committed: ask the leader to end it.
    pub(super) fn forward_close_orphan(&mut self, session: i64) {
        self.send_to_leader(ToLeader::CloseSession { session, cxid: 0 });
    }

    /// A session created on a learner: the leader commits it, then we answer.
    pub(super) fn forward_create_session(
        &mut self,
        conn: ConnId,
        session: i64,
        timeout_ms: i32,
        read_only: Option<bool>,
    ) {
        if !self.send_to_leader(ToLeader::CreateSession {
            session,
            timeout_ms,
        }) {
            self.send(conn, Out::Close("no connection to the leader"));
            return;
        }
        self.q()
            .pending_connects
            .insert(session, (conn, timeout_ms, read_only));
    }

    /// Who is waiting for a transaction that came from elsewhere, if anyone here.
    pub(super) fn local_origin(&mut self, hdr: &corral_proto::TxnHeader, txn: &Txn) -> Origin {
        if let Txn::CreateSession(_) = txn {
            if let Some((conn, timeout_ms, read_only)) =
                self.q().pending_connects.remove(&hdr.client_id)
            {
                return Origin::CreateSession {
                    conn,
                    timeout_ms,
                    read_only,
                };
            }
            return Origin::Internal;
        }
        let front = self.queues.get(&hdr.client_id).and_then(|q| q.front());
        if let Some(Queued::Forwarded {
            cxid,
            conn,
            shape,
            at,
            sync_path: None,
        }) = front
        {
            if *cxid == hdr.cxid {
                return Origin::Client {
                    conn: *conn,
                    xid: *cxid,
                    req_ops: shape.clone(),
                    at: *at,
                };
            }
        }
        Origin::Internal
    }

    fn on_role(&mut self, role: Role, leader: Option<ServerId>, epoch: u32) {
        let was_leading = self.q().leading();
        let was_serving = self.q().serving();
        {
            let q = self.q();
            q.role = role;
            q.leader = leader;
            q.epoch = epoch;
        }
        info!(?role, leader, epoch, "role changed");
        if role == Role::Looking {
            // A new election: the old leader/learner conversations are over, and nothing of
            // them may arrive later. Dropping the senders closes every peer connection; the
            // links come back at once and each new one starts with our vote.
            let q = self.q();
            q.links.clear();
            q.held.clear();
        }
        if was_serving && (!self.q().serving() || was_leading != self.q().leading()) {
            self.stop_serving();
        }
        if !was_serving && self.q().serving() {
            // Read-only clients move to a read-write connection now that the quorum is back.
            let ro: Vec<ConnId> = self
                .conns
                .iter()
                .filter(|(_, c)| c.read_only)
                .map(|(id, _)| *id)
                .collect();
            for c in ro {
                self.send(c, Out::Close("quorum is back: reconnect read-write"));
                self.drop_conn(c);
            }
        }
        if self.q().leading() {
            // A new leader numbers its epoch from 1, starts prep afresh over the applied
            // tree, and gives every session a full timeout to show up.
            self.next_zxid = corral_zab::zxid(epoch, 1);
            self.prep = Prep::new(PrepConfig {
                extended_types: self.cfg.extended_types_enabled,
            });
            let now = self.now_ms();
            let all: Vec<(i64, i32)> = self
                .sessions
                .iter()
                .map(|(id, s)| (id, s.timeout_ms))
                .collect();
            for (id, timeout) in all {
                self.sessions.add(id, timeout, now);
            }
        }
    }

    /// Stops serving clients: connections close (clients move to another server and keep
    /// their sessions), unproposed writes are dropped.
    fn stop_serving(&mut self) {
        debug!("not serving: closing client connections");
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        for c in conns {
            self.send(c, Out::Close("server is not serving"));
            self.drop_conn(c);
        }
        self.session_conn.clear();
        self.queues.clear();
        let staged = self.staged;
        self.staged = 0;
        let keep = self.in_flight.len() - staged;
        self.in_flight.truncate(keep);
        for f in self.in_flight.iter_mut() {
            f.origin = Origin::Remote;
        }
        let q = self.q();
        q.pending_connects.clear();
        q.pending_syncs.clear();
        q.touched.clear();
    }

    fn truncate(&mut self, zxid: i64) {
        self.in_flight.retain(|f| f.hdr.zxid <= zxid);
        info!(zxid = %format_args!("0x{zxid:x}"), "truncating the log to the leader's history");
        if let Err(e) = self.log.truncate(zxid) {
            error!(error = %e, "cannot truncate the log; stopping");
            self.fatal = Some(format!("truncate: {e}"));
            return;
        }
        if self.tree.last_zxid() > zxid {
            // Transactions beyond the leader's history were applied at start: rebuild.
            match self.log.reload(zxid) {
                Ok((tree, sessions)) => self.replace_state(tree, sessions),
                Err(e) => {
                    error!(error = %e, "cannot rebuild the state after a truncation; stopping");
                    self.fatal = Some(format!("reload: {e}"));
                }
            }
        }
    }

    fn install_snapshot(&mut self, zxid: i64, data: &[u8]) {
        self.in_flight.clear();
        match self.log.install_snapshot(zxid, data) {
            Ok((tree, sessions)) => self.replace_state(tree, sessions),
            Err(e) => {
                error!(error = %e, "cannot install the leader's snapshot; stopping");
                self.fatal = Some(format!("install snapshot: {e}"));
            }
        }
    }

    fn replace_state(&mut self, tree: crate::tree::DataTree, sessions: Vec<(i64, i32)>) {
        self.tree = tree;
        let now = self.now_ms();
        let old: Vec<i64> = self.sessions.iter().map(|(id, _)| id).collect();
        for id in old {
            self.sessions.remove(id);
        }
        for (id, timeout) in sessions {
            self.sessions.add(id, timeout, now);
        }
    }

    /// Encodes the applied state (at `zxid`) on a blocking thread and sends it to `to`;
    /// messages for `to` wait behind it, so the learner gets them in order.
    fn send_snapshot(&mut self, to: ServerId, zxid: i64) {
        let data = crate::storage::SnapshotData {
            tree: self.tree.clone(),
            sessions: self
                .sessions
                .iter()
                .map(|(id, s)| (id, s.timeout_ms))
                .collect(),
            zxid,
        };
        self.q().held.entry(to).or_default();
        let node = self.self_tx.clone();
        tokio::task::spawn_blocking(move || {
            let bytes = crate::storage::snapshot::encode(&data);
            drop(data);
            let _ = node.blocking_send(super::NodeMsg::SnapshotReady { to, zxid, bytes });
        });
    }

    /// An encoded snapshot is ready: send it, then what waited behind it.
    pub(super) fn snapshot_ready(&mut self, to: ServerId, zxid: i64, bytes: Vec<u8>) {
        let held = self.q().held.remove(&to).unwrap_or_default();
        info!(to, zxid = %format_args!("0x{zxid:x}"), bytes = bytes.len(), "sending a snapshot");
        self.send_peer_now(to, Message::Snap { zxid, data: bytes });
        for m in held {
            self.send_peer_now(to, m);
        }
    }
}
