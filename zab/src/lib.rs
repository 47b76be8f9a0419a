//! corral-zab: fast leader election and ZAB atomic broadcast as a sans-IO state machine.
//!
//! Messages and timer ticks go in, messages, log appends and commits come out; no sockets,
//! no clocks. The replicated ensemble is built on this crate; a standalone server does not
//! need it.
//!
//! ```text
//!   on_message / tick / on_persisted ──► [ zab core ] ──► Vec<Action> (Send, Persist, Commit)
//! ```
//!
//! [`Peer`] is one server: fast leader election (votes compared by epoch, zxid, id; a newer
//! round resets the ballot box), then ZAB discovery (a quorum agrees on a new epoch above every
//! epoch it accepted), synchronisation (DIFF, TRUNC or SNAP per learner) and broadcast
//! (proposal, durable ack, commit on a quorum, per-follower FIFO).

pub mod message;
pub mod peer;

pub use message::{Entry, Message, PeerState, ServerId, Vote};
pub use peer::{epoch_of, zxid, Action, Config, Durable, Peer, ProposeError};

/// The role a server plays in the ensemble.
///
/// ```
/// use corral_zab::Role;
/// assert_eq!(Role::Standalone.as_str(), "standalone");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Not replicated: the only server.
    Standalone,
    /// Electing a leader.
    Looking,
    /// Following an established leader.
    Following,
    /// The established leader.
    Leading,
    /// A non-voting member that learns committed transactions.
    Observing,
}

impl Role {
    /// The word ZooKeeper prints for this role in `srvr` and `mntr`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Standalone => "standalone",
            Role::Looking => "looking",
            Role::Following => "follower",
            Role::Leading => "leader",
            Role::Observing => "observer",
        }
    }
}
