//! One server of the ensemble as a sans-IO state machine: fast leader election, then ZAB's
//! discovery, synchronisation and broadcast phases.
//!
//! ```text
//!             ┌────────── timeout / lost quorum / disconnect ──────────┐
//!             ▼                                                        │
//!   Looking (election) ──quorum agrees──► Leading: discovery ► sync ► broadcast
//!                     └────────────────► Following / Observing: info ► sync ► serving
//! ```
//!
//! Inputs are [`Peer::tick`], [`Peer::on_message`], [`Peer::on_persisted`],
//! [`Peer::on_disconnected`] and [`Peer::propose`]; every call records [`Action`]s that the
//! shell drains with [`Peer::take_actions`] and performs in order.
//!
//! Contract with the shell:
//! - `PersistEpochs`, `Truncate` and `InstallSnapshot` complete before any later action is
//!   performed (they are synchronous and durable). A `Truncate` or `InstallSnapshot` also
//!   applies to entries still waiting in the log's write queue.
//! - `Persist` appends to the log asynchronously; the shell reports the highest durable zxid
//!   with [`Peer::on_persisted`]. Nothing is acknowledged before that.
//! - `Commit { zxid }` applies every logged entry up to `zxid`, in order, exactly once; an
//!   entry may be committed before its own `Persist` is durable (apply it from the queue).
//! - `SendSnapshot { to, zxid }` sends [`Message::Snap`] with the state as applied so far,
//!   which is exactly the state at `zxid` when actions are performed in order.
//! - Messages between two servers travel over one connection, in order (TCP). A lost
//!   message is a broken connection: the shell reports it with [`Peer::on_disconnected`], and
//!   also when a `Send` cannot be delivered because the peer is unreachable.
//! - A leader/learner session lives on one connection. When the peer reports
//!   `RoleChanged { role: Looking, .. }` it has abandoned its session, and the shell closes
//!   its connections to the other servers (as ZooKeeper closes its quorum sockets), so that
//!   nothing of the old session is delivered later; the peers then see `on_disconnected`.
//! - At start, the shell applies everything on its disk and passes the tail of its log in
//!   [`Durable::recent`]. Such a tail may hold proposals that never committed; the leader
//!   removes them with `Truncate` (which may reach below the latest snapshot: the shell then
//!   rebuilds from an older snapshot and its log) or replaces the state with a snapshot.
//!
//! Safety notes (see the ZAB paper, Junqueira et al., DSN 2011):
//! - A learner records the new current epoch, and acknowledges NEWLEADER, only once the
//!   synced history is durable (ZOOKEEPER-4643, ZOOKEEPER-4646); it acknowledges proposals
//!   of the new epoch only after that.
//! - A leader records the new current epoch only once its own log is durable, and commits
//!   its adopted history only after a quorum acknowledged NEWLEADER.
//! - An epoch acknowledgement counts towards the leader's quorum only if the learner had not
//!   accepted that epoch before (ZooKeeper's `-1` epoch ack), so two leaders can never
//!   establish the same epoch.

use crate::message::{Entry, Message, PeerState, ServerId, Vote};
use crate::Role;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// The zxid of `counter` in `epoch`.
pub fn zxid(epoch: u32, counter: u32) -> i64 {
    (i64::from(epoch) << 32) | i64::from(counter)
}

/// The epoch of a zxid.
pub fn epoch_of(zxid: i64) -> u32 {
    (zxid as u64 >> 32) as u32
}

/// Static settings of a peer. Limits count ticks of the shell's clock.
#[derive(Debug, Clone)]
pub struct Config {
    /// This server.
    pub id: ServerId,
    /// Voting members (this server included if it votes).
    pub voters: BTreeSet<ServerId>,
    /// Observers (never vote, never count for a quorum).
    pub observers: BTreeSet<ServerId>,
    /// Ticks a learner may take to connect and sync (`initLimit`).
    pub init_limit: u64,
    /// Ticks of silence after which a learner or a leader gives up (`syncLimit`).
    pub sync_limit: u64,
    /// Ticks an election waits after a quorum agrees, for a better vote.
    pub finalize_wait: u64,
    /// Ticks between re-sent notifications / follower infos / pings.
    pub resend: u64,
    /// Entries kept in memory for DIFF syncs; older learners get a snapshot.
    pub log_window: usize,
}

/// What this server had on disk at start.
#[derive(Debug, Clone, Default)]
pub struct Durable {
    /// Highest epoch accepted in a LEADERINFO.
    pub accepted_epoch: u32,
    /// Epoch of the last NEWLEADER acknowledged.
    pub current_epoch: u32,
    /// Last logged zxid (everything logged is applied at start).
    pub last_zxid: i64,
    /// The newest logged entries (for DIFF syncs should this server lead).
    pub recent: Vec<Entry>,
}

/// Something the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send a message (best effort; lost messages are recovered by timeouts).
    Send {
        /// Recipient.
        to: ServerId,
        /// The message.
        msg: Message,
    },
    /// Append entries to the log; report durability with [`Peer::on_persisted`].
    Persist(Vec<Entry>),
    /// Durably record the epochs before doing anything else.
    PersistEpochs {
        /// Accepted epoch.
        accepted: u32,
        /// Current epoch.
        current: u32,
    },
    /// Drop logged entries after `zxid` and rebuild the state from what remains.
    Truncate {
        /// Last zxid kept.
        zxid: i64,
    },
    /// Replace the state and the log with a snapshot at `zxid`.
    InstallSnapshot {
        /// Its zxid.
        zxid: i64,
        /// The serialised state.
        data: Vec<u8>,
    },
    /// Send [`Message::Snap`] with the applied state (at `zxid`) to `to`.
    SendSnapshot {
        /// Recipient.
        to: ServerId,
        /// The state's zxid.
        zxid: i64,
    },
    /// Apply logged entries up to `zxid`.
    Commit {
        /// The commit point.
        zxid: i64,
    },
    /// An application message (forwarded request or its reply) for the shell.
    Deliver {
        /// Sender.
        from: ServerId,
        /// [`Message::Forward`] or [`Message::Reply`].
        msg: Message,
    },
    /// The role changed; `leader` is known once a learner or leader serves.
    RoleChanged {
        /// The new role.
        role: Role,
        /// The established leader, if serving.
        leader: Option<ServerId>,
        /// The established epoch, if serving.
        epoch: u32,
    },
}

