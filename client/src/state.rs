//! Connection and session states, published by the session task.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use corral_proto::{KeeperState, SessionId};
use tokio::sync::watch;
use tokio_util::sync::ReusableBoxFuture;

use crate::Error;

/// Curator's view of the connection, for recipes.
///
/// | State | Meaning | What a recipe does |
/// |---|---|---|
/// | `Connected` | first connection of the client | start |
/// | `Suspended` | disconnected; the session may still be alive | pause (e.g. stop acting as leader) |
/// | `Reconnected` | connected again | compare [`SessionStatus::epoch`]: same epoch = same session, ephemerals and watches survived |
/// | `Lost` | the session expired, or the client was disconnected for longer than the session timeout (it probably expired) | assume ephemerals are gone |
/// | `ReadOnly` | connected to a read-only server | reads only |
/// | `Closed` | the client was closed | stop |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnectionState {
    /// The first successful connection.
    Connected,
    /// Disconnected; the client is reconnecting.
    Suspended,
    /// Connected again after [`ConnectionState::Suspended`] or [`ConnectionState::Lost`].
    Reconnected,
    /// The session expired, or has probably expired (disconnected longer than its timeout).
    Lost,
    /// Connected to a read-only server.
    ReadOnly,
    /// The client was closed.
    Closed,
}

/// A snapshot of the session, as published on [`StateWatcher`].
#[derive(Clone, PartialEq, Eq)]
pub struct SessionStatus {
    /// ZooKeeper's state: `SyncConnected`, `ConnectedReadOnly`, `Disconnected`, `Expired`,
    /// `AuthFailed` or `Closed`.
    pub keeper_state: KeeperState,
    /// Curator's state.
    pub connection_state: ConnectionState,
    /// Counts sessions of this client: 1 for the first session, +1 each time a new session
    /// replaces an expired one (only with [`crate::ClientBuilder::with_session_renewal`]).
    pub epoch: u64,
    /// The current session id.
    pub session_id: SessionId,
    /// The session timeout negotiated with the server.
    pub session_timeout: Duration,
    pub(crate) password: Vec<u8>,
}

impl SessionStatus {
    /// The session password, for resuming the session from another client
    /// ([`crate::ClientBuilder::with_session`]).
    pub fn password(&self) -> &[u8] {
        &self.password
    }

    /// Whether requests can be sent now.
    pub fn is_connected(&self) -> bool {
        matches!(
            self.keeper_state,
            KeeperState::SyncConnected | KeeperState::ConnectedReadOnly
        )
    }

    /// Whether the client can no longer be used (expired, auth failed or closed).
    pub fn is_terminal(&self) -> bool {
        matches!(
            self.keeper_state,
            KeeperState::Expired | KeeperState::AuthFailed | KeeperState::Closed
        )
    }

    /// The error a request gets once the client is terminal.
    pub(crate) fn terminal_error(&self) -> Error {
        match self.keeper_state {
            KeeperState::Expired => Error::SessionExpired,
            KeeperState::AuthFailed => Error::AuthFailed,
            _ => Error::ClientClosed,
        }
    }
}

impl fmt::Debug for SessionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The password is left out on purpose: statuses end up in logs.
        f.debug_struct("SessionStatus")
            .field("keeper_state", &self.keeper_state)
            .field("connection_state", &self.connection_state)
            .field("epoch", &self.epoch)
            .field("session_id", &self.session_id)
            .field("session_timeout", &self.session_timeout)
            .finish_non_exhaustive()
    }
}

/// Observes [`SessionStatus`] changes.
///
/// Backed by a `tokio::sync::watch` channel: it never blocks the session task and keeps
/// only the latest status, so a quick `Suspended` → `Reconnected` may be seen as just
/// `Reconnected` (which implies the suspension). Compare [`SessionStatus::epoch`] to tell a
/// reconnect of the same session from a new session.
#[derive(Debug, Clone)]
pub struct StateWatcher {
    rx: watch::Receiver<SessionStatus>,
}

impl StateWatcher {
    pub(crate) fn new(rx: watch::Receiver<SessionStatus>) -> Self {
        StateWatcher { rx }
    }

    /// The latest status.
    pub fn current(&self) -> SessionStatus {
        self.rx.borrow().clone()
    }

    /// Waits for the next status change and returns it.
    ///
    /// # Errors
    ///
    /// [`Error::ClientClosed`] when the session task has ended and no further change can
    /// come (the last status stays readable with [`StateWatcher::current`]).
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe: a change not yet returned is returned by the next call.
    pub async fn changed(&mut self) -> Result<SessionStatus, Error> {
        self.rx.changed().await.map_err(|_| Error::ClientClosed)?;
        Ok(self.rx.borrow_and_update().clone())
    }

    /// The status changes from now on as a [`futures_core::Stream`], ending when the
    /// session task has ended (after its final status).
    pub fn into_stream(self) -> StateStream {
        StateStream {
            next: ReusableBoxFuture::new(next_status(self.rx)),
            done: false,
        }
    }

    /// Waits until the status satisfies `pred` (checking the current one first), for at
    /// most `timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when `timeout` passes; [`Error::ClientClosed`] when the session
    /// task ended without the status ever satisfying `pred`.
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe.
    pub async fn wait_for(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&SessionStatus) -> bool,
    ) -> Result<SessionStatus, Error> {
        let wait = self.rx.wait_for(|s| pred(s));
        match tokio::time::timeout(timeout, wait).await {
            Err(_) => Err(Error::Timeout),
            Ok(Err(_)) => Err(Error::ClientClosed),
            Ok(Ok(s)) => Ok(s.clone()),
        }
    }
}

async fn next_status(
    mut rx: watch::Receiver<SessionStatus>,
) -> (Option<SessionStatus>, watch::Receiver<SessionStatus>) {
    let next = match rx.changed().await {
        Ok(()) => Some(rx.borrow_and_update().clone()),
        Err(_) => None,
    };
    (next, rx)
}

/// Session status changes as a stream; see [`StateWatcher::into_stream`].
///
/// Like [`StateWatcher`], it yields the latest status after each change, so quick
/// successive changes may be seen as one.
pub struct StateStream {
    next: ReusableBoxFuture<'static, (Option<SessionStatus>, watch::Receiver<SessionStatus>)>,
    done: bool,
}

impl fmt::Debug for StateStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateStream")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl futures_core::Stream for StateStream {
    type Item = SessionStatus;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<SessionStatus>> {
        if self.done {
            return Poll::Ready(None);
        }
        let (next, rx) = std::task::ready!(self.next.poll(cx));
        match next {
            Some(status) => {
                self.next.set(next_status(rx));
                Poll::Ready(Some(status))
            }
            None => {
                self.done = true;
                Poll::Ready(None)
            }
        }
    }
}
