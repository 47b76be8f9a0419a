//! Pure session bookkeeping: xids, the FIFO of requests awaiting replies, auth packets in
//! flight, the watch tables and the last zxid seen. No IO and no clock, so every rule here
//! is unit-tested without a server.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use corral_proto::{
    ConnectRequest, ConnectResponse, EventType, OpCode, Request, Response, SetWatches, SetWatches2,
    WatcherEvent, WatcherType, Zxid,
};
use tokio::sync::oneshot;
use tracing::Span;

use super::{ReplyTx, WatchAction};
use crate::watcher::{Delivery, OneshotTx, PersistentTx, WatchedEvent};
use crate::Error;

/// Path characters per setWatches frame, as ZooKeeper's Java client batches them.
pub(crate) const SET_WATCHES_BATCH_CHARS: usize = 128 * 1024;

/// A request written to the socket, waiting for its reply.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) xid: i32,
    pub(crate) op: OpCode,
    pub(crate) reply: Option<ReplyTx>,
    pub(crate) watch: Option<WatchAction>,
    pub(crate) span: Span,
}

/// An auth packet written to the socket, waiting for its reply (matched in order).
#[derive(Debug)]
struct AuthInFlight {
    scheme: String,
    auth: Vec<u8>,
    /// `None` for packets re-sent after a reconnect.
    reply: Option<oneshot::Sender<Result<(), Error>>>,
}

/// The result of matching an auth reply.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AuthOutcome {
    /// Accepted (or a reply for a caller who gave up).
    Ok,
    /// A caller's `add_auth` was refused: the caller is told, the server closes the
    /// connection, the session goes on.
    CallerFailed,
    /// An auth re-sent at connect time was refused: the client cannot go on.
    Fatal,
    /// An auth reply nobody waits for: the server is confused.
    Unexpected,
}

/// How a handshake ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handshake {
    /// A new session (first connect, or after a renewal).
    New,
    /// The same session, resumed.
    Resumed,
    /// The server says the session is expired or invalid.
    Expired,
    /// The server answered a resume with another session: a protocol violation.
    Mismatch,
}

/// Why a reply could not be matched.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum MatchError {
    /// A reply arrived with nothing pending.
    NothingPending { xid: i32 },
    /// The reply's xid is not the oldest pending one.
    OutOfOrder { expected: i32, got: i32 },
}

/// Everything the session remembers across connections.
#[derive(Debug)]
pub(crate) struct SessionState {
    next_xid: i32,
    pending: VecDeque<Pending>,
    auths_in_flight: VecDeque<AuthInFlight>,
    /// Credentials accepted so far, re-sent after every reconnect.
    auths: Vec<(String, Vec<u8>)>,
    last_zxid: i64,
    session_id: i64,
    password: Vec<u8>,
    requested_timeout: Duration,
    negotiated_timeout: Duration,
    epoch: u64,
    pub(crate) watches: WatchRegistry,
}

impl SessionState {
    /// A state for a new session, or for resuming `resume = (id, password)`.
    pub(crate) fn new(
        requested_timeout: Duration,
        auths: Vec<(String, Vec<u8>)>,
        resume: Option<(i64, Vec<u8>)>,
    ) -> Self {
        let (session_id, password, epoch) = match resume {
            Some((id, pw)) => (id, pw, 1),
            None => (0, vec![0; 16], 0),
        };
        SessionState {
            next_xid: 1,
            pending: VecDeque::new(),
            auths_in_flight: VecDeque::new(),
            auths,
            last_zxid: 0,
            session_id,
            password,
            requested_timeout,
            negotiated_timeout: requested_timeout,
            epoch,
            watches: WatchRegistry::default(),
        }
    }

    /// The next request xid: positive, increasing, wrapping back to 1.
    pub(crate) fn next_xid(&mut self) -> i32 {
        let xid = self.next_xid;
        self.next_xid = if xid == i32::MAX { 1 } else { xid + 1 };
        xid
    }

    /// The session id (0 before the first handshake).
    pub(crate) fn session_id(&self) -> i64 {
        self.session_id
    }

    /// The session password.
    pub(crate) fn password(&self) -> &[u8] {
        &self.password
    }