/// Why a proposal was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProposeError {
    /// This server is not a serving leader.
    NotLeader,
    /// The epoch's zxid counter is exhausted; a new election is under way.
    EpochExhausted,
}

#[derive(Debug)]
struct Election {
    vote: Vote,
    /// Votes of this round from voters that are looking (ours included).
    recv: BTreeMap<ServerId, Vote>,
    /// Votes of servers that are out of the election (following / leading), of any round:
    /// a server that joins late must find the established leader whatever its own round.
    out: BTreeMap<ServerId, (Vote, PeerState)>,
    /// When a quorum agreed on our vote: decide at this tick unless a better vote comes.
    decide_at: Option<u64>,
    next_resend: u64,
    resend_every: u64,
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum LearnerPhase {
    AwaitLeaderInfo,
    Syncing,
    Serving,
}

#[derive(Debug)]
struct Learner {
    leader: ServerId,
    /// The vote the election ended with, told to looking servers (as ZooKeeper does).
    vote: Vote,
    phase: LearnerPhase,
    last_heard: u64,
    next_resend: u64,
    /// Ticks until the next FOLLOWERINFO: one at first, doubling up to `resend`. The leader
    /// may still be waiting out its own election when the first one arrives, and drops it.
    resend_every: u64,
    /// NEWLEADER to acknowledge, and the log end it covers: acknowledged once that is durable.
    pending_newleader: Option<(i64, i64)>,
    /// NEWLEADER was acknowledged (the current epoch is durable): proposals may be acked.
    newleader_acked: bool,
    /// Proposal zxids to acknowledge once durable.
    to_ack: VecDeque<i64>,
    /// The leader's epoch: its vote's until LEADERINFO, then the epoch it proposed.
    epoch: u32,
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum LeaderPhase {
    Discovery,
    Sync,
    Broadcast,
}

#[derive(Debug)]
struct LearnerInfo {
    accepted_epoch: u32,
    observer: bool,
    /// LEADERINFO went out in this session, so an epoch ack from it is an answer to it.
    info_sent: bool,
}

#[derive(Debug)]
struct Leader {
    /// The vote the election ended with, told to looking servers.
    vote: Vote,
    phase: LeaderPhase,
    started: u64,
    new_epoch: u32,
    /// A quorum acknowledged the new epoch and it is our durable current epoch.
    epoch_set: bool,
    infos: BTreeMap<ServerId, LearnerInfo>,
    /// Learners that acknowledged the new epoch, with their last zxid.
    epoch_acked: BTreeMap<ServerId, i64>,
    newleader_acked: BTreeSet<ServerId>,
    /// Learners that receive proposals/commits (followers) or informs (observers).
    synced: BTreeSet<ServerId>,
    last_heard: BTreeMap<ServerId, u64>,
    /// Outstanding proposals and who has acknowledged them.
    acks: BTreeMap<i64, BTreeSet<ServerId>>,
    counter: u32,
    next_ping: u64,
}

#[derive(Debug)]
enum State {
    Looking(Election),
    Learning(Learner),
    Leading(Leader),
}

/// How a leader brings one learner's log in line with its own.
#[derive(Debug, PartialEq, Eq)]
enum SyncPlan {
    /// Send the entries after this zxid.
    Diff(i64),
    /// Truncate the learner's log to this zxid, then send the entries after it.
    Trunc(i64),
    /// Send the applied state, then the entries after it.
    Snap,
}

/// One server of the ensemble.
#[derive(Debug)]
pub struct Peer {
    cfg: Config,
    accepted_epoch: u32,
    current_epoch: u32,
    /// Last zxid handed to the log (durable or not).
    last_logged: i64,
    /// Last zxid the log reported durable.
    last_durable: i64,
    /// Last zxid the shell was told to apply.
    committed: i64,
    /// Recent entries, in zxid order, for DIFF syncs.
    log: VecDeque<Entry>,
    /// The zxid just before the first entry of `log`.
    log_base: i64,
    /// Whether `log_base` is a real point of our history (a learner whose log ends exactly
    /// there can be sent a DIFF), rather than a guess made at start.
    log_base_known: bool,
    logical_clock: u64,
    now: u64,
    state: State,
    actions: Vec<Action>,
}

impl Peer {
    /// A peer that starts looking for a leader at the first [`Peer::start`].
    pub fn new(cfg: Config, durable: Durable) -> Peer {
        let mut log: VecDeque<Entry> = durable.recent.into_iter().collect();
        while log.len() > cfg.log_window.max(1) {
            log.pop_front();
        }
        let (log_base, log_base_known) = match log.front() {
            None => (durable.last_zxid, true),
            // The very first zxid (epoch 1 counter 1, see `check_discovery`) has nothing
            // before it.
            Some(e) if e.zxid == zxid(1, 1) => (0, true),
            // Within one epoch the entry before counter `c > 1` is `c - 1`; before counter 1
            // lies some earlier epoch's entry we cannot name.
            Some(e) => (e.zxid - 1, (e.zxid as u32) > 1),
        };
        let vote = Vote {
            leader: cfg.id,
            zxid: durable.last_zxid,
            peer_epoch: durable.current_epoch,
        };
        Peer {
            state: State::Looking(Election {
                vote,
                recv: BTreeMap::new(),
                out: BTreeMap::new(),
                decide_at: None,
                next_resend: 0,
                resend_every: cfg.resend,
            }),
            accepted_epoch: durable.accepted_epoch,
            current_epoch: durable.current_epoch,
            last_logged: durable.last_zxid,
            last_durable: durable.last_zxid,
            committed: durable.last_zxid,
            log,
            log_base,
            log_base_known,
            logical_clock: 0,
            now: 0,
            actions: Vec::new(),
            cfg,
        }
    }

    /// Starts the first election.
    pub fn start(&mut self) {
        self.look();
    }

