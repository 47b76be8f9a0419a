//! The one tokio task that owns the socket and the session.
//!
//! ```text
//!          ┌───────────── reconnect loop (run) ─────────────┐
//!          ▼                                                │
//!   next host ─► handshake ─► serve (connected) ──Lost──────┤
//!                   │              │ Closed / AuthFailed    │ failed attempt:
//!                   │ Expired      ▼                        │ fail queued requests,
//!                   └────────► finish (terminal)            │ back off, maybe Lost
//! ```
//!
//! `serve` is a single `select!` loop (biased, shutdown first) over: socket reads into a
//! `BytesMut` field (cancel-safe), socket writes from a `BytesMut` field, new commands
//! (only while the write buffer is below [`WRITE_HIGH_WATER`]), the ping timer and the
//! read deadline.

use std::sync::Arc;
use std::time::Duration;

use backoff::backoff::Backoff;
use bytes::{Buf, BytesMut};
use corral_proto::frame::{begin_frame, end_frame, frame_len};
use corral_proto::{
    AuthPacket, ConnectResponse, DecodeError, Jute, KeeperState, OpCode, Reader, ReplyHeader,
    Request, RequestHeader, Response, SessionId, WatcherEvent, WatcherType, WatchesRequest,
    XID_AUTH, XID_NOTIFICATION, XID_PING,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, info_span, trace, warn, Instrument, Span};

use super::state::{AuthOutcome, Handshake, Pending, SessionState};
use super::{patch_xid, Command, Operation, WatchAction};
use crate::state::{ConnectionState, SessionStatus};
use crate::Error;

/// New commands are taken only while fewer bytes than this wait to be written, so a burst
/// of requests queues in the command channel instead of in memory owned by the task.
pub(crate) const WRITE_HIGH_WATER: usize = 64 * 1024;

/// A connection that lasted this long resets the reconnect back-off.
const STABLE_CONNECTION: Duration = Duration::from_secs(1);

/// Settings the task needs.
#[derive(Debug, Clone)]
pub(crate) struct TaskConfig {
    pub(crate) hosts: Vec<String>,
    pub(crate) connection_timeout: Duration,
    pub(crate) read_only: bool,
    pub(crate) max_buffer: usize,
    pub(crate) session_renewal: bool,
}

/// How the task ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Closed,
    Expired,
    AuthFailed,
    /// `connect` gave up, or the caller of `connect` went away.
    GaveUp,
}

/// Why a connection ended.
#[derive(Debug)]
enum Exit {
    /// The connection broke; the session may live on.
    Lost(String),
    /// The session was closed (closeSession answered, or every handle dropped).
    Closed,
    /// The shutdown token fired.
    Shutdown,
    /// A credential re-sent at connect time was refused.
    AuthFailed,
}

/// The session task. Owns the socket buffers, the session bookkeeping and the receiving
/// end of the command channel.
pub(crate) struct SessionTask {
    cfg: Arc<TaskConfig>,
    next_host: usize,
    state: SessionState,
    commands: mpsc::UnboundedReceiver<Command>,
    status: watch::Sender<SessionStatus>,
    shutdown: CancellationToken,
    /// Bytes read but not yet decoded: a partial frame survives a cancelled read.
    read_buf: BytesMut,
    /// Encoded frames not yet written.
    write_buf: BytesMut,
    ever_connected: bool,
    close_acks: Vec<oneshot::Sender<()>>,
    /// Told once when the first session is usable (or cannot be had).
    first: Option<oneshot::Sender<Result<(), Error>>>,
    span: Span,
}

