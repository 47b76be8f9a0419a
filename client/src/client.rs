//! The cheap-to-clone `Client` handle and every operation.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use corral_proto::{
    path::validate_path, Acl, AddWatchMode, AddWatchRequest, ClientInfo, DeleteRequest, OpCode,
    PathRequest, PathWatchRequest, ReconfigRequest, Request, Response, SessionId, SetAclRequest,
    SetDataRequest, Stat, WatcherType, WatchesRequest,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, Span};

use crate::connect_string::Chroot;
use crate::session::{encode, Command, Operation, WatchAction};
use crate::state::{SessionStatus, StateWatcher};
use crate::watcher::{persistent_channel, OneshotWatcher, PersistentWatcher};
use crate::{ClientBuilder, CreateOptions, Error, MultiReader, MultiWriter, RetryPolicy};

/// The path of the ensemble configuration node (never under the chroot).
const CONFIG_NODE: &str = "/zookeeper/config";

/// What every clone of a [`Client`] shares.
pub(crate) struct Inner {
    pub(crate) commands: mpsc::UnboundedSender<Command>,
    pub(crate) status: watch::Receiver<SessionStatus>,
    pub(crate) chroot: Arc<Chroot>,
    pub(crate) retry: RetryPolicy,
    pub(crate) shutdown: CancellationToken,
    pub(crate) close_timeout: Duration,
    pub(crate) watch_queue_capacity: usize,
    /// Parent of every request span (STYLE: `session{id}` → `req{op, path, xid}`).
    pub(crate) session_span: Span,
}

impl Inner {
    /// Queues one attempt of a request; the receiver gets its reply.
    fn enqueue(
        &self,
        op: OpCode,
        frame: Vec<u8>,
        watch: Option<WatchAction>,
        span: Span,
    ) -> Result<oneshot::Receiver<Result<Response, Error>>, Error> {
        let (tx, rx) = oneshot::channel();
        let command = Command::Request(Operation {
            op,
            frame,
            reply: Some(tx),
            watch,
            span,
        });
        self.commands
            .send(command)
            .map_err(|_| terminal_error(&self.status))?;
        Ok(rx)
    }
}

/// The error for a client whose session task has stopped.
fn terminal_error(status: &watch::Receiver<SessionStatus>) -> Error {
    let s = status.borrow();
    if s.is_terminal() {
        s.terminal_error()
    } else {
        Error::ClientClosed
    }
}

/// Awaits a reply; a vanished task means the client stopped.
async fn recv(
    rx: oneshot::Receiver<Result<Response, Error>>,
    status: &watch::Receiver<SessionStatus>,
) -> Result<Response, Error> {
    match rx.await {
        Ok(r) => r,
        Err(_) => Err(terminal_error(status)),
    }
}

/// The error for a reply body of the wrong type (which the codec makes impossible).
pub(crate) fn unexpected(response: Response) -> Error {
    tracing::error!(?response, "reply of an unexpected type");
    Error::MarshallingError
}