    /// Drains the actions recorded so far.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    /// Moves the actions recorded so far into `buf` (which must be empty) and keeps `buf`'s
    /// allocation for the next ones: a shell that drains after every event reuses two
    /// buffers instead of growing a fresh one each time.
    ///
    /// ```
    /// use corral_zab::peer::{Config, Durable, Peer};
    /// let cfg = Config {
    ///     id: 1,
    ///     voters: [1, 2, 3].into(),
    ///     observers: Default::default(),
    ///     init_limit: 10,
    ///     sync_limit: 5,
    ///     finalize_wait: 0,
    ///     resend: 2,
    ///     log_window: 100,
    /// };
    /// let mut peer = Peer::new(cfg, Durable::default());
    /// let mut buf = Vec::new();
    /// peer.start();
    /// peer.swap_actions(&mut buf);
    /// assert!(!buf.is_empty(), "the first election sends votes");
    /// buf.clear(); // after performing them
    /// peer.swap_actions(&mut buf);
    /// assert!(buf.is_empty());
    /// ```
    pub fn swap_actions(&mut self, buf: &mut Vec<Action>) {
        debug_assert!(buf.is_empty(), "swap_actions into a non-empty buffer");
        std::mem::swap(&mut self.actions, buf);
    }

    /// This server's id.
    pub fn id(&self) -> ServerId {
        self.cfg.id
    }

    /// The current role.
    pub fn role(&self) -> Role {
        match &self.state {
            State::Looking(_) => Role::Looking,
            State::Learning(_) if self.is_observer() => Role::Observing,
            State::Learning(_) => Role::Following,
            State::Leading(_) => Role::Leading,
        }
    }

    /// Whether this server serves clients with an established leader.
    pub fn is_serving(&self) -> bool {
        match &self.state {
            State::Looking(_) => false,
            State::Learning(l) => l.phase == LearnerPhase::Serving,
            State::Leading(l) => l.phase == LeaderPhase::Broadcast,
        }
    }

    /// The established leader, when serving.
    pub fn leader(&self) -> Option<ServerId> {
        match &self.state {
            State::Learning(l) if l.phase == LearnerPhase::Serving => Some(l.leader),
            State::Leading(l) if l.phase == LeaderPhase::Broadcast => Some(self.cfg.id),
            _ => None,
        }
    }

    /// Epochs and zxids, for status output and tests: `(accepted epoch, current epoch, last
    /// logged zxid, last committed zxid)`.
    pub fn status(&self) -> (u32, u32, i64, i64) {
        (
            self.accepted_epoch,
            self.current_epoch,
            self.last_logged,
            self.committed,
        )
    }

    /// The current vote while looking.
    pub fn vote(&self) -> Option<Vote> {
        match &self.state {
            State::Looking(e) => Some(e.vote),
            _ => None,
        }
    }

    fn is_observer(&self) -> bool {
        self.cfg.observers.contains(&self.cfg.id)
    }

    fn quorum(&self, members: impl IntoIterator<Item = ServerId>) -> bool {
        let n = members
            .into_iter()
            .filter(|m| self.cfg.voters.contains(m))
            .collect::<BTreeSet<_>>()
            .len();
        n * 2 > self.cfg.voters.len()
    }

    fn send(&mut self, to: ServerId, msg: Message) {
        if to != self.cfg.id {
            self.actions.push(Action::Send { to, msg });
        }
    }

    fn everyone(&self) -> Vec<ServerId> {
        self.cfg
            .voters
            .iter()
            .chain(self.cfg.observers.iter())
            .copied()
            .filter(|s| *s != self.cfg.id)
            .collect()
    }

    fn my_vote(&self) -> Vote {
        Vote {
            leader: self.cfg.id,
            zxid: self.last_logged,
            peer_epoch: self.current_epoch,
        }
    }

    fn peer_state(&self) -> PeerState {
        match &self.state {
            State::Looking(_) => PeerState::Looking,
            State::Learning(_) if self.is_observer() => PeerState::Observing,
            State::Learning(_) => PeerState::Following,
            State::Leading(_) => PeerState::Leading,
        }
    }

    /// The vote we tell others about: while looking our proposal, else the vote the
    /// election ended with (so that a looking server of the same round can count it).
    fn current_vote(&self) -> Vote {
        match &self.state {
            State::Looking(e) => e.vote,
            State::Learning(l) => l.vote,
            State::Leading(l) => l.vote,
        }
    }

    fn notification(&self) -> Message {
        Message::Notification {
            vote: self.current_vote(),
            election_epoch: self.logical_clock,
            state: self.peer_state(),
        }
    }

    // ----- election -------------------------------------------------------------------

    fn look(&mut self) {
        if !matches!(self.state, State::Looking(_)) || self.logical_clock == 0 {
            self.actions.push(Action::RoleChanged {
                role: Role::Looking,
                leader: None,
                epoch: 0,
            });
        }
        self.logical_clock += 1;
        let vote = if self.is_observer() {
            // Observers never propose themselves; they look for the leader.
            Vote {
                leader: 0,
                zxid: i64::MIN,
                peer_epoch: 0,
            }
        } else {
            self.my_vote()
        };
        let mut recv = BTreeMap::new();
        if !self.is_observer() {
            recv.insert(self.cfg.id, vote);
        }
        self.state = State::Looking(Election {
            vote,
            recv,
            out: BTreeMap::new(),
            decide_at: None,
            next_resend: self.now + self.cfg.resend,
            resend_every: self.cfg.resend,
        });
        self.broadcast_notification();
        self.check_election();
    }

    fn broadcast_notification(&mut self) {
        let n = self.notification();
        for to in self.everyone() {
            self.send(to, n.clone());
        }
    }