    /// The negotiated session timeout (the requested one before the first handshake).
    pub(crate) fn timeout(&self) -> Duration {
        self.negotiated_timeout
    }

    /// How many sessions this client has had.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The highest zxid seen in a reply.
    pub(crate) fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    /// Records the zxid of a reply header.
    pub(crate) fn observe_zxid(&mut self, zxid: i64) {
        if zxid > self.last_zxid {
            self.last_zxid = zxid;
        }
    }

    /// The ConnectRequest for the next connection.
    pub(crate) fn connect_request(&self, read_only: bool) -> ConnectRequest {
        ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: self.last_zxid,
            timeout_ms: self.requested_timeout.as_millis().min(i32::MAX as u128) as i32,
            session_id: self.session_id,
            passwd: self.password.clone(),
            read_only: Some(read_only),
        }
    }

    /// Takes in the server's ConnectResponse.
    pub(crate) fn on_connect_response(&mut self, resp: &ConnectResponse) -> Handshake {
        if resp.timeout_ms <= 0 {
            return Handshake::Expired;
        }
        let outcome = if self.session_id == 0 {
            self.epoch += 1;
            Handshake::New
        } else if resp.session_id == self.session_id {
            Handshake::Resumed
        } else {
            return Handshake::Mismatch;
        };
        self.session_id = resp.session_id;
        self.password = resp.passwd.clone();
        self.negotiated_timeout = Duration::from_millis(resp.timeout_ms as u64);
        outcome
    }

    /// Forgets the expired session so that the next handshake creates a new one.
    pub(crate) fn renew(&mut self) {
        self.session_id = 0;
        self.password = vec![0; 16];
        self.negotiated_timeout = self.requested_timeout;
    }

    /// Records a request just written with `xid`.
    pub(crate) fn push_pending(&mut self, pending: Pending) {
        self.pending.push_back(pending);
    }

    /// Number of requests awaiting replies.
    pub(crate) fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Takes the oldest pending request, which must have `xid`.
    pub(crate) fn take_pending(&mut self, xid: i32) -> Result<Pending, MatchError> {
        match self.pending.front() {
            None => Err(MatchError::NothingPending { xid }),
            Some(p) if p.xid != xid => Err(MatchError::OutOfOrder {
                expected: p.xid,
                got: xid,
            }),
            Some(_) => Ok(self.pending.pop_front().expect("front exists")),
        }
    }

    /// Completes a request: applies its watch action, then hands the result to the caller
    /// (who may have gone; that is fine).
    pub(crate) fn complete(&mut self, pending: Pending, result: Result<Response, Error>) {
        if let Some(action) = pending.watch {
            self.watches.apply(action, &result);
        }
        if let Some(tx) = pending.reply {
            let _ = tx.send(result);
        }
    }

    /// The credentials to re-send after a reconnect, recorded as in flight.
    pub(crate) fn resend_auths(&mut self) -> Vec<(String, Vec<u8>)> {
        for (scheme, auth) in &self.auths {
            self.auths_in_flight.push_back(AuthInFlight {
                scheme: scheme.clone(),
                auth: auth.clone(),
                reply: None,
            });
        }
        self.auths.clone()
    }

    /// Records a caller's auth packet just written.
    pub(crate) fn push_auth(
        &mut self,
        scheme: String,
        auth: Vec<u8>,
        reply: oneshot::Sender<Result<(), Error>>,
    ) {
        self.auths_in_flight.push_back(AuthInFlight {
            scheme,
            auth,
            reply: Some(reply),
        });
    }

    /// Whether a credential re-sent at connect time still awaits the server's verdict.
    pub(crate) fn startup_auths_in_flight(&self) -> bool {
        self.auths_in_flight.iter().any(|a| a.reply.is_none())
    }

    /// Matches an auth reply (xid -4) with error code `err`.
    pub(crate) fn on_auth_reply(&mut self, err: i32) -> AuthOutcome {
        let Some(a) = self.auths_in_flight.pop_front() else {
            return AuthOutcome::Unexpected;
        };
        match (err, a.reply) {
            (0, reply) => {
                if reply.is_some()
                    && !self
                        .auths
                        .iter()
                        .any(|(s, x)| *s == a.scheme && *x == a.auth)
                {
                    self.auths.push((a.scheme, a.auth));
                }
                if let Some(tx) = reply {
                    let _ = tx.send(Ok(()));
                }
                AuthOutcome::Ok
            }
            (err, Some(tx)) => {
                let _ = tx.send(Err(Error::from_code(err)));
                AuthOutcome::CallerFailed
            }
            (_, None) => AuthOutcome::Fatal,
        }
    }

    /// Fails every request and auth packet in flight (the connection is gone).
    pub(crate) fn fail_in_flight(&mut self, err: &Error) {
        for p in self.pending.drain(..) {
            if let Some(tx) = p.reply {
                let _ = tx.send(Err(err.clone()));
            }
        }
        for a in self.auths_in_flight.drain(..) {
            if let Some(tx) = a.reply {
                let _ = tx.send(Err(err.clone()));
            }
        }
    }

    /// setWatches / setWatches2 requests that re-arm every live watch after a reconnect,
    /// relative to the last zxid seen, batched by path characters.
    pub(crate) fn set_watches_requests(&mut self) -> Vec<Request> {
        self.watches
            .set_watches_requests(self.last_zxid, SET_WATCHES_BATCH_CHARS)
    }
}

