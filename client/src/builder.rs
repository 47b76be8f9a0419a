//! Configuring and connecting a [`Client`].

use std::sync::Arc;
use std::time::Duration;

use corral_proto::{KeeperState, SessionId, DEFAULT_MAX_BUFFER};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::client::Inner;
use crate::session::state::SessionState;
use crate::session::task::{SessionTask, TaskConfig};
use crate::state::{ConnectionState, SessionStatus};
use crate::{Client, ConnectString, Error, RetryPolicy};

/// Settings of a [`Client`]; [`ClientBuilder::connect`] starts the session.
///
/// ```no_run
/// # async fn f() -> Result<(), corral_client::Error> {
/// use std::time::Duration;
/// use corral_client::{Client, RetryPolicy};
/// let client = Client::builder("zk1:2181,zk2:2181,zk3:2181/myapp")
///     .with_session_timeout(Duration::from_secs(10))
///     .with_connection_timeout(Duration::from_secs(5))
///     .with_auth("digest", b"bob:secret")
///     .with_retry_policy(RetryPolicy::default())
///     .connect()
///     .await?;
/// # let _ = client; Ok(()) }
/// ```
#[derive(Clone)]
pub struct ClientBuilder {
    connect_string: String,
    session_timeout: Duration,
    connection_timeout: Duration,
    auths: Vec<(String, Vec<u8>)>,
    read_only: bool,
    retry: RetryPolicy,
    max_buffer: usize,
    session: Option<(SessionId, Vec<u8>)>,
    session_renewal: bool,
    watch_queue_capacity: usize,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Credentials and the session password are left out: builders end up in logs.
        let schemes: Vec<&str> = self.auths.iter().map(|(s, _)| s.as_str()).collect();
        f.debug_struct("ClientBuilder")
            .field("connect_string", &self.connect_string)
            .field("session_timeout", &self.session_timeout)
            .field("connection_timeout", &self.connection_timeout)
            .field("auth_schemes", &schemes)
            .field("read_only", &self.read_only)
            .field("retry", &self.retry)
            .field("max_buffer", &self.max_buffer)
            .field("session", &self.session.as_ref().map(|(id, _)| *id))
            .field("session_renewal", &self.session_renewal)
            .field("watch_queue_capacity", &self.watch_queue_capacity)
            .finish()
    }
}

impl ClientBuilder {
    /// A builder for the servers of `connect_string` (`host:port,host:port/chroot`; the
    /// port defaults to 2181), parsed by [`ClientBuilder::connect`].
    pub fn new(connect_string: impl Into<String>) -> Self {
        ClientBuilder {
            connect_string: connect_string.into(),
            session_timeout: Duration::from_secs(30),
            connection_timeout: Duration::from_secs(15),
            auths: Vec::new(),
            read_only: false,
            retry: RetryPolicy::default(),
            max_buffer: DEFAULT_MAX_BUFFER,
            session: None,
            session_renewal: false,
            watch_queue_capacity: 1024,
        }
    }

    /// The session timeout to ask for (default 30 s); the server clamps it (by default
    /// into 2..20 ticks). The client pings after a third of the negotiated timeout of
    /// silence and drops a server that stays silent for two thirds of it.
    pub fn with_session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    /// How long [`ClientBuilder::connect`] tries to establish the first session, and the
    /// upper bound of each later connection attempt (default 15 s).
    pub fn with_connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// Credentials sent right after every handshake, e.g. `("digest", b"user:password")`.
    /// If the server refuses them, the client stops with [`Error::AuthFailed`].
    pub fn with_auth(mut self, scheme: &str, auth: &[u8]) -> Self {
        self.auths.push((scheme.to_owned(), auth.to_vec()));
        self
    }

    /// Whether a read-only server (one cut off from its quorum) is acceptable (default no).
    pub fn with_read_only(mut self, allowed: bool) -> Self {
        self.read_only = allowed;
        self
    }