    fn on_notification(&mut self, from: ServerId, vote: Vote, epoch: u64, state: PeerState) {
        let looking = matches!(self.state, State::Looking(_));
        let from_voter = self.cfg.voters.contains(&from);
        if !looking || !from_voter {
            // Tell a looking server who leads (or what we vote for). Observers never vote.
            // Answering a server that is not looking, or (as a looking observer, which knows
            // nothing) another observer, would only start a ping-pong.
            if state == PeerState::Looking && (!looking || !self.is_observer()) {
                let n = self.notification();
                self.send(from, n);
            }
            return;
        }
        match state {
            PeerState::Looking | PeerState::Observing => {
                let clock = self.logical_clock;
                let mut changed = false;
                if epoch > clock {
                    // A newer round: reset the ballot box and adopt the better of its vote
                    // and our own initial one.
                    self.logical_clock = epoch;
                    let mine = self.my_vote();
                    let observer = self.is_observer();
                    let State::Looking(e) = &mut self.state else {
                        return;
                    };
                    e.recv.clear();
                    e.out.remove(&from);
                    e.vote = if observer || vote.beats(&mine) {
                        vote
                    } else {
                        mine
                    };
                    if !observer {
                        e.recv.insert(self.cfg.id, e.vote);
                    }
                    changed = true;
                } else if epoch < clock {
                    // A stale round: answer with our current vote so it catches up.
                    let n = self.notification();
                    self.send(from, n);
                    return;
                } else {
                    let observer = self.is_observer();
                    let State::Looking(e) = &mut self.state else {
                        return;
                    };
                    e.out.remove(&from);
                    if vote.beats(&e.vote) && (!observer || vote.leader != 0) {
                        e.vote = vote;
                        if !observer {
                            e.recv.insert(self.cfg.id, vote);
                        }
                        changed = true;
                    }
                }
                if let State::Looking(e) = &mut self.state {
                    e.recv.insert(from, vote);
                    if changed {
                        e.decide_at = None;
                    }
                }
                if changed {
                    self.broadcast_notification();
                }
                self.check_election();
            }
            PeerState::Following | PeerState::Leading => {
                let clock = self.logical_clock;
                if let State::Looking(e) = &mut self.state {
                    if epoch == clock {
                        e.recv.insert(from, vote);
                    }
                    e.out.insert(from, (vote, state));
                }
                if epoch == clock {
                    self.check_same_round(vote);
                }
                self.check_out_of_election(vote.leader, epoch);
            }
        }
    }

    /// A quorum of this round's votes agrees with our vote: decide after `finalize_wait`, or at
    /// once when every voter holds it.
    fn check_election(&mut self) {
        let now = self.now;
        let wait = self.cfg.finalize_wait;
        let State::Looking(e) = &self.state else {
            return;
        };
        if e.vote.leader == 0 {
            return;
        }
        let agreeing: Vec<ServerId> = e
            .recv
            .iter()
            .filter(|(_, v)| **v == e.vote)
            .map(|(s, _)| *s)
            .collect();
        // Every voter holding our vote ends the wait: votes only get better within a round,
        // so each voter's own vote is no better than this one, and no better vote exists.
        let everyone = self
            .cfg
            .voters
            .iter()
            .all(|v| e.recv.get(v) == Some(&e.vote));
        let quorum = self.quorum(agreeing);
        if let State::Looking(e) = &mut self.state {
            if everyone {
                e.decide_at = Some(now);
            } else if quorum && e.decide_at.is_none() {
                e.decide_at = Some(now + wait);
            }
        }
        self.maybe_decide();
    }

    fn maybe_decide(&mut self) {
        let State::Looking(e) = &self.state else {
            return;
        };
        match e.decide_at {
            Some(at) if at <= self.now => {
                let vote = e.vote;
                self.decide(vote);
            }
            _ => {}
        }
    }

    /// A quorum of this round (looking or already out of the election) agrees on `vote`, and
    /// its leader says it leads: join it now (ZooKeeper's same-round FOLLOWING/LEADING case).
    fn check_same_round(&mut self, vote: Vote) {
        let State::Looking(e) = &self.state else {
            return;
        };
        if vote.leader == self.cfg.id
            || !matches!(e.out.get(&vote.leader), Some((_, PeerState::Leading)))
        {
            return;
        }
        let agreeing: Vec<ServerId> = e
            .recv
            .iter()
            .filter(|(_, v)| **v == vote)
            .map(|(s, _)| *s)
            .collect();
        if self.quorum(agreeing) {
            self.learn(vote.leader, vote);
        }
    }

    /// Servers already following or leading agree on `leader`, which says it leads: join it.
    ///
    /// Like ZooKeeper's `outofelection` check this ignores election rounds: the members of
    /// an established ensemble may have joined in different rounds.
    fn check_out_of_election(&mut self, leader: ServerId, epoch: u64) {
        let State::Looking(e) = &self.state else {
            return;
        };
        if leader == self.cfg.id {
            return;
        }
        let Some((leader_vote, PeerState::Leading)) = e.out.get(&leader).copied() else {
            return;
        };
        let backers: Vec<ServerId> = e
            .out
            .iter()
            .filter(|(_, (v, _))| v.leader == leader)
            .map(|(s, _)| *s)
            .collect();
        if self.quorum(backers) {
            self.logical_clock = self.logical_clock.max(epoch);
            self.learn(leader, leader_vote);
        }
    }

    fn decide(&mut self, vote: Vote) {
        if vote.leader == self.cfg.id && !self.is_observer() {
            self.lead(vote);
        } else {
            self.learn(vote.leader, vote);
        }
    }

    // ----- learner ----------------------------------------------------------------------

    fn learn(&mut self, leader: ServerId, vote: Vote) {
        self.state = State::Learning(Learner {
            leader,
            vote,
            phase: LearnerPhase::AwaitLeaderInfo,
            last_heard: self.now,
            next_resend: self.now + 1,
            resend_every: 1,
            pending_newleader: None,
            newleader_acked: false,
            to_ack: VecDeque::new(),
            epoch: vote.peer_epoch,
        });
        self.send_follower_info();
    }

    fn send_follower_info(&mut self) {
        let State::Learning(l) = &self.state else {
            return;
        };
        let leader = l.leader;
        let msg = Message::FollowerInfo {
            accepted_epoch: self.accepted_epoch,
            last_zxid: self.last_logged,
            observer: self.is_observer(),
        };
        self.send(leader, msg);
    }

