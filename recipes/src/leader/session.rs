//! Waiting for a session that a leadership recipe can use: connected, or (with session
//! renewal) the next session after an expiry.

use corral_client::{Client, Error, KeeperState, SessionStatus, StateWatcher};
use tokio_util::sync::CancellationToken;

use crate::lock::common::terminal_error;

/// The outcome of [`usable_session`].
#[derive(Debug)]
pub(crate) enum Usable {
    /// Connected to a server of the quorum in this session.
    Session(SessionStatus),
    /// The recipe was asked to stop.
    Shutdown,
    /// The client can never be used again (closed, expired without renewal, auth failed).
    Ended(Error),
}

/// Waits until the client is connected (`SyncConnected`), whatever the session.
///
/// An expired session is not the end when the client renews sessions
/// ([`corral_client::ClientBuilder::with_session_renewal`]): the next session follows
/// with a higher epoch. Without renewal the session task ends, and so does the wait.
///
/// # Cancellation safety
///
/// Cancel-safe.
pub(crate) async fn usable_session(
    client: &Client,
    states: &mut StateWatcher,
    shutdown: &CancellationToken,
) -> Usable {
    loop {
        let status = client.status();
        match status.keeper_state {
            KeeperState::SyncConnected => return Usable::Session(status),
            KeeperState::Closed | KeeperState::AuthFailed => {
                return Usable::Ended(terminal_error(&status))
            }
            _ => {}
        }
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Usable::Shutdown,
            changed = states.changed() => {
                if changed.is_err() {
                    return Usable::Ended(terminal_error(&client.status()));
                }
            }
        }
    }
}

/// Whether `status` is still session `epoch`, connected to a quorum server.
pub(crate) fn connected_in(status: &SessionStatus, epoch: u64) -> bool {
    status.epoch == epoch && status.keeper_state == KeeperState::SyncConnected
}