/// A ZooKeeper client: a cheap-to-clone handle to one session.
///
/// Every operation is a method that sends its request *when called* and returns a future
/// of the reply: requests reach the server in call order, whatever order the futures are
/// polled in, and many can be in flight on the one connection (pipelining). Dropping a
/// future does not cancel its request and never desynchronises the connection; the reply
/// is just discarded.
///
/// Paths are absolute (`/a/b`) and relative to the chroot of the connect string, if any.
/// Versions are `Option<i32>`: `None` matches any version.
///
/// Idempotent operations (reads, `sync`, `who_am_i`, `add_auth`, `add_watch`,
/// `multi_read`) are retried on [`Error::ConnectionLoss`] per the [`RetryPolicy`]; writes
/// are not (see [`RetryPolicy`]).
///
/// Every operation resolves in bounded time: requests in flight fail with
/// [`Error::ConnectionLoss`] as soon as the connection is declared lost (at the latest two
/// thirds of the session timeout after the server went silent), and requests made while
/// disconnected fail at once or after the connection attempt under way (idempotent ones
/// are retried within the policy's bound).
///
/// When the last clone is dropped, the session is closed (as with [`Client::close`]).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("status", &*self.inner.status.borrow())
            .field("chroot", &self.inner.chroot)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub(crate) fn from_inner(inner: Inner) -> Self {
        Client {
            inner: Arc::new(inner),
        }
    }

    /// A builder for a client of the servers in `connect_string`
    /// (`host:port,host:port/chroot`).
    pub fn builder(connect_string: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(connect_string)
    }

    /// Connects with default settings; see [`ClientBuilder::connect`].
    ///
    /// # Errors
    ///
    /// As [`ClientBuilder::connect`].
    ///
    /// # Cancellation safety
    ///
    /// Dropping the future abandons the connection attempt.
    pub async fn connect(connect_string: &str) -> Result<Client, Error> {
        ClientBuilder::new(connect_string).connect().await
    }

    pub(crate) fn chroot(&self) -> Arc<Chroot> {
        self.inner.chroot.clone()
    }

    /// Validates a client path and turns it into a server path.
    pub(crate) fn server_path(&self, path: &str, sequential: bool) -> Result<String, Error> {
        validate_path(path, sequential)?;
        Ok(self.inner.chroot.prefix(path))
    }

    /// Sends a request without a watch.
    pub(crate) fn submit(
        &self,
        request: Result<Request, Error>,
        idempotent: bool,
    ) -> impl Future<Output = Result<Response, Error>> + Send + 'static {
        let fut = self.submit_with(request, idempotent, || (None, ()));
        async move { fut.await.0 }
    }

    /// Sends a request now (the first attempt) and returns a future of its reply.
    ///
    /// `arm` makes, for each attempt, the watch action the session task applies when the
    /// reply arrives and the caller's end of that watch; the future returns the caller's
    /// end from the last attempt (`None` if nothing was sent).
    pub(crate) fn submit_with<W: Send + 'static>(
        &self,
        request: Result<Request, Error>,
        idempotent: bool,
        mut arm: impl FnMut() -> (Option<WatchAction>, W) + Send + 'static,
    ) -> impl Future<Output = (Result<Response, Error>, Option<W>)> + Send + 'static {
        let retry = idempotent && !self.inner.retry.is_none();
        let status = self.inner.status.clone();
        let inner = retry.then(|| self.inner.clone());
        let (span, first) = match request {
            Err(e) => (Span::none(), Err(e)),
            Ok(request) => {
                let op = request.op();
                let span = tracing::debug_span!(
                    parent: &self.inner.session_span,
                    "req",
                    ?op,
                    path = request.path().unwrap_or(""),
                    xid = tracing::field::Empty
                );
                span.follows_from(Span::current());
                let frame = encode(&request);
                let (action, w) = arm();
                let keep = retry.then(|| frame.clone());
                let rx = self.inner.enqueue(op, frame, action, span.clone());
                (span.clone(), Ok((op, keep, rx, w, span)))
            }
        };
        async move {
            let (op, frame, mut rx, mut w, span) = match first {
                Err(e) => return (Err(e), None),
                Ok(first) => first,
            };
            let mut schedule = None;
            loop {
                let result = match rx {
                    Ok(rx) => recv(rx, &status).await,
                    Err(e) => Err(e),
                };
                if let (Err(e), Some(inner), Some(frame)) = (&result, &inner, &frame) {
                    if e.is_retryable() {
                        let delay = schedule
                            .get_or_insert_with(|| inner.retry.schedule())
                            .next_delay();
                        if let Some(delay) = delay {
                            tracing::debug!(error = %e, ?delay, "retrying");
                            tokio::time::sleep(delay).await;
                            let (action, next_w) = arm();
                            w = next_w;
                            rx = inner.enqueue(op, frame.clone(), action, span.clone());
                            continue;
                        }
                    }
                }
                return (result, Some(w));
            }
        }
        .instrument(span)
    }

    // ---------------------------------------------------------------------------------
    // Writes

    /// Creates a node and returns its actual path (with the sequence suffix for sequential
    /// modes) and its Stat.
    ///
    /// Every [`corral_proto::CreateMode`] is supported: persistent, ephemeral, sequential,
    /// container (opcode createContainer) and TTL (createTTL, which the server must enable
    /// with `extendedTypesEnabled`).
    ///
    /// # Errors
    ///
    /// [`Error::NodeExists`], [`Error::NoNode`] (no parent), [`Error::NoChildrenForEphemerals`],
    /// [`Error::NoAuth`], [`Error::InvalidAcl`], [`Error::Unimplemented`] (TTL disabled),
    /// [`Error::BadArguments`] (invalid path or TTL), [`Error::ConnectionLoss`] (the create
    /// may have applied; it is never retried).
    ///
    /// # Cancellation safety
    ///
    /// The request is sent when `create` is called; dropping the future does not cancel it.
    pub fn create(
        &self,
        path: &str,
        data: &[u8],
        options: &CreateOptions,
    ) -> impl Future<Output = Result<(String, Stat), Error>> + Send + 'static {
        let request = self
            .server_path(path, options.mode().is_sequential())
            .and_then(|p| options.request(p, data));
        let reply = self.submit(request, false);
        let chroot = self.chroot();
        async move {
            match reply.await? {
                Response::Create2(r) => Ok((chroot.strip(&r.path), r.stat)),
                other => Err(unexpected(other)),
            }
        }
    }

    /// Deletes a node; `version` `None` matches any version.
    ///
    /// # Errors
    ///
    /// [`Error::NoNode`], [`Error::BadVersion`], [`Error::NotEmpty`], [`Error::NoAuth`],
    /// [`Error::ConnectionLoss`] (may have applied; not retried).
    ///
    /// # Cancellation safety
    ///
    /// The request is sent when `delete` is called; dropping the future does not cancel it.
    pub fn delete(
        &self,
        path: &str,
        version: Option<i32>,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'static {
        let request = self.server_path(path, false).map(|path| {
            Request::Delete(DeleteRequest {
                path,
                version: version.unwrap_or(-1),
            })
        });
        let reply = self.submit(request, false);
        async move { reply.await.map(|_| ()) }
    }

    /// Replaces a node's data; `version` `None` matches any version. Returns the new Stat.
    ///
    /// # Errors
    ///
    /// [`Error::NoNode`], [`Error::BadVersion`], [`Error::NoAuth`],
    /// [`Error::ConnectionLoss`] (may have applied; not retried).
    ///
    /// # Cancellation safety
    ///
    /// The request is sent when `set_data` is called; dropping the future does not cancel it.
    pub fn set_data(
        &self,
        path: &str,
        data: &[u8],
        version: Option<i32>,
    ) -> impl Future<Output = Result<Stat, Error>> + Send + 'static {
        let request = self.server_path(path, false).map(|path| {
            Request::SetData(SetDataRequest {
                path,
                data: Some(data.to_vec()),
                version: version.unwrap_or(-1),
            })
        });
        stat_reply(self.submit(request, false))
    }

    /// Replaces a node's ACL; `version` (the ACL version, `aversion`) `None` matches any.
    ///
    /// # Errors
    ///
    /// [`Error::NoNode`], [`Error::BadVersion`], [`Error::NoAuth`] (ADMIN needed),
    /// [`Error::InvalidAcl`], [`Error::ConnectionLoss`] (not retried).
    ///
    /// # Cancellation safety
    ///
    /// The request is sent when `set_acl` is called; dropping the future does not cancel it.
    pub fn set_acl(
        &self,
        path: &str,
        acl: &[Acl],
        version: Option<i32>,
    ) -> impl Future<Output = Result<Stat, Error>> + Send + 'static {
        let request = self.server_path(path, false).map(|path| {
            Request::SetAcl(SetAclRequest {
                path,
                acl: acl.to_vec(),
                version: version.unwrap_or(-1),
            })
        });
        stat_reply(self.submit(request, false))
    }

    /// Starts an atomic multi-operation (check / create / set_data / delete).
    pub fn multi(&self) -> MultiWriter {
        MultiWriter::new(self.clone())
    }

    // ---------------------------------------------------------------------------------
    // Reads

    /// The node's Stat, or `None` if it does not exist.
    ///
    /// # Errors
    ///
    /// [`Error::NoAuth`], [`Error::BadArguments`], [`Error::ConnectionLoss`] (after retries).
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe.
    pub fn exists(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<Option<Stat>, Error>> + Send + 'static {
        let request = self
            .server_path(path, false)
            .map(|path| Request::Exists(PathWatchRequest { path, watch: false }));
        let reply = self.submit(request, true);
        async move { exists_reply(reply.await) }
    }

    /// Like [`Client::exists`], and leaves a one-shot watch that fires when the node is
    /// created, changed or deleted (a watch is set even when the node does not exist).
    ///
    /// # Errors
    ///
    /// As [`Client::exists`].
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe; dropping the future after the request was answered leaves a watch
    /// nobody listens to, which fires once into the void.
    pub fn exists_and_watch(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<(Option<Stat>, OneshotWatcher), Error>> + Send + 'static {
        let request = self
            .server_path(path, false)
            .map(|path| Request::Exists(PathWatchRequest { path, watch: true }));
        let watched = self.watched(request, |path, tx| WatchAction::Exists { path, tx });
        async move {
            let (result, watcher) = watched.await;
            let stat = exists_reply(result)?;
            Ok((stat, watcher.expect("a sent request has a watcher")))
        }
    }

    /// The node's data (empty for null data) and Stat.
    ///
    /// # Errors
    ///
    /// [`Error::NoNode`], [`Error::NoAuth`], [`Error::BadArguments`],
    /// [`Error::ConnectionLoss`] (after retries).
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe.
    pub fn get_data(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<(Vec<u8>, Stat), Error>> + Send + 'static {
        let request = self
            .server_path(path, false)
            .map(|path| Request::GetData(PathWatchRequest { path, watch: false }));
        let reply = self.submit(request, true);
        async move { data_reply(reply.await?) }
    }

    /// Like [`Client::get_data`], and leaves a one-shot watch that fires when the node's
    /// data changes or the node is deleted.
    ///
    /// # Errors
    ///
    /// As [`Client::get_data`] (no watch is set when the node does not exist).
    ///
    /// # Cancellation safety
    ///
    /// As [`Client::exists_and_watch`].
    pub fn get_and_watch_data(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<(Vec<u8>, Stat, OneshotWatcher), Error>> + Send + 'static {
        let request = self
            .server_path(path, false)
            .map(|path| Request::GetData(PathWatchRequest { path, watch: true }));
        let watched = self.watched(request, |path, tx| WatchAction::Data { path, tx });
        async move {
            let (result, watcher) = watched.await;
            let (data, stat) = data_reply(result?)?;
            Ok((data, stat, watcher.expect("a sent request has a watcher")))
        }
    }

    /// The names of the node's children (unordered).
    ///
    /// # Errors
    ///
    /// [`Error::NoNode`], [`Error::NoAuth`], [`Error::BadArguments`],
    /// [`Error::ConnectionLoss`] (after retries).
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe.
    pub fn get_children(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<Vec<String>, Error>> + Send + 'static {
        let request = self
            .server_path(path, false)
            .map(|path| Request::GetChildren(PathWatchRequest { path, watch: false }));
        let reply = self.submit(request, true);
        async move {
            match reply.await? {
                Response::GetChildren(r) => Ok(r.children),
                other => Err(unexpected(other)),
            }
        }
    }

    /// Like [`Client::get_children`], and leaves a one-shot watch that fires when a child
    /// is created or deleted, or the node is deleted.
    ///
    /// # Errors
    ///
    /// As [`Client::get_children`].
    ///
    /// # Cancellation safety
    ///
    /// As [`Client::exists_and_watch`].
    pub fn get_and_watch_children(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<(Vec<String>, OneshotWatcher), Error>> + Send + 'static {
        let request = self
            .server_path(path, false)
            .map(|path| Request::GetChildren(PathWatchRequest { path, watch: true }));
        let watched = self.watched(request, |path, tx| WatchAction::Child { path, tx });
        async move {
            let (result, watcher) = watched.await;
            match result? {
                Response::GetChildren(r) => Ok((r.children, watcher.expect("sent"))),
                other => Err(unexpected(other)),
            }
        }
    }

    /// The names of the node's children (unordered) and the node's Stat (getChildren2).
    ///
    /// # Errors
    ///
    /// As [`Client::get_children`].
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe.
    pub fn get_children_with_stat(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<(Vec<String>, Stat), Error>> + Send + 'static {
        let request = self
            .server_path(path, false)
            .map(|path| Request::GetChildren2(PathWatchRequest { path, watch: false }));
        let reply = self.submit(request, true);
        async move {
            match reply.await? {
                Response::GetChildren2(r) => Ok((r.children, r.stat)),
                other => Err(unexpected(other)),
            }
        }
    }

    /// Like [`Client::get_children_with_stat`], with a one-shot child watch.
    ///
    /// # Errors
    ///
    /// As [`Client::get_children`].
    ///
    /// # Cancellation safety
    ///
    /// As [`Client::exists_and_watch`].
    pub fn get_and_watch_children_with_stat(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<(Vec<String>, Stat, OneshotWatcher), Error>> + Send + 'static
    {
        let request = self
            .server_path(path, false)
            .map(|path| Request::GetChildren2(PathWatchRequest { path, watch: true }));
        let watched = self.watched(request, |path, tx| WatchAction::Child { path, tx });
        async move {
            let (result, watcher) = watched.await;
            match result? {
                Response::GetChildren2(r) => Ok((r.children, r.stat, watcher.expect("sent"))),
                other => Err(unexpected(other)),
            }
        }
    }

    /// The node's ACL and Stat.
    ///
    /// # Errors
    ///
    /// [`Error::NoNode`], [`Error::NoAuth`] (READ or ADMIN needed), [`Error::ConnectionLoss`].
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe.
    pub fn get_acl(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<(Vec<Acl>, Stat), Error>> + Send + 'static {
        let request = self
            .server_path(path, false)
            .map(|path| Request::GetAcl(PathRequest { path }));
        let reply = self.submit(request, true);
        async move {
            match reply.await? {
                Response::GetAcl(r) => Ok((r.acl, r.stat)),
                other => Err(unexpected(other)),
            }
        }
    }

    /// Waits until the connected server has applied every write the leader had committed
    /// when it received the sync, so that a following read is at least that fresh.
    ///
    /// # Errors
    ///
    /// [`Error::BadArguments`], [`Error::ConnectionLoss`] (after retries).
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe.
    pub fn sync(&self, path: &str) -> impl Future<Output = Result<(), Error>> + Send + 'static {
        let request = self
            .server_path(path, false)
            .map(|path| Request::Sync(PathRequest { path }));
        let reply = self.submit(request, true);
        async move { reply.await.map(|_| ()) }
    }

    /// Starts a batch of reads sent as one request (multiRead).
    pub fn multi_read(&self) -> MultiReader {
        MultiReader::new(self.clone())
    }

    /// The paths of this session's ephemeral nodes that start with `prefix` (a string
    /// prefix; `/` for all), relative to the chroot.
    ///
    /// # Errors
    ///
    /// [`Error::BadArguments`] unless `prefix` starts with `/`; [`Error::ConnectionLoss`].
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe.
    pub fn get_ephemerals(
        &self,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<String>, Error>> + Send + 'static {
        let request = if prefix.starts_with('/') {
            Ok(Request::GetEphemerals(PathRequest {
                path: self.inner.chroot.prefix(prefix),
            }))
        } else {
            Err(Error::bad_arguments(format!(
                "ephemeral prefix {prefix:?} must start with /"
            )))
        };
        let reply = self.submit(request, true);
        let chroot = self.chroot();
        async move {
            match reply.await? {
                Response::GetEphemerals(paths) => Ok(paths
                    .into_iter()
                    .filter(|p| chroot.contains(p))
                    .map(|p| chroot.strip(&p))
                    .collect()),
                other => Err(unexpected(other)),
            }
        }
    }

    /// The number of all descendants of the node (not counting the node).
    ///
    /// # Errors
    ///
    /// [`Error::NoNode`], [`Error::NoAuth`], [`Error::ConnectionLoss`].
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe.
    pub fn get_all_children_number(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<usize, Error>> + Send + 'static {
        let request = self
            .server_path(path, false)
            .map(|path| Request::GetAllChildrenNumber(PathRequest { path }));
        let reply = self.submit(request, true);
        async move {
            match reply.await? {
                Response::AllChildrenNumber(n) => Ok(n.max(0) as usize),
                other => Err(unexpected(other)),
            }
        }
    }

    /// The identities the server associates with this connection (e.g. `digest:bob`,
    /// `ip:127.0.0.1`).
    ///
    /// # Errors
    ///
    /// [`Error::Unimplemented`] before ZooKeeper 3.7; [`Error::ConnectionLoss`].
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe.
    pub fn who_am_i(
        &self,
    ) -> impl Future<Output = Result<Vec<ClientInfo>, Error>> + Send + 'static {
        let reply = self.submit(Ok(Request::WhoAmI), true);
        async move {
            match reply.await? {
                Response::WhoAmI(ids) => Ok(ids),
                other => Err(unexpected(other)),
            }
        }
    }

    /// The ensemble configuration (data of `/zookeeper/config`, outside any chroot).
    ///
    /// # Errors
    ///
    /// [`Error::NoNode`] on servers without dynamic configuration; [`Error::ConnectionLoss`].
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe.
    pub fn get_config(
        &self,
    ) -> impl Future<Output = Result<(Vec<u8>, Stat), Error>> + Send + 'static {
        let request = Request::GetData(PathWatchRequest {
            path: CONFIG_NODE.into(),
            watch: false,
        });
        let reply = self.submit(Ok(request), true);
        async move { data_reply(reply.await?) }
    }

    /// Changes the ensemble membership (reconfig). `joining` / `leaving` are comma-separated
    /// server lines / ids (incremental mode); `new_members` replaces the whole membership.
    /// `from_config` is the expected config version (`None`: any). Returns the new
    /// configuration.
    ///
    /// # Errors
    ///
    /// [`Error::ReconfigDisabled`] (the default on servers), [`Error::NoAuth`],
    /// [`Error::BadVersion`], [`Error::NewConfigNoQuorum`], [`Error::ReconfigInProgress`].
    ///
    /// # Cancellation safety
    ///
    /// The request is sent when called; dropping the future does not cancel it.
    pub fn reconfig(
        &self,
        joining: &str,
        leaving: &str,
        new_members: &str,
        from_config: Option<i64>,
    ) -> impl Future<Output = Result<(Vec<u8>, Stat), Error>> + Send + 'static {
        let request = Request::Reconfig(ReconfigRequest {
            joining_servers: joining.into(),
            leaving_servers: leaving.into(),
            new_members: new_members.into(),
            cur_config_id: from_config.unwrap_or(-1),
        });
        let reply = self.submit(Ok(request), false);
        async move { data_reply(reply.await?) }
    }

    // ---------------------------------------------------------------------------------
    // Auth and watches

    /// Adds credentials to the connection (e.g. `("digest", b"user:password")`). Once
    /// accepted they are re-sent after every reconnect.
    ///
    /// # Errors
    ///
    /// [`Error::AuthFailed`] when the server refuses them (it then closes the connection;
    /// the client reconnects and the session goes on without these credentials);
    /// [`Error::ConnectionLoss`] (after retries).
    ///
    /// # Cancellation safety
    ///
    /// The credentials are sent when `add_auth` is called; dropping the future does not
    /// cancel them.
    pub fn add_auth(
        &self,
        scheme: &str,
        auth: &[u8],
    ) -> impl Future<Output = Result<(), Error>> + Send + 'static {
        let inner = self.inner.clone();
        let scheme = scheme.to_owned();
        let auth = auth.to_vec();
        let send = move |inner: &Inner| {
            let (reply, rx) = oneshot::channel();
            inner
                .commands
                .send(Command::Auth {
                    scheme: scheme.clone(),
                    auth: auth.clone(),
                    reply,
                })
                .map(|_| rx)
                .map_err(|_| terminal_error(&inner.status))
        };
        let first = send(&inner);
        let span =
            tracing::debug_span!(parent: &self.inner.session_span, "req", op = ?OpCode::Auth);
        span.follows_from(Span::current());
        async move {
            let mut rx = first;
            let mut schedule = None;
            loop {
                let result = match rx {
                    Ok(rx) => rx
                        .await
                        .unwrap_or_else(|_| Err(terminal_error(&inner.status))),
                    Err(e) => Err(e),
                };
                match &result {
                    Err(e) if e.is_retryable() => {
                        let delay = schedule
                            .get_or_insert_with(|| inner.retry.schedule())
                            .next_delay();
                        if let Some(delay) = delay {
                            tokio::time::sleep(delay).await;
                            rx = send(&inner);
                            continue;
                        }
                        return result;
                    }
                    _ => return result,
                }
            }
        }
        .instrument(span)
    }

    /// Sets a persistent watch (`AddWatchMode::Persistent`: data and child events of the
    /// node) or a persistent recursive one (`AddWatchMode::PersistentRecursive`: created /
    /// deleted / data-changed events of the node and every descendant), returned as a
    /// stream of events. The node need not exist. Requires ZooKeeper 3.6+.
    ///
    /// # Errors
    ///
    /// [`Error::Unimplemented`] on older servers, [`Error::BadArguments`],
    /// [`Error::ConnectionLoss`] (after retries).
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe; dropping the future after the server answered leaves a server-side
    /// watch that is removed when its first event arrives.
    pub fn add_watch(
        &self,
        path: &str,
        mode: AddWatchMode,
    ) -> impl Future<Output = Result<PersistentWatcher, Error>> + Send + 'static {
        let request = self.server_path(path, false).map(|path| {
            Request::AddWatch(AddWatchRequest {
                path,
                mode: mode as i32,
            })
        });
        let server_path = self.server_path(path, false).unwrap_or_default();
        let chroot = self.chroot();
        let capacity = self.inner.watch_queue_capacity;
        let fut = self.submit_with(request, true, move || {
            let (tx, watcher) = persistent_channel(capacity, chroot.clone());
            let action = WatchAction::Persistent {
                path: server_path.clone(),
                recursive: mode == AddWatchMode::PersistentRecursive,
                tx,
            };
            (Some(action), watcher)
        });
        async move {
            let (result, watcher) = fut.await;
            match result? {
                Response::AddWatch => Ok(watcher.expect("sent")),
                other => Err(unexpected(other)),
            }
        }
    }

    /// Removes this client's watches of `kind` on `path`, on the server and locally.
    /// One-shot watchers get a `DataWatchRemoved` / `ChildWatchRemoved` event; persistent
    /// watchers end.
    ///
    /// # Notable behaviors
    ///
    /// `WatcherType::Persistent` and `WatcherType::PersistentRecursive` need ZooKeeper 3.9+
    /// (ZOOKEEPER-4472; 3.8 answers MarshallingError). On older servers remove persistent
    /// watches with `WatcherType::Any`, which removes every kind on the path.
    ///
    /// # Errors
    ///
    /// [`Error::NoWatcher`] when the server has no such watch; [`Error::MarshallingError`]
    /// for a persistent kind on ZooKeeper < 3.9; [`Error::ConnectionLoss`] (not retried: a
    /// repeat after success reports NoWatcher).
    ///
    /// # Cancellation safety
    ///
    /// The request is sent when called; dropping the future does not cancel it.
    pub fn remove_watches(
        &self,
        path: &str,
        kind: WatcherType,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'static {
        let request = self.server_path(path, false).map(|path| {
            Request::RemoveWatches(WatchesRequest {
                path,
                watcher_type: kind as i32,
            })
        });
        let server_path = self.server_path(path, false).unwrap_or_default();
        let fut = self.submit_with(request, false, move || {
            let action = WatchAction::Remove {
                path: server_path.clone(),
                kind,
            };
            (Some(action), ())
        });
        async move { fut.await.0.map(|_| ()) }
    }

    /// Checks that this client has a watch of `kind` on `path` on the server.
    ///
    /// # Notable behaviors
    ///
    /// Persistent kinds need ZooKeeper 3.9+, as for [`Client::remove_watches`].
    ///
    /// # Errors
    ///
    /// [`Error::NoWatcher`] when it has none; [`Error::ConnectionLoss`].
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe.
    pub fn check_watches(
        &self,
        path: &str,
        kind: WatcherType,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'static {
        let request = self.server_path(path, false).map(|path| {
            Request::CheckWatches(WatchesRequest {
                path,
                watcher_type: kind as i32,
            })
        });
        let reply = self.submit(request, true);
        async move { reply.await.map(|_| ()) }
    }

    /// A request whose reply arms a one-shot watch.
    fn watched(
        &self,
        request: Result<Request, Error>,
        make: fn(String, crate::watcher::OneshotTx) -> WatchAction,
    ) -> impl Future<Output = (Result<Response, Error>, Option<OneshotWatcher>)> + Send + 'static
    {
        let server_path = request
            .as_ref()
            .ok()
            .and_then(|r| r.path())
            .unwrap_or_default()
            .to_owned();
        let chroot = self.chroot();
        self.submit_with(request, true, move || {
            let (tx, rx) = oneshot::channel();
            (
                Some(make(server_path.clone(), tx)),
                OneshotWatcher::new(rx, chroot.clone()),
            )
        })
    }

    // ---------------------------------------------------------------------------------
    // Session

    /// The current session status.
    pub fn status(&self) -> SessionStatus {
        self.inner.status.borrow().clone()
    }

    /// The current session id.
    pub fn session_id(&self) -> SessionId {
        self.inner.status.borrow().session_id
    }

    /// A watcher of session status changes (ZooKeeper and Curator states).
    pub fn state_watcher(&self) -> StateWatcher {
        StateWatcher::new(self.inner.status.clone())
    }

    /// Closes the session (closeSession: the server deletes its ephemerals at once), after
    /// every request sent before it. Later operations fail with [`Error::ClientClosed`].
    ///
    /// When disconnected, the client just stops; the session then expires on the server.
    /// If the server does not answer within the connection timeout, the client stops
    /// anyway.
    ///
    /// # Errors
    ///
    /// None so far; closing a closed client succeeds.
    ///
    /// # Cancellation safety
    ///
    /// The close is queued when `close` is called; dropping the future does not cancel it,
    /// but then nothing bounds how long the server has to answer.
    pub fn close(&self) -> impl Future<Output = Result<(), Error>> + Send + 'static {
        let (reply, ack) = oneshot::channel();
        let sent = self.inner.commands.send(Command::Close { reply }).is_ok();
        let inner = self.inner.clone();
        async move {
            if sent
                && tokio::time::timeout(inner.close_timeout, ack)
                    .await
                    .is_err()
            {
                tracing::warn!("closeSession not answered in time; stopping the client");
                inner.shutdown.cancel();
            }
            Ok(())
        }
    }
}

async fn stat_reply(reply: impl Future<Output = Result<Response, Error>>) -> Result<Stat, Error> {
    match reply.await? {
        Response::Stat(stat) => Ok(stat),
        other => Err(unexpected(other)),
    }
}

fn exists_reply(result: Result<Response, Error>) -> Result<Option<Stat>, Error> {
    match result {
        Ok(Response::Stat(stat)) => Ok(Some(stat)),
        Ok(other) => Err(unexpected(other)),
        Err(Error::NoNode) => Ok(None),
        Err(e) => Err(e),
    }
}

fn data_reply(response: Response) -> Result<(Vec<u8>, Stat), Error> {
    match response {
        Response::GetData(r) => Ok((r.data.unwrap_or_default(), r.stat)),
        other => Err(unexpected(other)),
    }
}