    fn on_learner_message(&mut self, from: ServerId, msg: Message) {
        let State::Learning(l) = &mut self.state else {
            return;
        };
        if from != l.leader {
            return;
        }
        match msg {
            // Only a learner sends these, so the server we took for our leader does not lead
            // (we followed it on a stale report). Hearing them must not count as hearing from
            // a leader: two servers taking each other for the leader would keep each other
            // waiting forever. Look again.
            Message::FollowerInfo { .. } => return self.look(),
            Message::AckEpoch { .. }
            | Message::AckNewLeader { .. }
            | Message::Ack { .. }
            | Message::Acks { .. } => return,
            _ => {}
        }
        l.last_heard = self.now;
        let phase = l.phase;
        let session_epoch = l.epoch;
        match msg {
            Message::Ping => self.send(from, Message::Ping),
            Message::Forward(_) | Message::Reply(_) => {
                self.actions.push(Action::Deliver { from, msg })
            }
            Message::LeaderInfo { new_epoch } => {
                if phase != LearnerPhase::AwaitLeaderInfo {
                    // A repeat for this session (our follower info was re-sent): already
                    // answered. Another epoch means the leader is not the one we synced with.
                    if new_epoch != session_epoch {
                        self.look();
                    }
                    return;
                }
                if new_epoch < self.accepted_epoch {
                    return self.look();
                }
                if new_epoch > self.accepted_epoch {
                    self.accepted_epoch = new_epoch;
                    self.persist_epochs();
                }
                if let State::Learning(l) = &mut self.state {
                    l.phase = LearnerPhase::Syncing;
                    l.epoch = new_epoch;
                }
                let ack = Message::AckEpoch {
                    current_epoch: self.current_epoch,
                    last_zxid: self.last_logged,
                };
                self.send(from, ack);
            }
            // Everything else belongs to a session that has begun with LEADERINFO.
            _ if phase == LearnerPhase::AwaitLeaderInfo => {}
            Message::Trunc { zxid } => {
                self.actions.push(Action::Truncate { zxid });
                self.log.retain(|e| e.zxid <= zxid);
                self.last_logged = zxid;
                self.last_durable = self.last_durable.min(zxid);
                self.committed = self.committed.min(zxid);
                if self.log.is_empty() {
                    self.log_base = zxid;
                    self.log_base_known = true;
                }
            }
            Message::Diff { entries } => {
                let last = self.last_logged;
                let entries: Vec<Entry> = entries.into_iter().filter(|e| e.zxid > last).collect();
                if let Some(e) = entries.last() {
                    self.last_logged = e.zxid;
                    self.log.extend(entries.iter().cloned());
                    self.trim_log();
                    self.actions.push(Action::Persist(entries));
                }
            }
            Message::Snap { zxid, data } => {
                self.actions.push(Action::InstallSnapshot { zxid, data });
                self.log.clear();
                self.log_base = zxid;
                self.log_base_known = true;
                self.last_logged = zxid;
                self.last_durable = zxid;
                self.committed = zxid;
            }
            Message::Proposal(entry) => {
                if epoch_of(entry.zxid) != session_epoch {
                    return; // not of this leader's epoch
                }
                if entry.zxid <= self.last_logged {
                    // A proposal we hold from before this session (the leader re-sends every
                    // outstanding one to a joining follower): acknowledge it once durable.
                    if self.log.iter().any(|e| *e == entry) {
                        if let State::Learning(l) = &mut self.state {
                            l.to_ack.push_back(entry.zxid);
                        }
                        self.learner_acks();
                    }
                    return;
                }
                self.last_logged = entry.zxid;
                if let State::Learning(l) = &mut self.state {
                    l.to_ack.push_back(entry.zxid);
                }
                self.log.push_back(entry.clone());
                self.trim_log();
                self.actions.push(Action::Persist(vec![entry]));
            }
            Message::Inform(entry) => {
                if entry.zxid > self.last_logged {
                    self.last_logged = entry.zxid;
                    self.log.push_back(entry.clone());
                    self.actions.push(Action::Persist(vec![entry.clone()]));
                }
                self.commit_to(entry.zxid);
                self.trim_log();
            }
            Message::NewLeader { zxid } => {
                let epoch = epoch_of(zxid);
                if epoch != self.accepted_epoch || epoch != session_epoch {
                    return self.look();
                }
                // The current epoch is recorded, and NEWLEADER acknowledged, only once the
                // history synced so far is durable: a crash in between must not leave a
                // server with the new epoch and an older log (it would win elections).
                let covers = self.last_logged;
                if let State::Learning(l) = &mut self.state {
                    if l.pending_newleader.is_none() && !l.newleader_acked {
                        l.pending_newleader = Some((zxid, covers));
                    }
                }
                self.learner_acks();
            }
            Message::UpToDate => {
                if let State::Learning(l) = &mut self.state {
                    if l.phase != LearnerPhase::Serving {
                        l.phase = LearnerPhase::Serving;
                        let (leader, epoch) = (l.leader, self.current_epoch);
                        let role = self.role();
                        self.actions.push(Action::RoleChanged {
                            role,
                            leader: Some(leader),
                            epoch,
                        });
                    }
                }
            }
            Message::Commit { zxid } => self.commit_to(zxid),
            Message::Notification { .. }
            | Message::FollowerInfo { .. }
            | Message::AckEpoch { .. }
            | Message::AckNewLeader { .. }
            | Message::Ack { .. }
            | Message::Acks { .. } => {}
        }
    }

    /// Acknowledges NEWLEADER once the history before it is durable, then the proposals
    /// that are durable (never before NEWLEADER: the epoch must be durable first).
    fn learner_acks(&mut self) {
        let durable = self.last_durable;
        let State::Learning(l) = &mut self.state else {
            return;
        };
        if let Some((z, covers)) = l.pending_newleader {
            if durable < covers {
                return;
            }
            l.pending_newleader = None;
            l.newleader_acked = true;
            let leader = l.leader;
            let epoch = epoch_of(z);
            if epoch > self.current_epoch {
                self.current_epoch = epoch;
                self.persist_epochs();
            }
            self.send(leader, Message::AckNewLeader { zxid: z });
        }
        let State::Learning(l) = &mut self.state else {
            return;
        };
        if !l.newleader_acked {
            return;
        }
        let leader = l.leader;
        // One ACK covers every proposal up to its zxid: proposals arrive and are logged in
        // order, so a learner that has one durably has every earlier one.
        let mut acks = Vec::new();
        while l.to_ack.front().is_some_and(|z| *z <= durable) {
            acks.push(l.to_ack.pop_front().expect("front"));
        }
        // Everything one fsync made durable goes in one message, each zxid named.
        match acks.len() {
            0 => {}
            1 => self.send(leader, Message::Ack { zxid: acks[0] }),
            _ => self.send(leader, Message::Acks { zxids: acks }),
        }
    }

    fn commit_to(&mut self, zxid: i64) {
        let target = zxid.min(self.last_logged);
        if target > self.committed {
            self.committed = target;
            self.actions.push(Action::Commit { zxid: target });
        }
    }

    // ----- leader -------------------------------------------------------------------------