/// The client's watch tables, keyed by server path.
///
/// Mirrors the server's tables so that each notification can be routed to every local
/// watcher it concerns, and so that all of them can be re-registered after a reconnect.
#[derive(Debug, Default)]
pub(crate) struct WatchRegistry {
    data: HashMap<String, Vec<OneshotTx>>,
    exist: HashMap<String, Vec<OneshotTx>>,
    child: HashMap<String, Vec<OneshotTx>>,
    persistent: HashMap<String, Vec<PersistentTx>>,
    recursive: HashMap<String, Vec<PersistentTx>>,
}

impl WatchRegistry {
    /// Applies a request's watch action given its result.
    fn apply(&mut self, action: WatchAction, result: &Result<Response, Error>) {
        match (action, result) {
            (WatchAction::Data { path, tx }, Ok(_)) | (WatchAction::Exists { path, tx }, Ok(_)) => {
                self.data.entry(path).or_default().push(tx)
            }
            (WatchAction::Exists { path, tx }, Err(Error::NoNode)) => {
                self.exist.entry(path).or_default().push(tx)
            }
            (WatchAction::Child { path, tx }, Ok(_)) => {
                self.child.entry(path).or_default().push(tx)
            }
            (
                WatchAction::Persistent {
                    path,
                    recursive,
                    tx,
                },
                Ok(_),
            ) => {
                let table = if recursive {
                    &mut self.recursive
                } else {
                    &mut self.persistent
                };
                table.entry(path).or_default().push(tx)
            }
            (WatchAction::Remove { path, kind }, Ok(_)) => self.remove_local(&path, kind),
            // Failed: the watch was not set; dropping the sender is all there is to do.
            _ => {}
        }
    }

    /// Removes local watches of `kind` on `path`, telling one-shot watchers with a
    /// `*WatchRemoved` event and ending persistent ones.
    fn remove_local(&mut self, path: &str, kind: WatcherType) {
        let removed = |event_type| WatchedEvent {
            event_type,
            path: path.to_owned(),
            zxid: None,
        };
        let any = kind == WatcherType::Any;
        if any || kind == WatcherType::Data {
            for tx in take(&mut self.data, path).chain(take(&mut self.exist, path)) {
                let _ = tx.send(Ok(removed(EventType::DataWatchRemoved)));
            }
        }
        if any || kind == WatcherType::Children {
            for tx in take(&mut self.child, path) {
                let _ = tx.send(Ok(removed(EventType::ChildWatchRemoved)));
            }
        }
        if any || kind == WatcherType::Persistent {
            for tx in self.persistent.remove(path).unwrap_or_default() {
                tx.end(None);
            }
        }
        if any || kind == WatcherType::PersistentRecursive {
            for tx in self.recursive.remove(path).unwrap_or_default() {
                tx.end(None);
            }
        }
    }