    /// The retry policy for idempotent operations (default [`RetryPolicy::default`]).
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The largest frame accepted from the server, ZooKeeper's `jute.maxbuffer`
    /// (default 1 MiB − 1). A larger frame closes the connection (and the client
    /// reconnects). Requests larger than this are refused with [`Error::BadArguments`].
    ///
    /// # Notable behaviors
    ///
    /// `corral-proto` decodes reply bodies with its default field limit (2 MiB), so a
    /// single data or string field above that is refused even with a larger setting.
    pub fn with_max_buffer_bytes(mut self, bytes: usize) -> Self {
        self.max_buffer = bytes;
        self
    }

    /// Resumes an existing session (its id and password, e.g. from
    /// [`crate::SessionStatus::password`]) instead of creating one.
    pub fn with_session(mut self, id: SessionId, password: &[u8]) -> Self {
        self.session = Some((id, password.to_vec()));
        self
    }

    /// Whether to start a new session when the session expires (default no). Either way
    /// the expiry is reported (`Expired` / `Lost`, and [`Error::SessionExpired`] for the
    /// requests and watches of the old session); with renewal the client then connects a
    /// new session and [`crate::SessionStatus::epoch`] goes up by one.
    pub fn with_session_renewal(mut self, renew: bool) -> Self {
        self.session_renewal = renew;
        self
    }

    /// How many unread events a persistent watcher may hold before it is closed with
    /// [`Error::WatcherLagged`] (default 1024).
    pub fn with_watch_queue_capacity(mut self, capacity: usize) -> Self {
        self.watch_queue_capacity = capacity.max(1);
        self
    }

    /// Starts the session task and waits until a session is established (and the
    /// builder's credentials are accepted).
    ///
    /// # Errors
    ///
    /// [`Error::BadArguments`] for an invalid connect string; [`Error::Timeout`] when no
    /// server gave a session within the connection timeout; [`Error::SessionExpired`] when
    /// resuming ([`ClientBuilder::with_session`]) an expired session;
    /// [`Error::AuthFailed`] when the credentials are refused.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    ///
    /// # Cancellation safety
    ///
    /// Dropping the future stops the connection attempts.
    pub async fn connect(self) -> Result<Client, Error> {
        let cs: ConnectString = self.connect_string.parse()?;
        let (hosts, chroot) = cs.into_parts();
        let resume = self.session.map(|(id, pw)| (id.0, pw));
        let state = SessionState::new(self.session_timeout, self.auths, resume);
        let initial = SessionStatus {
            keeper_state: KeeperState::Disconnected,
            connection_state: ConnectionState::Suspended,
            epoch: state.epoch(),
            session_id: SessionId(state.session_id()),
            session_timeout: state.timeout(),
            password: state.password().to_vec(),
        };
        let (status_tx, status_rx) = watch::channel(initial);
        let (commands_tx, commands_rx) = mpsc::unbounded_channel();
        let (first_tx, first_rx) = oneshot::channel();
        let shutdown = CancellationToken::new();
        let cfg = TaskConfig {
            hosts,
            connection_timeout: self.connection_timeout,
            read_only: self.read_only,
            max_buffer: self.max_buffer,
            session_renewal: self.session_renewal,
        };
        let task = SessionTask::new(
            cfg,
            state,
            commands_rx,
            status_tx,
            shutdown.clone(),
            first_tx,
        );
        let session_span = task.span();
        tokio::spawn(task.run());
        // The task enforces the connection timeout; the margin only guards against a bug.
        let wait = self
            .connection_timeout
            .saturating_add(Duration::from_secs(5));
        let first = match tokio::time::timeout(wait, first_rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(Error::ClientClosed),
            Err(_) => {
                shutdown.cancel();
                Err(Error::Timeout)
            }
        };
        let inner = Inner {
            commands: commands_tx,
            status: status_rx,
            chroot: Arc::new(chroot),
            retry: self.retry,
            shutdown,
            close_timeout: self.connection_timeout,
            watch_queue_capacity: self.watch_queue_capacity,
            session_span,
        };
        first.map(|()| Client::from_inner(inner))
    }
}