impl SessionTask {
    pub(crate) fn new(
        cfg: TaskConfig,
        state: SessionState,
        commands: mpsc::UnboundedReceiver<Command>,
        status: watch::Sender<SessionStatus>,
        shutdown: CancellationToken,
        first: oneshot::Sender<Result<(), Error>>,
    ) -> Self {
        let mut hosts = cfg.hosts.clone();
        fastrand::shuffle(&mut hosts);
        SessionTask {
            cfg: Arc::new(TaskConfig { hosts, ..cfg }),
            next_host: 0,
            state,
            commands,
            status,
            shutdown,
            read_buf: BytesMut::with_capacity(64 * 1024),
            write_buf: BytesMut::with_capacity(WRITE_HIGH_WATER),
            ever_connected: false,
            close_acks: Vec::new(),
            first: Some(first),
            span: info_span!("session", id = tracing::field::Empty),
        }
    }

    /// The `session{id}` span; request spans are its children.
    pub(crate) fn span(&self) -> Span {
        self.span.clone()
    }

    /// Runs until the session ends.
    pub(crate) async fn run(mut self) {
        let span = self.span.clone();
        async move {
            let end = self.connect_loop().await;
            self.finish(end);
        }
        .instrument(span)
        .await
    }

    fn next_host(&mut self) -> String {
        let host = self.cfg.hosts[self.next_host].clone();
        self.next_host = (self.next_host + 1) % self.cfg.hosts.len();
        host
    }

    /// Bound on one connection attempt (TCP connect + handshake): the session timeout
    /// shared among the hosts, as ZooKeeper's Java client does, within sane limits.
    fn attempt_timeout(&self) -> Duration {
        let share = self.state.timeout() / self.cfg.hosts.len().max(1) as u32;
        share
            .max(Duration::from_millis(500))
            .min(self.cfg.connection_timeout.max(Duration::from_millis(500)))
    }

    async fn connect_loop(&mut self) -> End {
        let started = Instant::now();
        let mut backoff = backoff::ExponentialBackoffBuilder::new()
            .with_initial_interval(Duration::from_millis(20))
            .with_max_interval(Duration::from_secs(1))
            .with_randomization_factor(0.5)
            .with_max_elapsed_time(None)
            .build();
        let mut disconnected_at: Option<Instant> = None;
        let mut lost_published = false;
        let shutdown = self.shutdown.clone();
        loop {
            let host = self.next_host();
            let attempt = tokio::select! {
                biased;
                _ = shutdown.cancelled() => return End::Closed,
                r = self.handshake(&host) => r,
            };
            match attempt {
                Ok((stream, Handshake::New | Handshake::Resumed, read_only)) => {
                    lost_published = false;
                    self.on_connected(&host, read_only);
                    let connected_at = Instant::now();
                    match self.serve(stream).await {
                        Exit::Lost(reason) => {
                            let in_flight = self.state.pending_len();
                            warn!(host, %reason, in_flight, "connection lost; reconnecting");
                            self.disconnect();
                            disconnected_at = Some(Instant::now());
                            // A connection that broke at once (a server that accepts and
                            // drops us) must not turn into a busy reconnect loop.
                            if connected_at.elapsed() >= STABLE_CONNECTION {
                                backoff.reset();
                                continue;
                            }
                            let delay = backoff.next_backoff().unwrap_or(Duration::from_secs(1));
                            if let Some(end) = self.wait_disconnected(delay).await {
                                return end;
                            }
                            continue;
                        }
                        Exit::Closed | Exit::Shutdown => return End::Closed,
                        Exit::AuthFailed => return End::AuthFailed,
                    }
                }
                Ok((_, Handshake::Expired, _)) => {
                    info!(session = %SessionId(self.state.session_id()), "session expired");
                    if !self.cfg.session_renewal || self.first.is_some() {
                        return End::Expired;
                    }
                    if self.expire_and_renew() {
                        return End::Closed;
                    }
                    continue;
                }
                Ok((_, Handshake::Mismatch, _)) => {
                    warn!(
                        host,
                        "server answered a resume with another session; trying another"
                    )
                }
                Err(reason) => debug!(host, %reason, "connection attempt failed"),
            }

            // The attempt failed.
            if let Some(first) = &self.first {
                if first.is_closed() {
                    return End::GaveUp;
                }
                if started.elapsed() >= self.cfg.connection_timeout {
                    return End::GaveUp;
                }
            } else if self.fail_queued(&Error::ConnectionLoss) {
                return End::Closed;
            }
            let mut delay = if self.next_host == 0 {
                backoff.next_backoff().unwrap_or(Duration::from_secs(1))
            } else {
                Duration::ZERO
            };
            if let Some(at) = disconnected_at.filter(|_| !lost_published) {
                let lost_at = at + self.state.timeout();
                if Instant::now() >= lost_at {
                    warn!(
                        "disconnected for longer than the session timeout; session probably lost"
                    );
                    self.publish(KeeperState::Disconnected, ConnectionState::Lost);
                    lost_published = true;
                } else {
                    delay = delay.min(lost_at - Instant::now());
                }
            }
            if self.first.is_some() {
                let left = self
                    .cfg
                    .connection_timeout
                    .saturating_sub(started.elapsed());
                delay = delay.min(left);
            }
            if let Some(end) = self.wait_disconnected(delay).await {
                return end;
            }
        }
    }