    /// Routes a server notification to every local watcher it concerns.
    ///
    /// Returns the server-side persistent watches nobody wants any more (their local
    /// watchers were dropped or lagged), which the caller should remove with removeWatches.
    pub(crate) fn dispatch(&mut self, ev: &WatcherEvent, zxid: i64) -> Vec<(String, WatcherType)> {
        let Some(event_type) = EventType::from_i32(ev.event_type) else {
            tracing::warn!(
                event_type = ev.event_type,
                "ignoring notification of unknown type"
            );
            return Vec::new();
        };
        let path = ev.path.as_str();
        let event = WatchedEvent {
            event_type,
            path: path.to_owned(),
            zxid: (zxid > 0).then_some(Zxid(zxid)),
        };
        let mut oneshots: Vec<OneshotTx> = Vec::new();
        let (data_like, child_like) = match event_type {
            EventType::NodeCreated | EventType::NodeDataChanged => (true, false),
            EventType::NodeDeleted => (true, true),
            EventType::NodeChildrenChanged => (false, true),
            _ => return Vec::new(),
        };
        if data_like {
            oneshots.extend(take(&mut self.data, path));
            oneshots.extend(take(&mut self.exist, path));
        }
        if child_like {
            oneshots.extend(take(&mut self.child, path));
        }
        for tx in oneshots {
            let _ = tx.send(Ok(event.clone()));
        }

        let mut unwanted = Vec::new();
        if deliver_all(&mut self.persistent, path, &event) {
            unwanted.push((path.to_owned(), WatcherType::Persistent));
        }
        if event_type != EventType::NodeChildrenChanged {
            for ancestor in ancestors(path) {
                if deliver_all(&mut self.recursive, ancestor, &event) {
                    unwanted.push((ancestor.to_owned(), WatcherType::PersistentRecursive));
                }
            }
        }
        unwanted
    }

    /// Ends every watch with `err` (the session ended).
    pub(crate) fn end_all(&mut self, err: &Error) {
        for (_, txs) in self
            .data
            .drain()
            .chain(self.exist.drain())
            .chain(self.child.drain())
        {
            for tx in txs {
                let _ = tx.send(Err(err.clone()));
            }
        }
        for (_, txs) in self.persistent.drain().chain(self.recursive.drain()) {
            for tx in txs {
                tx.end(Some(err.clone()));
            }
        }
    }

    /// Whether any local watch of any kind is set on `path`.
    pub(crate) fn has_any(&self, path: &str) -> bool {
        self.data.contains_key(path)
            || self.exist.contains_key(path)
            || self.child.contains_key(path)
            || self.persistent.contains_key(path)
            || self.recursive.contains_key(path)
    }

    /// Whether any watch is registered.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.data.is_empty()
            && self.exist.is_empty()
            && self.child.is_empty()
            && self.persistent.is_empty()
            && self.recursive.is_empty()
    }

    /// Drops watchers whose owners are gone, then builds the setWatches requests.
    fn set_watches_requests(&mut self, relative_zxid: i64, batch_chars: usize) -> Vec<Request> {
        for table in [&mut self.data, &mut self.exist, &mut self.child] {
            table.retain(|_, txs| {
                txs.retain(|tx| !tx.is_closed());
                !txs.is_empty()
            });
        }
        for table in [&mut self.persistent, &mut self.recursive] {
            table.retain(|_, txs| {
                txs.retain(|tx| !tx.is_closed());
                !txs.is_empty()
            });
        }
        let with_persistent = !self.persistent.is_empty() || !self.recursive.is_empty();
        let lists = [
            sorted_keys(&self.data),
            sorted_keys(&self.exist),
            sorted_keys(&self.child),
            sorted_keys(&self.persistent),
            sorted_keys(&self.recursive),
        ];
        let mut requests = Vec::new();
        let mut batch: [Vec<String>; 5] = Default::default();
        let mut chars = 0;
        for (i, list) in lists.into_iter().enumerate() {
            for path in list {
                if chars > 0 && chars + path.len() > batch_chars {
                    requests.push(set_watches(
                        relative_zxid,
                        std::mem::take(&mut batch),
                        with_persistent,
                    ));
                    chars = 0;
                }
                chars += path.len();
                batch[i].push(path);
            }
        }
        if chars > 0 {
            requests.push(set_watches(relative_zxid, batch, with_persistent));
        }
        requests
    }
}