    fn lead(&mut self, vote: Vote) {
        self.state = State::Leading(Leader {
            vote,
            phase: LeaderPhase::Discovery,
            started: self.now,
            new_epoch: 0,
            epoch_set: false,
            infos: BTreeMap::new(),
            epoch_acked: BTreeMap::new(),
            newleader_acked: BTreeSet::new(),
            synced: BTreeSet::new(),
            last_heard: BTreeMap::new(),
            acks: BTreeMap::new(),
            counter: 0,
            next_ping: self.now,
        });
        self.check_discovery();
    }

    fn leader_mut(&mut self) -> Option<&mut Leader> {
        match &mut self.state {
            State::Leading(l) => Some(l),
            _ => None,
        }
    }

    fn leading_state(&self) -> Option<&Leader> {
        match &self.state {
            State::Leading(l) => Some(l),
            _ => None,
        }
    }

    fn check_discovery(&mut self) {
        let me = self.cfg.id;
        let Some(l) = self.leader_mut() else { return };
        if l.phase != LeaderPhase::Discovery {
            return;
        }
        let members: Vec<ServerId> = l.infos.keys().copied().chain([me]).collect();
        if !self.quorum(members) {
            return;
        }
        let accepted = self.accepted_epoch;
        let Some(l) = self.leader_mut() else { return };
        let max = l
            .infos
            .values()
            .map(|i| i.accepted_epoch)
            .chain([accepted])
            .max()
            .unwrap_or(0);
        let new_epoch = max + 1;
        l.new_epoch = new_epoch;
        l.phase = LeaderPhase::Sync;
        let learners: Vec<ServerId> = l.infos.keys().copied().collect();
        for info in l.infos.values_mut() {
            info.info_sent = true;
        }
        self.accepted_epoch = new_epoch;
        self.persist_epochs();
        for to in learners {
            self.send(to, Message::LeaderInfo { new_epoch });
        }
    }

    fn on_leader_message(&mut self, from: ServerId, msg: Message) {
        let now = self.now;
        let Some(l) = self.leader_mut() else { return };
        l.last_heard.insert(from, now);
        match msg {
            Message::FollowerInfo {
                accepted_epoch,
                observer,
                ..
            } => {
                // A learner (re)joining starts over.
                l.synced.remove(&from);
                l.epoch_acked.remove(&from);
                l.newleader_acked.remove(&from);
                l.infos.insert(
                    from,
                    LearnerInfo {
                        accepted_epoch,
                        observer,
                        info_sent: false,
                    },
                );
                if l.phase == LeaderPhase::Discovery {
                    return self.check_discovery();
                }
                let new_epoch = l.new_epoch;
                if accepted_epoch > new_epoch {
                    // It promised a newer epoch and can never follow ours: step down so an
                    // election forms an epoch everyone can accept.
                    return self.look();
                }
                if let Some(i) = l.infos.get_mut(&from) {
                    i.info_sent = true;
                }
                self.send(from, Message::LeaderInfo { new_epoch });
            }
            Message::AckEpoch {
                current_epoch,
                last_zxid,
            } => {
                if !l.infos.get(&from).is_some_and(|i| i.info_sent) {
                    return; // not an answer to this session's LEADERINFO
                }
                if (current_epoch, last_zxid) > (self.current_epoch, self.last_logged)
                    && self.cfg.voters.contains(&from)
                {
                    // A learner has history we lack: we must not lead.
                    return self.look();
                }
                let Some(l) = self.leader_mut() else { return };
                l.epoch_acked.insert(from, last_zxid);
                if l.phase == LeaderPhase::Broadcast {
                    self.sync_learner(from, last_zxid);
                    return;
                }
                self.check_epoch_quorum();
            }
            Message::AckNewLeader { zxid } => {
                if epoch_of(zxid) != l.new_epoch || !l.synced.contains(&from) {
                    return;
                }
                l.newleader_acked.insert(from);
                if l.phase == LeaderPhase::Broadcast {
                    self.finish_sync(from);
                } else {
                    self.check_established();
                }
            }
            Message::Ack { zxid } => {
                if let Some(set) = l.acks.get_mut(&zxid) {
                    set.insert(from);
                }
                self.try_commit();
            }
            Message::Acks { zxids } => {
                // Each named proposal, exactly as that many ACKs; one commit round after.
                for zxid in zxids {
                    if let Some(set) = l.acks.get_mut(&zxid) {
                        set.insert(from);
                    }
                }
                self.try_commit();
            }
            Message::Ping => {}
            Message::Forward(_) | Message::Reply(_) => {
                self.actions.push(Action::Deliver { from, msg })
            }
            _ => {}
        }
    }

    /// Once a quorum acknowledged the new epoch (counting only learners that had not
    /// accepted it before) and our log is durable, the epoch becomes current and every
    /// acknowledged learner is synced.
    fn check_epoch_quorum(&mut self) {
        let me = self.cfg.id;
        let durable = self.last_durable >= self.last_logged;
        let Some(l) = self.leader_mut() else { return };
        if l.phase != LeaderPhase::Sync {
            return;
        }
        if !l.epoch_set {
            let new_epoch = l.new_epoch;
            let counted: Vec<ServerId> = l
                .epoch_acked
                .keys()
                .copied()
                .filter(|s| l.infos.get(s).is_some_and(|i| i.accepted_epoch < new_epoch))
                .chain([me])
                .collect();
            if !self.quorum(counted) || !durable {
                return;
            }
            let Some(l) = self.leader_mut() else { return };
            l.epoch_set = true;
            self.current_epoch = new_epoch;
            self.persist_epochs();
        }
        let Some(l) = self.leader_mut() else { return };
        let pending: Vec<(ServerId, i64)> = l
            .epoch_acked
            .iter()
            .filter(|(s, _)| !l.synced.contains(s))
            .map(|(s, z)| (*s, *z))
            .collect();
        for (s, z) in pending {
            self.sync_learner(s, z);
        }
        self.check_established();
    }

    /// Whether a learner whose log ends at `z` shares our history up to `z`, so that a DIFF
    /// from `z` is enough.
    fn has_point(&self, z: i64) -> bool {
        (z == self.log_base && self.log_base_known) || self.log.iter().any(|e| e.zxid == z)
    }

