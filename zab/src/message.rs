//! Messages between servers, and the values they carry.

use std::sync::Arc;

/// A server id (`myid`).
pub type ServerId = u64;

/// Election / peer state carried in notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerState {
    /// Electing.
    Looking,
    /// Following an established leader.
    Following,
    /// Leading.
    Leading,
    /// Observing (never votes).
    Observing,
}

/// A vote: who should lead, judged by (peer epoch, zxid, id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Vote {
    /// Proposed leader.
    pub leader: ServerId,
    /// The proposed leader's last logged zxid.
    pub zxid: i64,
    /// The proposed leader's current epoch.
    pub peer_epoch: u32,
}

impl Vote {
    /// Whether `self` beats `other`: higher epoch, then higher zxid, then higher id.
    ///
    /// ```
    /// use corral_zab::Vote;
    /// let a = Vote { leader: 1, zxid: 10, peer_epoch: 2 };
    /// let b = Vote { leader: 3, zxid: 10, peer_epoch: 1 };
    /// assert!(a.beats(&b));
    /// assert!(!b.beats(&a));
    /// ```
    pub fn beats(&self, other: &Vote) -> bool {
        (self.peer_epoch, self.zxid, self.leader) > (other.peer_epoch, other.zxid, other.leader)
    }
}

/// One logged transaction: its zxid and opaque bytes (the server's encoded txn).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its zxid.
    pub zxid: i64,
    /// The transaction, encoded by the server; shared by the log, the persist action and
    /// every follower's proposal.
    pub data: Arc<[u8]>,
}

/// A message of the election or of the atomic broadcast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Election: the sender's current vote and state.
    Notification {
        /// The vote.
        vote: Vote,
        /// The sender's election round (logical clock).
        election_epoch: u64,
        /// The sender's state.
        state: PeerState,
    },
    /// Learner → leader: who I am and how far my history goes.
    FollowerInfo {
        /// The learner's accepted epoch.
        accepted_epoch: u32,
        /// The learner's last logged zxid.
        last_zxid: i64,
        /// True for an observer.
        observer: bool,
    },
    /// Leader → learner: the epoch it proposes.
    LeaderInfo {
        /// The new epoch.
        new_epoch: u32,
    },
    /// Learner → leader: the new epoch is accepted; here is my history's end.
    AckEpoch {
        /// The learner's current epoch (before this one).
        current_epoch: u32,
        /// The learner's last logged zxid.
        last_zxid: i64,
    },
    /// Leader → learner: drop every logged entry after `zxid`.
    Trunc {
        /// The last zxid to keep.
        zxid: i64,
    },
    /// Leader → learner: committed entries the learner lacks.
    Diff {
        /// The entries, in zxid order.
        entries: Vec<Entry>,
    },
    /// Leader → learner: the whole state at `zxid` (replaces the learner's state and log).
    Snap {
        /// The state's zxid.
        zxid: i64,
        /// The serialised state.
        data: Vec<u8>,
    },
    /// Leader → learner: sync is complete for epoch `zxid >> 32`.
    NewLeader {
        /// `epoch << 32`.
        zxid: i64,
    },
    /// Learner → leader: synced and durable.
    AckNewLeader {
        /// The NewLeader zxid acknowledged.
        zxid: i64,
    },
    /// Leader → learner: the ensemble is serving.
    UpToDate,
    /// Leader → follower: a new proposal.
    Proposal(Entry),
    /// Follower → leader: a proposal is durable here.
    Ack {
        /// The proposal's zxid.
        zxid: i64,
    },
    /// Follower → leader: these proposals (each named, in order) are durable here; what
    /// one fsync made durable, in one message.
    Acks {
        /// The proposals' zxids.
        zxids: Vec<i64>,
    },
    /// Leader → follower: every proposal up to `zxid` is committed.
    Commit {
        /// The commit point.
        zxid: i64,
    },
    /// Leader → observer: a committed entry.
    Inform(Entry),
    /// Leader → learner heartbeat, and the learner's answer.
    Ping,
    /// Learner → leader: a request to run through the leader (opaque to the core).
    Forward(Vec<u8>),
    /// Leader → learner: an answer to a forwarded request (opaque to the core).
    Reply(Vec<u8>),
}