fn set_watches(relative_zxid: i64, lists: [Vec<String>; 5], persistent: bool) -> Request {
    let [data_watches, exist_watches, child_watches, persistent_watches, persistent_recursive_watches] =
        lists;
    if persistent {
        Request::SetWatches2(SetWatches2 {
            relative_zxid,
            data_watches,
            exist_watches,
            child_watches,
            persistent_watches,
            persistent_recursive_watches,
        })
    } else {
        Request::SetWatches(SetWatches {
            relative_zxid,
            data_watches,
            exist_watches,
            child_watches,
        })
    }
}

fn sorted_keys<V>(table: &HashMap<String, V>) -> Vec<String> {
    let mut keys: Vec<String> = table.keys().cloned().collect();
    keys.sort();
    keys
}

fn take<'a>(
    table: &'a mut HashMap<String, Vec<OneshotTx>>,
    path: &str,
) -> impl Iterator<Item = OneshotTx> + 'a {
    table.remove(path).unwrap_or_default().into_iter()
}

/// Delivers `event` to the persistent watchers on `path`, dropping those that are gone or
/// lagged. Returns true when watchers existed on `path` and none is left.
fn deliver_all(
    table: &mut HashMap<String, Vec<PersistentTx>>,
    path: &str,
    event: &WatchedEvent,
) -> bool {
    let Some(txs) = table.get_mut(path) else {
        return false;
    };
    txs.retain(|tx| tx.deliver(event.clone()) == Delivery::Sent);
    if txs.is_empty() {
        table.remove(path);
        return true;
    }
    false
}