    /// How to bring a learner whose log ends at `last` to our history up to `upto`.
    ///
    /// A zxid names one proposal, so a learner that has one of our zxids has our history up
    /// to it. Inside one epoch every log is a prefix of that epoch's leader's log, so a
    /// learner ahead of us in the same epoch can be truncated; across epochs its older
    /// entries may differ from ours, and only a snapshot is safe (as in ZooKeeper's
    /// `LearnerHandler.syncFollower`).
    fn sync_plan(&self, last: i64, upto: i64) -> Option<SyncPlan> {
        if last == upto {
            return None;
        }
        if last > upto {
            return Some(if epoch_of(last) == epoch_of(upto) {
                SyncPlan::Trunc(upto)
            } else {
                SyncPlan::Snap
            });
        }
        if self.has_point(last) {
            return Some(SyncPlan::Diff(last));
        }
        if last > self.log_base {
            let prev = self
                .log
                .iter()
                .map(|e| e.zxid)
                .filter(|z| *z < last)
                .max()
                .unwrap_or(self.log_base);
            if epoch_of(prev) == epoch_of(last) && self.has_point(prev) {
                return Some(SyncPlan::Trunc(prev));
            }
        }
        Some(SyncPlan::Snap)
    }

    /// Brings learner `to` (whose log ends at `last`) up to this leader's history.
    fn sync_learner(&mut self, to: ServerId, last: i64) {
        let Some(l) = self.leader_mut() else { return };
        let observer = l.infos.get(&to).is_some_and(|i| i.observer);
        let broadcasting = l.phase == LeaderPhase::Broadcast;
        let new_epoch = l.new_epoch;
        l.synced.insert(to);
        // The learner is compared with our whole log, so that one holding some of our
        // outstanding proposals is never truncated (a truncated proposal may commit while the
        // TRUNC is in flight). Before the leader is established the whole log is the history
        // it adopts (and will commit) and goes as a diff; afterwards committed history goes as
        // a diff, and followers get every outstanding proposal as a proposal so that they
        // acknowledge it (those they hold already included). Observers learn later commits
        // through informs.
        let diff_to = if broadcasting {
            self.committed
        } else {
            self.last_logged
        };
        let from = match self.sync_plan(last, self.last_logged) {
            None => None,
            Some(SyncPlan::Diff(z)) => Some(z),
            Some(SyncPlan::Trunc(z)) => {
                self.send(to, Message::Trunc { zxid: z });
                Some(z)
            }
            Some(SyncPlan::Snap) => {
                self.actions.push(Action::SendSnapshot {
                    to,
                    zxid: self.committed,
                });
                Some(self.committed)
            }
        };
        if let Some(from) = from {
            let entries: Vec<Entry> = self
                .log
                .iter()
                .filter(|e| e.zxid > from && e.zxid <= diff_to)
                .cloned()
                .collect();
            if !entries.is_empty() {
                self.send(to, Message::Diff { entries });
            }
        }
        if broadcasting && !observer {
            let outstanding: Vec<Entry> = self
                .log
                .iter()
                .filter(|e| e.zxid > self.committed)
                .cloned()
                .collect();
            for e in outstanding {
                self.send(to, Message::Proposal(e));
            }
        }
        self.send(
            to,
            Message::NewLeader {
                zxid: zxid(new_epoch, 0),
            },
        );
    }

    fn finish_sync(&mut self, to: ServerId) {
        let committed = self.committed;
        self.send(to, Message::Commit { zxid: committed });
        self.send(to, Message::UpToDate);
    }

    /// A quorum acknowledged NEWLEADER: the adopted history is committed and we serve.
    fn check_established(&mut self) {
        let me = self.cfg.id;
        let Some(l) = self.leader_mut() else { return };
        if l.phase != LeaderPhase::Sync || !l.epoch_set {
            return;
        }
        // Our own history is durable: `epoch_set` waited for it and it has not grown since.
        let members: Vec<ServerId> = l.newleader_acked.iter().copied().chain([me]).collect();
        if !self.quorum(members) {
            return;
        }
        let Some(l) = self.leader_mut() else { return };
        l.phase = LeaderPhase::Broadcast;
        let acked: Vec<ServerId> = l.newleader_acked.iter().copied().collect();
        let epoch = l.new_epoch;
        let last = self.last_logged;
        if last > self.committed {
            self.committed = last;
            self.actions.push(Action::Commit { zxid: last });
        }
        self.trim_log();
        for s in acked {
            self.finish_sync(s);
        }
        self.actions.push(Action::RoleChanged {
            role: Role::Leading,
            leader: Some(me),
            epoch,
        });
    }

    /// Proposes `data` as the next transaction. Only a serving leader accepts.
    ///
    /// # Errors
    /// [`ProposeError::NotLeader`] when not a serving leader; [`ProposeError::EpochExhausted`]
    /// when the zxid counter ran out (the leader steps down so a new epoch starts).
    pub fn propose(&mut self, data: Vec<u8>) -> Result<i64, ProposeError> {
        let voters = &self.cfg.voters;
        let State::Leading(l) = &mut self.state else {
            return Err(ProposeError::NotLeader);
        };
        if l.phase != LeaderPhase::Broadcast {
            return Err(ProposeError::NotLeader);
        }
        if l.counter == u32::MAX {
            self.look();
            return Err(ProposeError::EpochExhausted);
        }
        l.counter += 1;
        let z = zxid(l.new_epoch, l.counter);
        l.acks.insert(z, BTreeSet::new());
        let followers: Vec<ServerId> = l
            .synced
            .iter()
            .copied()
            .filter(|s| voters.contains(s))
            .collect();
        let entry = Entry {
            zxid: z,
            data: data.into(),
        };
        self.last_logged = z;
        self.log.push_back(entry.clone());
        self.actions.push(Action::Persist(vec![entry.clone()]));
        for f in followers {
            self.send(f, Message::Proposal(entry.clone()));
        }
        self.try_commit();
        Ok(z)
    }

    /// Test and tooling hook: sets the zxid counter of a serving leader.
    pub fn set_counter_for_test(&mut self, counter: u32) {
        if let Some(l) = self.leader_mut() {
            l.counter = counter;
        }
    }