    /// Sleeps while disconnected. Requests arriving meanwhile fail with ConnectionLoss (as
    /// with ZooKeeper's Java client); a close ends the task.
    async fn wait_disconnected(&mut self, delay: Duration) -> Option<End> {
        if delay.is_zero() {
            return None;
        }
        let deadline = Instant::now() + delay;
        let shutdown = self.shutdown.clone();
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Some(End::Closed),
                _ = tokio::time::sleep_until(deadline) => return None,
                cmd = self.commands.recv(), if self.first.is_none() => match cmd {
                    None => return Some(End::Closed),
                    Some(cmd) => {
                        if self.reject(cmd, &Error::ConnectionLoss) {
                            return Some(End::Closed);
                        }
                    }
                },
            }
        }
    }

    /// Fails every queued command with `err`. Returns true if the client is to close (a
    /// close was queued, or every handle is gone).
    fn fail_queued(&mut self, err: &Error) -> bool {
        loop {
            match self.commands.try_recv() {
                Ok(cmd) => {
                    if self.reject(cmd, err) {
                        return true;
                    }
                }
                Err(mpsc::error::TryRecvError::Empty) => return false,
                Err(mpsc::error::TryRecvError::Disconnected) => return true,
            }
        }
    }

    /// Answers a command that cannot be sent. Returns true for a close (whose
    /// acknowledgement is kept for `finish`).
    fn reject(&mut self, cmd: Command, err: &Error) -> bool {
        match cmd {
            Command::Request(op) => {
                if let Some(tx) = op.reply {
                    let _ = tx.send(Err(err.clone()));
                }
                false
            }
            Command::Auth { reply, .. } => {
                let _ = reply.send(Err(err.clone()));
                false
            }
            Command::Close { reply } => {
                self.close_acks.push(reply);
                true
            }
        }
    }

    /// Connects to `host` and performs the handshake, within the attempt timeout.
    async fn handshake(&mut self, host: &str) -> Result<(TcpStream, Handshake, bool), String> {
        let timeout = self.attempt_timeout();
        let request = self.state.connect_request(self.cfg.read_only);
        let max = self.cfg.max_buffer;
        self.read_buf.clear();
        let read_buf = &mut self.read_buf;
        let attempt = async move {
            let mut stream = TcpStream::connect(host).await.map_err(|e| e.to_string())?;
            stream.set_nodelay(true).map_err(|e| e.to_string())?;
            let mut frame = Vec::with_capacity(64);
            let at = begin_frame(&mut frame);
            request.write(&mut frame);
            end_frame(&mut frame, at);
            stream.write_all(&frame).await.map_err(|e| e.to_string())?;
            loop {
                match frame_len(read_buf, max) {
                    Ok(len) => {
                        let payload = read_buf.split_to(4 + len);
                        let resp =
                            ConnectResponse::read(&mut Reader::with_max_len(&payload[4..], max))
                                .map_err(|e| format!("malformed ConnectResponse: {e}"))?;
                        return Ok((stream, resp));
                    }
                    Err(DecodeError::Incomplete) => {
                        if stream.read_buf(read_buf).await.map_err(|e| e.to_string())? == 0 {
                            return Err("server closed the connection during the handshake".into());
                        }
                    }
                    Err(e) => return Err(format!("bad handshake frame: {e}")),
                }
            }
        };
        let (stream, resp) = tokio::time::timeout(timeout, attempt)
            .await
            .map_err(|_| format!("handshake timed out after {timeout:?}"))??;
        let outcome = self.state.on_connect_response(&resp);
        Ok((stream, outcome, resp.read_only == Some(true)))
    }

    fn on_connected(&mut self, host: &str, read_only: bool) {
        let id = SessionId(self.state.session_id());
        self.span.record("id", tracing::field::display(id));
        info!(
            host,
            session = %id,
            timeout_ms = self.state.timeout().as_millis() as u64,
            read_only,
            epoch = self.state.epoch(),
            last_zxid = %corral_proto::Zxid(self.state.last_zxid()),
            "session connected"
        );
        let keeper = if read_only {
            KeeperState::ConnectedReadOnly
        } else {
            KeeperState::SyncConnected
        };
        let conn = match (read_only, self.ever_connected) {
            (true, _) => ConnectionState::ReadOnly,
            (false, false) => ConnectionState::Connected,
            (false, true) => ConnectionState::Reconnected,
        };
        self.ever_connected = true;
        self.publish(keeper, conn);
    }

    /// After a lost connection: fail what was in flight, tell observers.
    fn disconnect(&mut self) {
        self.state.fail_in_flight(&Error::ConnectionLoss);
        self.read_buf.clear();
        self.write_buf.clear();
        self.publish(KeeperState::Disconnected, ConnectionState::Suspended);
    }

    /// The session expired but the client renews it: report, then start a new session.
    /// Returns true if a close was queued meanwhile.
    fn expire_and_renew(&mut self) -> bool {
        self.publish(KeeperState::Expired, ConnectionState::Lost);
        self.state.fail_in_flight(&Error::SessionExpired);
        self.state.watches.end_all(&Error::SessionExpired);
        let close = self.fail_queued(&Error::SessionExpired);
        self.state.renew();
        close
    }

    fn publish(&self, keeper_state: KeeperState, connection_state: ConnectionState) {
        self.status.send_replace(SessionStatus {
            keeper_state,
            connection_state,
            epoch: self.state.epoch(),
            session_id: SessionId(self.state.session_id()),
            session_timeout: self.state.timeout(),
            password: self.state.password().to_vec(),
        });
    }

    /// Runs one connection until it ends.
    async fn serve(&mut self, stream: TcpStream) -> Exit {
        let (mut reader, mut writer) = stream.into_split();
        self.write_buf.clear();
        for (scheme, auth) in self.state.resend_auths() {
            self.write_auth(&scheme, auth);
        }
        for request in self.state.set_watches_requests() {
            debug!(op = ?request.op(), "re-registering watches");
            self.write_internal(&request);
        }
        self.signal_first_if_ready();

        let timeout = self.state.timeout();
        let read_timeout = (timeout * 2 / 3).max(Duration::from_millis(200));
        let ping_interval = (timeout / 3).max(Duration::from_millis(100));
        let mut last_recv = Instant::now();
        let mut last_send = Instant::now();
        let mut closing = false;
        let shutdown = self.shutdown.clone();
        loop {
            let take_commands = !closing && self.write_buf.len() < WRITE_HIGH_WATER;
            let ping_due = !closing && self.write_buf.is_empty();
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Exit::Shutdown,
                r = reader.read_buf(&mut self.read_buf) => match r {
                    Ok(0) if closing => return Exit::Closed,
                    Ok(0) => return Exit::Lost("server closed the connection".into()),
                    Ok(n) => {
                        trace!(bytes = n, "read");
                        last_recv = Instant::now();
                        if let Some(exit) = self.process_frames() {
                            return exit;
                        }
                    }
                    Err(e) if closing => {
                        debug!(error = %e, "read failed while closing");
                        return Exit::Closed;
                    }
                    Err(e) => return Exit::Lost(format!("read failed: {e}")),
                },
                r = writer.write(&self.write_buf), if !self.write_buf.is_empty() => match r {
                    Ok(n) => {
                        trace!(bytes = n, "wrote");
                        self.write_buf.advance(n);
                        last_send = Instant::now();
                    }
                    Err(e) if closing => {
                        debug!(error = %e, "write failed while closing");
                        return Exit::Closed;
                    }
                    Err(e) => return Exit::Lost(format!("write failed: {e}")),
                },
                cmd = self.commands.recv(), if take_commands => {
                    let mut next = cmd;
                    loop {
                        match next {
                            // Every handle is gone: close the session, as `Client::close` would.
                            None => {
                                self.write_close_session();
                                closing = true;
                                break;
                            }
                            Some(cmd) => {
                                if self.take_command(cmd) {
                                    closing = true;
                                    break;
                                }
                            }
                        }
                        if self.write_buf.len() >= WRITE_HIGH_WATER {
                            break;
                        }
                        next = match self.commands.try_recv() {
                            Ok(cmd) => Some(cmd),
                            Err(mpsc::error::TryRecvError::Empty) => break,
                            Err(mpsc::error::TryRecvError::Disconnected) => None,
                        };
                    }
                },
                _ = tokio::time::sleep_until(last_send + ping_interval), if ping_due => {
                    self.write_ping();
                }
                _ = tokio::time::sleep_until(last_recv + read_timeout) => {
                    if closing {
                        return Exit::Closed;
                    }
                    return Exit::Lost(format!("no message from the server for {read_timeout:?}"));
                }
            }
        }
    }

    /// Writes a command's frame. Returns true if it was a close.
    fn take_command(&mut self, cmd: Command) -> bool {
        match cmd {
            Command::Request(op) => {
                self.write_op(op);
                false
            }
            Command::Auth {
                scheme,
                auth,
                reply,
            } => {
                self.write_auth(&scheme, auth.clone());
                self.state.push_auth(scheme, auth, reply);
                false
            }
            Command::Close { reply } => {
                self.close_acks.push(reply);
                self.write_close_session();
                true
            }
        }
    }

    fn write_op(&mut self, mut op: Operation) {
        if op.frame.len() - 4 > self.cfg.max_buffer {
            if let Some(tx) = op.reply {
                let _ = tx.send(Err(Error::bad_arguments(format!(
                    "request of {} bytes exceeds jute.maxbuffer ({} bytes)",
                    op.frame.len() - 4,
                    self.cfg.max_buffer
                ))));
            }
            return;
        }
        let xid = self.state.next_xid();
        patch_xid(&mut op.frame, xid);
        op.span.record("xid", xid);
        op.span.in_scope(|| debug!("sent"));
        self.write_buf.extend_from_slice(&op.frame);
        self.state.push_pending(Pending {
            xid,
            op: op.op,
            reply: op.reply,
            watch: op.watch,
            span: op.span,
        });
    }

    fn write_internal(&mut self, request: &Request) {
        let span = self.internal_span(request);
        self.write_op(Operation::new(request, None, span));
    }

    /// The span of a request the client sends on its own behalf.
    fn internal_span(&self, request: &Request) -> Span {
        tracing::debug_span!(
            parent: &self.span,
            "req",
            op = ?request.op(),
            path = request.path().unwrap_or(""),
            xid = tracing::field::Empty,
            internal = true
        )
    }

    fn write_close_session(&mut self) {
        self.write_internal(&Request::CloseSession);
    }

    fn write_ping(&mut self) {
        let mut frame = Vec::with_capacity(12);
        let at = begin_frame(&mut frame);
        RequestHeader {
            xid: XID_PING,
            op: OpCode::Ping as i32,
        }
        .write(&mut frame);
        end_frame(&mut frame, at);
        trace!("ping");
        self.write_buf.extend_from_slice(&frame);
    }

    fn write_auth(&mut self, scheme: &str, auth: Vec<u8>) {
        let mut frame = Vec::with_capacity(32 + auth.len());
        let at = begin_frame(&mut frame);
        RequestHeader {
            xid: XID_AUTH,
            op: OpCode::Auth as i32,
        }
        .write(&mut frame);
        AuthPacket {
            auth_type: 0,
            scheme: scheme.to_owned(),
            auth: Some(auth),
        }
        .write(&mut frame);
        end_frame(&mut frame, at);
        self.write_buf.extend_from_slice(&frame);
    }

    /// Tells `connect` the session is usable once no credential given to the builder is
    /// still waiting for the server's verdict.
    fn signal_first_if_ready(&mut self) {
        if !self.state.startup_auths_in_flight() {
            if let Some(first) = self.first.take() {
                let _ = first.send(Ok(()));
            }
        }
    }

    /// Decodes and handles every complete frame in the read buffer.
    fn process_frames(&mut self) -> Option<Exit> {
        loop {
            let len = match frame_len(&self.read_buf, self.cfg.max_buffer) {
                Ok(len) => len,
                Err(DecodeError::Incomplete) => {
                    // Make room for the rest of a large frame at once.
                    if let Some(prefix) = self.read_buf.get(..4) {
                        let want =
                            4 + i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]])
                                as usize;
                        self.read_buf
                            .reserve(want.saturating_sub(self.read_buf.len()));
                    }
                    return None;
                }
                Err(e) => return Some(Exit::Lost(format!("bad frame from server: {e}"))),
            };
            let frame = self.read_buf.split_to(4 + len).freeze();
            if let Some(exit) = self.process_frame(&frame[4..]) {
                return Some(exit);
            }
        }
    }

    fn process_frame(&mut self, payload: &[u8]) -> Option<Exit> {
        let mut r = Reader::with_max_len(payload, self.cfg.max_buffer);
        let header = match ReplyHeader::read(&mut r) {
            Ok(h) => h,
            Err(e) => return Some(Exit::Lost(format!("malformed reply header: {e}"))),
        };
        let body = r.rest();
        match header.xid {
            XID_NOTIFICATION => {
                let event = match WatcherEvent::read(&mut Reader::with_max_len(
                    body,
                    self.cfg.max_buffer,
                )) {
                    Ok(ev) => ev,
                    Err(e) => return Some(Exit::Lost(format!("malformed notification: {e}"))),
                };
                debug!(event_type = event.event_type, path = %event.path, "notification");
                let unwanted = self.state.watches.dispatch(&event, header.zxid);
                for (path, kind) in unwanted {
                    self.remove_unwanted_watch(path, kind);
                }
                None
            }
            XID_PING => None,
            XID_AUTH => match self.state.on_auth_reply(header.err) {
                AuthOutcome::Ok => {
                    self.signal_first_if_ready();
                    None
                }
                AuthOutcome::CallerFailed => {
                    warn!(err = header.err, "authentication refused");
                    None
                }
                AuthOutcome::Fatal => {
                    warn!(err = header.err, "authentication refused at connect");
                    Some(Exit::AuthFailed)
                }
                AuthOutcome::Unexpected => Some(Exit::Lost("unexpected auth reply".into())),
            },
            xid => {
                let pending = match self.state.take_pending(xid) {
                    Ok(p) => p,
                    Err(e) => return Some(Exit::Lost(format!("reply does not match: {e:?}"))),
                };
                self.state.observe_zxid(header.zxid);
                let result = if header.err != 0 {
                    Err(Error::from_code(header.err))
                } else {
                    match Response::decode(pending.op, body) {
                        Ok(resp) => Ok(resp),
                        Err(e) => {
                            if let Some(tx) = pending.reply {
                                let _ = tx.send(Err(Error::ConnectionLoss));
                            }
                            return Some(Exit::Lost(format!(
                                "malformed {:?} reply: {e}",
                                pending.op
                            )));
                        }
                    }
                };
                pending.span.in_scope(|| match &result {
                    Ok(_) => debug!(zxid = header.zxid, "reply"),
                    Err(e) => debug!(zxid = header.zxid, error = %e, "error reply"),
                });
                let fallback = self.removal_fallback(&pending, &result);
                if pending.reply.is_none() && pending.op != OpCode::CloseSession {
                    if let Err(e) = &result {
                        if pending.op != OpCode::RemoveWatches {
                            warn!(op = ?pending.op, error = %e, "internal request failed");
                        }
                    }
                }
                let closed = pending.op == OpCode::CloseSession;
                self.state.complete(pending, result);
                if let Some(path) = fallback {
                    if !self.state.watches.has_any(&path) {
                        self.remove_unwanted_watch(path, WatcherType::Any);
                    }
                }
                closed.then_some(Exit::Closed)
            }
        }
    }

    fn remove_unwanted_watch(&mut self, path: String, kind: WatcherType) {
        debug!(path, ?kind, "removing a watch nobody listens to");
        let request = Request::RemoveWatches(WatchesRequest {
            path: path.clone(),
            watcher_type: kind as i32,
        });
        let span = self.internal_span(&request);
        let mut op = Operation::new(&request, None, span);
        // Only the persistent kinds need the action: it marks the request for the fallback.
        if matches!(
            kind,
            WatcherType::Persistent | WatcherType::PersistentRecursive
        ) {
            op.watch = Some(WatchAction::Remove { path, kind });
        }
        self.write_op(op);
    }

    /// Servers before ZooKeeper 3.9 (ZOOKEEPER-4472) cannot remove persistent watches by
    /// kind. When the client's own cleanup of a dropped persistent watcher fails for that
    /// reason, the path is returned: if no local watch is left on it, all of the session's
    /// watches there can go (`WatcherType::Any`).
    fn removal_fallback(
        &self,
        pending: &Pending,
        result: &Result<Response, Error>,
    ) -> Option<String> {
        match (&pending.reply, &pending.watch, result) {
            (None, Some(WatchAction::Remove { path, kind }), Err(e))
                if *e != Error::NoWatcher
                    && matches!(
                        kind,
                        WatcherType::Persistent | WatcherType::PersistentRecursive
                    ) =>
            {
                Some(path.clone())
            }
            _ => None,
        }
    }

    /// Ends the task: reports the final state, fails everything still waiting.
    fn finish(&mut self, end: End) {
        let (keeper, conn, err) = match end {
            End::Closed | End::GaveUp => (
                KeeperState::Closed,
                ConnectionState::Closed,
                Error::ClientClosed,
            ),
            End::Expired => (
                KeeperState::Expired,
                ConnectionState::Lost,
                Error::SessionExpired,
            ),
            End::AuthFailed => (
                KeeperState::AuthFailed,
                ConnectionState::Lost,
                Error::AuthFailed,
            ),
        };
        match end {
            End::Closed => info!("session closed"),
            End::GaveUp => info!("gave up connecting"),
            End::Expired => warn!("session expired"),
            End::AuthFailed => warn!("authentication failed; client stopped"),
        }
        if let Some(first) = self.first.take() {
            let first_err = match end {
                End::GaveUp => Error::Timeout,
                _ => err.clone(),
            };
            let _ = first.send(Err(first_err));
        }
        // Publish first: a handle whose send fails reads the reason from the status.
        self.publish(keeper, conn);
        self.state.fail_in_flight(&err);
        self.state.watches.end_all(&err);
        self.commands.close();
        while let Ok(cmd) = self.commands.try_recv() {
            self.reject(cmd, &err);
        }
        for ack in self.close_acks.drain(..) {
            let _ = ack.send(());
        }
    }
}