/// `path` and every ancestor of it, up to and including `/`.
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    let mut next = Some(path);
    std::iter::from_fn(move || {
        let cur = next?;
        next = match cur {
            "/" => None,
            _ => Some(corral_proto::path::parent(cur)),
        };
        Some(cur)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connect_string::Chroot;
    use crate::watcher::persistent_channel;
    use std::sync::Arc;

    fn pending(xid: i32, op: OpCode) -> (Pending, oneshot::Receiver<Result<Response, Error>>) {
        let (tx, rx) = oneshot::channel();
        let p = Pending {
            xid,
            op,
            reply: Some(tx),
            watch: None,
            span: Span::none(),
        };
        (p, rx)
    }

    fn notification(event_type: EventType, path: &str) -> WatcherEvent {
        WatcherEvent {
            event_type: event_type as i32,
            state: 3,
            path: path.into(),
        }
    }

    fn state() -> SessionState {
        SessionState::new(Duration::from_secs(10), vec![], None)
    }

    #[test]
    fn xids_increase_and_wrap_to_one() {
        let mut s = state();
        assert_eq!((s.next_xid(), s.next_xid()), (1, 2));
        s.next_xid = i32::MAX;
        assert_eq!((s.next_xid(), s.next_xid()), (i32::MAX, 1));
    }

    #[test]
    fn replies_must_match_the_oldest_pending_request() {
        let mut s = state();
        assert_eq!(
            s.take_pending(1).unwrap_err(),
            MatchError::NothingPending { xid: 1 }
        );
        let (p1, _r1) = pending(1, OpCode::GetData);
        let (p2, _r2) = pending(2, OpCode::GetData);
        s.push_pending(p1);
        s.push_pending(p2);
        assert_eq!(
            s.take_pending(2).unwrap_err(),
            MatchError::OutOfOrder {
                expected: 1,
                got: 2
            }
        );
        assert_eq!(s.take_pending(1).unwrap().xid, 1);
        assert_eq!(s.take_pending(2).unwrap().xid, 2);
    }

    #[test]
    fn connection_loss_fails_everything_in_flight() {
        let mut s = state();
        let (p, mut rx) = pending(1, OpCode::Create);
        s.push_pending(p);
        let (atx, mut arx) = oneshot::channel();
        s.push_auth("digest".into(), b"a:b".to_vec(), atx);
        s.fail_in_flight(&Error::ConnectionLoss);
        assert_eq!(rx.try_recv().unwrap(), Err(Error::ConnectionLoss));
        assert_eq!(arx.try_recv().unwrap(), Err(Error::ConnectionLoss));
        assert_eq!(s.pending_len(), 0);
    }

    #[test]
    fn zxid_only_moves_forward() {
        let mut s = state();
        s.observe_zxid(5);
        s.observe_zxid(-1);
        s.observe_zxid(3);
        assert_eq!(s.last_zxid(), 5);
        assert_eq!(s.connect_request(true).last_zxid_seen, 5);
    }

    #[test]
    fn handshake_outcomes() {
        let mut s = state();
        let resp = |id, t| ConnectResponse {
            protocol_version: 0,
            timeout_ms: t,
            session_id: id,
            passwd: vec![7; 16],
            read_only: Some(false),
        };
        assert_eq!(s.on_connect_response(&resp(42, 4000)), Handshake::New);
        assert_eq!((s.session_id(), s.epoch()), (42, 1));
        assert_eq!(s.timeout(), Duration::from_secs(4));
        let req = s.connect_request(false);
        assert_eq!((req.session_id, req.passwd.clone()), (42, vec![7; 16]));
        assert_eq!(s.on_connect_response(&resp(42, 6000)), Handshake::Resumed);
        assert_eq!(s.on_connect_response(&resp(43, 6000)), Handshake::Mismatch);
        assert_eq!(s.on_connect_response(&resp(0, 0)), Handshake::Expired);
        s.renew();
        assert_eq!(s.on_connect_response(&resp(44, 4000)), Handshake::New);
        assert_eq!(s.epoch(), 2);
    }

    #[test]
    fn accepted_caller_auth_is_remembered_and_resent() {
        let mut s = state();
        let (tx, mut rx) = oneshot::channel();
        s.push_auth("digest".into(), b"u:p".to_vec(), tx);
        assert_eq!(s.on_auth_reply(0), AuthOutcome::Ok);
        assert_eq!(rx.try_recv().unwrap(), Ok(()));
        assert_eq!(
            s.resend_auths(),
            vec![("digest".to_string(), b"u:p".to_vec())]
        );
        // A re-sent auth that fails is fatal; a caller's is not.
        assert_eq!(s.on_auth_reply(-115), AuthOutcome::Fatal);
        let (tx, mut rx) = oneshot::channel();
        s.push_auth("digest".into(), b"x:y".to_vec(), tx);
        assert_eq!(s.on_auth_reply(-115), AuthOutcome::CallerFailed);
        assert_eq!(rx.try_recv().unwrap(), Err(Error::AuthFailed));
        assert_eq!(s.on_auth_reply(0), AuthOutcome::Unexpected);
    }

    #[test]
    fn exists_watch_on_missing_node_fires_on_create_once() {
        let mut s = state();
        let (wtx, mut wrx) = oneshot::channel();
        let (mut p, _rx) = pending(1, OpCode::Exists);
        p.watch = Some(WatchAction::Exists {
            path: "/a".into(),
            tx: wtx,
        });
        s.complete(p, Err(Error::NoNode));
        assert!(!s.watches.is_empty());
        s.watches
            .dispatch(&notification(EventType::NodeCreated, "/a"), -1);
        let ev = wrx.try_recv().unwrap().unwrap();
        assert_eq!(
            (ev.event_type, ev.path.as_str(), ev.zxid),
            (EventType::NodeCreated, "/a", None)
        );
        assert!(s.watches.is_empty());
    }

    #[test]
    fn failed_get_data_sets_no_watch() {
        let mut s = state();
        let (wtx, _wrx) = oneshot::channel();
        let (mut p, _rx) = pending(1, OpCode::GetData);
        p.watch = Some(WatchAction::Data {
            path: "/a".into(),
            tx: wtx,
        });
        s.complete(p, Err(Error::NoNode));
        assert!(s.watches.is_empty());
    }

    #[test]
    fn deletion_fires_data_and_child_watches_but_child_change_only_child() {
        let mut reg = WatchRegistry::default();
        let (d, mut drx) = oneshot::channel();
        let (c, mut crx) = oneshot::channel();
        reg.apply(
            WatchAction::Data {
                path: "/a".into(),
                tx: d,
            },
            &Ok(Response::Empty),
        );
        reg.apply(
            WatchAction::Child {
                path: "/a".into(),
                tx: c,
            },
            &Ok(Response::Empty),
        );
        reg.dispatch(&notification(EventType::NodeChildrenChanged, "/a"), 9);
        assert!(drx.try_recv().is_err());
        let ev = crx.try_recv().unwrap().unwrap();
        assert_eq!(
            (ev.event_type, ev.zxid),
            (EventType::NodeChildrenChanged, Some(Zxid(9)))
        );
        reg.dispatch(&notification(EventType::NodeDeleted, "/a"), -1);
        assert_eq!(
            drx.try_recv().unwrap().unwrap().event_type,
            EventType::NodeDeleted
        );
    }

    #[test]
    fn recursive_watches_see_descendants_but_not_child_changes() {
        let mut reg = WatchRegistry::default();
        let chroot = Arc::new(Chroot::default());
        let (root_tx, mut root) = persistent_channel(8, chroot.clone());
        let (a_tx, mut a) = persistent_channel(8, chroot.clone());
        let (p_tx, mut p) = persistent_channel(8, chroot);
        let add = |reg: &mut WatchRegistry, path: &str, recursive, tx| {
            reg.apply(
                WatchAction::Persistent {
                    path: path.into(),
                    recursive,
                    tx,
                },
                &Ok(Response::AddWatch),
            )
        };
        add(&mut reg, "/", true, root_tx);
        add(&mut reg, "/a", true, a_tx);
        add(&mut reg, "/a", false, p_tx);
        reg.dispatch(&notification(EventType::NodeDataChanged, "/a/b/c"), -1);
        reg.dispatch(&notification(EventType::NodeChildrenChanged, "/a"), -1);
        reg.dispatch(&notification(EventType::NodeCreated, "/x"), -1);
        let next = |w: &mut crate::PersistentWatcher| {
            let waker = std::task::Waker::noop();
            let mut cx = std::task::Context::from_waker(waker);
            match w.poll_event(&mut cx) {
                std::task::Poll::Ready(Some(Ok(ev))) => Some((ev.event_type, ev.path)),
                _ => None,
            }
        };
        assert_eq!(
            next(&mut root),
            Some((EventType::NodeDataChanged, "/a/b/c".into()))
        );
        assert_eq!(next(&mut root), Some((EventType::NodeCreated, "/x".into())));
        assert_eq!(next(&mut root), None);
        assert_eq!(
            next(&mut a),
            Some((EventType::NodeDataChanged, "/a/b/c".into()))
        );
        assert_eq!(next(&mut a), None);
        assert_eq!(
            next(&mut p),
            Some((EventType::NodeChildrenChanged, "/a".into()))
        );
        assert_eq!(next(&mut p), None);
    }

    #[test]
    fn dropped_persistent_watcher_asks_for_server_removal() {
        let mut reg = WatchRegistry::default();
        let (tx, w) = persistent_channel(8, Arc::new(Chroot::default()));
        reg.apply(
            WatchAction::Persistent {
                path: "/a".into(),
                recursive: true,
                tx,
            },
            &Ok(Response::AddWatch),
        );
        drop(w);
        let unwanted = reg.dispatch(&notification(EventType::NodeCreated, "/a/b"), -1);
        assert_eq!(
            unwanted,
            vec![("/a".to_string(), WatcherType::PersistentRecursive)]
        );
        assert!(reg.is_empty());
    }

    #[test]
    fn remove_watches_tells_one_shot_watchers() {
        let mut reg = WatchRegistry::default();
        let (d, mut drx) = oneshot::channel();
        let (c, mut crx) = oneshot::channel();
        reg.apply(
            WatchAction::Data {
                path: "/a".into(),
                tx: d,
            },
            &Ok(Response::Empty),
        );
        reg.apply(
            WatchAction::Child {
                path: "/a".into(),
                tx: c,
            },
            &Ok(Response::Empty),
        );
        reg.apply(
            WatchAction::Remove {
                path: "/a".into(),
                kind: WatcherType::Data,
            },
            &Ok(Response::Empty),
        );
        assert_eq!(
            drx.try_recv().unwrap().unwrap().event_type,
            EventType::DataWatchRemoved
        );
        assert!(crx.try_recv().is_err());
        reg.apply(
            WatchAction::Remove {
                path: "/a".into(),
                kind: WatcherType::Any,
            },
            &Ok(Response::Empty),
        );
        assert_eq!(
            crx.try_recv().unwrap().unwrap().event_type,
            EventType::ChildWatchRemoved
        );
        assert!(reg.is_empty());
    }

    #[test]
    fn set_watches_lists_live_watches_and_prunes_dropped_ones() {
        let mut s = state();
        s.observe_zxid(77);
        let (d, _drx) = oneshot::channel();
        let (e, erx) = oneshot::channel();
        let (c, _crx) = oneshot::channel();
        s.watches.apply(
            WatchAction::Data {
                path: "/d".into(),
                tx: d,
            },
            &Ok(Response::Empty),
        );
        s.watches.apply(
            WatchAction::Exists {
                path: "/e".into(),
                tx: e,
            },
            &Err(Error::NoNode),
        );
        s.watches.apply(
            WatchAction::Child {
                path: "/c".into(),
                tx: c,
            },
            &Ok(Response::Empty),
        );
        drop(erx);
        let reqs = s.set_watches_requests();
        assert_eq!(
            reqs,
            vec![Request::SetWatches(SetWatches {
                relative_zxid: 77,
                data_watches: vec!["/d".into()],
                exist_watches: vec![],
                child_watches: vec!["/c".into()],
            })]
        );
    }

    #[test]
    fn set_watches_uses_v2_with_persistent_watches_and_batches_by_size() {
        let mut reg = WatchRegistry::default();
        let mut keep = Vec::new();
        for i in 0..10 {
            let (tx, rx) = oneshot::channel();
            keep.push(rx);
            reg.apply(
                WatchAction::Data {
                    path: format!("/n{i}"),
                    tx,
                },
                &Ok(Response::Empty),
            );
        }
        let (tx, _w) = persistent_channel(8, Arc::new(Chroot::default()));
        reg.apply(
            WatchAction::Persistent {
                path: "/p".into(),
                recursive: false,
                tx,
            },
            &Ok(Response::AddWatch),
        );
        let reqs = reg.set_watches_requests(5, 9);
        // 11 paths of 3 characters, at most 9 characters per batch.
        assert_eq!(reqs.len(), 4);
        assert!(reqs.iter().all(|r| r.op() == OpCode::SetWatches2));
        let Request::SetWatches2(last) = &reqs[3] else {
            unreachable!()
        };
        assert_eq!(last.persistent_watches, vec!["/p".to_string()]);
        assert_eq!(last.relative_zxid, 5);
    }

    #[test]
    fn ending_the_session_ends_every_watch() {
        let mut reg = WatchRegistry::default();
        let (d, mut drx) = oneshot::channel();
        reg.apply(
            WatchAction::Data {
                path: "/a".into(),
                tx: d,
            },
            &Ok(Response::Empty),
        );
        let (tx, mut w) = persistent_channel(8, Arc::new(Chroot::default()));
        reg.apply(
            WatchAction::Persistent {
                path: "/p".into(),
                recursive: false,
                tx,
            },
            &Ok(Response::AddWatch),
        );
        reg.end_all(&Error::SessionExpired);
        assert_eq!(drx.try_recv().unwrap(), Err(Error::SessionExpired));
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        assert_eq!(
            w.poll_event(&mut cx),
            std::task::Poll::Ready(Some(Err(Error::SessionExpired)))
        );
        assert!(reg.is_empty());
    }

    #[test]
    fn ancestors_walk_up_to_the_root() {
        assert_eq!(ancestors("/a/b").collect::<Vec<_>>(), ["/a/b", "/a", "/"]);
        assert_eq!(ancestors("/").collect::<Vec<_>>(), ["/"]);
    }
}