    fn try_commit(&mut self) {
        let me = self.cfg.id;
        let durable = self.last_durable;
        while let Some(l) = self.leading_state() {
            if l.phase != LeaderPhase::Broadcast {
                break;
            }
            let Some((&z, acks)) = l.acks.iter().next() else {
                break;
            };
            let mine = durable >= z;
            let voters = &self.cfg.voters;
            let acked = voters
                .iter()
                .filter(|v| acks.contains(v) || (mine && **v == me))
                .count();
            if acked * 2 <= voters.len() {
                break;
            }
            let Some(l) = self.leader_mut() else { break };
            l.acks.remove(&z);
            self.committed = z;
            self.actions.push(Action::Commit { zxid: z });
            // Followers hear COMMIT; observers, which saw no proposal, get the entry (INFORM).
            let Some(l) = self.leading_state() else { break };
            let mut learners = Vec::with_capacity(l.synced.len());
            let mut any_observer = false;
            for s in &l.synced {
                let observer = l.infos.get(s).is_some_and(|i| i.observer);
                any_observer |= observer;
                learners.push((*s, observer));
            }
            let entry = if any_observer {
                // The log is in zxid order.
                self.log
                    .binary_search_by_key(&z, |e| e.zxid)
                    .ok()
                    .and_then(|i| self.log.get(i))
                    .cloned()
            } else {
                None
            };
            for (s, observer) in learners {
                if observer {
                    if let Some(e) = &entry {
                        self.send(s, Message::Inform(e.clone()));
                    }
                } else {
                    self.send(s, Message::Commit { zxid: z });
                }
            }
            self.trim_log();
        }
    }

    // ----- common -------------------------------------------------------------------------

    fn persist_epochs(&mut self) {
        self.actions.push(Action::PersistEpochs {
            accepted: self.accepted_epoch,
            current: self.current_epoch,
        });
    }

    fn trim_log(&mut self) {
        while self.log.len() > self.cfg.log_window.max(1) {
            match self.log.front() {
                Some(e) if e.zxid <= self.committed => {
                    let e = self.log.pop_front().expect("front");
                    self.log_base = e.zxid;
                    self.log_base_known = true;
                }
                _ => break,
            }
        }
    }

    /// A message from `from`.
    pub fn on_message(&mut self, from: ServerId, msg: Message) {
        match msg {
            Message::Notification {
                vote,
                election_epoch,
                state,
            } => self.on_notification(from, vote, election_epoch, state),
            other => match &self.state {
                State::Looking(_) => {}
                State::Learning(_) => self.on_learner_message(from, other),
                State::Leading(_) => self.on_leader_message(from, other),
            },
        }
    }

    /// The log is durable up to `zxid`.
    pub fn on_persisted(&mut self, zxid: i64) {
        if zxid <= self.last_durable {
            return;
        }
        self.last_durable = zxid.min(self.last_logged);
        match &self.state {
            State::Learning(_) => self.learner_acks(),
            State::Leading(_) => {
                self.check_epoch_quorum();
                self.try_commit();
            }
            State::Looking(_) => {}
        }
    }

    /// A connection to `peer` came up. While looking, `peer` is told our vote at once; a
    /// learner still waiting for its leader's LEADERINFO repeats its FOLLOWERINFO. Without this
    /// both happen at the next re-send tick; with it a fresh link costs no extra wait.
    pub fn on_connected(&mut self, peer: ServerId) {
        match &self.state {
            State::Looking(_) => {
                let n = self.notification();
                self.send(peer, n);
            }
            State::Learning(l) if l.leader == peer && l.phase == LearnerPhase::AwaitLeaderInfo => {
                self.send_follower_info();
            }
            _ => {}
        }
    }

    /// The connection to `peer` broke (or could not be made).
    pub fn on_disconnected(&mut self, peer: ServerId) {
        match &mut self.state {
            State::Learning(l) if l.leader == peer => self.look(),
            State::Leading(l) => {
                l.synced.remove(&peer);
                l.infos.remove(&peer);
                l.epoch_acked.remove(&peer);
                l.newleader_acked.remove(&peer);
                l.last_heard.remove(&peer);
                self.check_leader_quorum();
            }
            _ => {}
        }
    }

    /// A serving leader keeps leading only while a quorum of synced followers was heard
    /// from within `sync_limit` ticks.
    fn check_leader_quorum(&mut self) {
        let me = self.cfg.id;
        let now = self.now;
        let limit = self.cfg.sync_limit;
        let Some(l) = self.leader_mut() else { return };
        if l.phase != LeaderPhase::Broadcast {
            return;
        }
        let alive: Vec<ServerId> = l
            .synced
            .iter()
            .copied()
            .filter(|s| {
                l.last_heard
                    .get(s)
                    .is_some_and(|t| now.saturating_sub(*t) < limit)
            })
            .chain([me])
            .collect();
        if !self.quorum(alive) {
            self.look();
        }
    }

    /// One tick of the shell's clock.
    pub fn tick(&mut self) {
        self.now += 1;
        let now = self.now;
        match &mut self.state {
            State::Looking(e) => {
                if now >= e.next_resend {
                    e.resend_every = (e.resend_every * 2).min(self.cfg.resend * 16).max(1);
                    e.next_resend = now + e.resend_every;
                    self.broadcast_notification();
                }
                self.maybe_decide();
            }
            State::Learning(l) => {
                let limit = if l.phase == LearnerPhase::Serving {
                    self.cfg.sync_limit
                } else {
                    self.cfg.init_limit
                };
                if now.saturating_sub(l.last_heard) >= limit {
                    return self.look();
                }
                if l.phase == LearnerPhase::AwaitLeaderInfo && now >= l.next_resend {
                    l.resend_every = (l.resend_every * 2).min(self.cfg.resend).max(1);
                    l.next_resend = now + l.resend_every;
                    self.send_follower_info();
                }
            }
            State::Leading(l) => {
                if l.phase != LeaderPhase::Broadcast
                    && now.saturating_sub(l.started) >= self.cfg.init_limit
                {
                    return self.look();
                }
                self.check_leader_quorum();
                let resend = self.cfg.resend;
                let Some(l) = self.leader_mut() else { return };
                if now >= l.next_ping {
                    l.next_ping = now + resend;
                    let learners: Vec<ServerId> = l.infos.keys().copied().collect();
                    for s in learners {
                        self.send(s, Message::Ping);
                    }
                }
            }
        }
    }

    /// Sends an application message to `to` (e.g. a forwarded request to the leader).
    pub fn send_app(&mut self, to: ServerId, msg: Message) {
        self.send(to, msg);
    }
}
