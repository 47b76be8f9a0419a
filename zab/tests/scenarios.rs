//! Core scenarios (STYLE §8.2): set up peers, feed events, compare the drained actions with
//! an expected literal.
//!
//! [`Cluster`] is a tiny in-memory router used only to reach the state a scenario starts
//! from (an election, an established ensemble); the step under test is then driven by hand
//! and its actions are asserted exactly.

use corral_zab::{
    zxid, Action, Config, Durable, Entry, Message, Peer, PeerState, ProposeError, Role, ServerId,
    Vote,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

fn config(id: ServerId, voters: &[ServerId], observers: &[ServerId]) -> Config {
    Config {
        id,
        voters: voters.iter().copied().collect(),
        observers: observers.iter().copied().collect(),
        init_limit: 10,
        sync_limit: 5,
        finalize_wait: 0,
        resend: 2,
        log_window: 4,
    }
}

fn entry(epoch: u32, counter: u32) -> Entry {
    Entry {
        zxid: zxid(epoch, counter),
        data: format!("{epoch}:{counter}").into_bytes().into(),
    }
}

/// `count` entries of `epoch`, from counter `from`.
fn entries(epoch: u32, from: u32, count: u32) -> Vec<Entry> {
    (from..from + count).map(|c| entry(epoch, c)).collect()
}

fn durable(accepted: u32, current: u32, log: Vec<Entry>) -> Durable {
    Durable {
        accepted_epoch: accepted,
        current_epoch: current,
        last_zxid: log.last().map_or(0, |e| e.zxid),
        recent: log,
    }
}

fn send(to: ServerId, msg: Message) -> Action {
    Action::Send { to, msg }
}

fn notification(
    leader: ServerId,
    z: i64,
    peer_epoch: u32,
    round: u64,
    state: PeerState,
) -> Message {
    Message::Notification {
        vote: Vote {
            leader,
            zxid: z,
            peer_epoch,
        },
        election_epoch: round,
        state,
    }
}

/// Routes messages between peers in FIFO order. Persists complete at once unless the server
/// is in `manual` (then the test reports durability itself). A server that goes back to
/// looking closes its connections, as the shell contract asks.
struct Cluster {
    peers: BTreeMap<ServerId, Peer>,
    queue: VecDeque<(ServerId, ServerId, Message)>,
    manual: BTreeSet<ServerId>,
    /// Servers cut off from everyone: their messages are dropped.
    cut: BTreeSet<ServerId>,
    /// Every action performed, per server.
    seen: BTreeMap<ServerId, Vec<Action>>,
}

impl Cluster {
    fn new(
        voters: &[ServerId],
        observers: &[ServerId],
        mut disk: BTreeMap<ServerId, Durable>,
    ) -> Cluster {
        let peers = voters
            .iter()
            .chain(observers)
            .map(|id| {
                let d = disk.remove(id).unwrap_or_default();
                (*id, Peer::new(config(*id, voters, observers), d))
            })
            .collect();
        Cluster {
            peers,
            queue: VecDeque::new(),
            manual: BTreeSet::new(),
            cut: BTreeSet::new(),
            seen: BTreeMap::new(),
        }
    }

    fn peer(&mut self, id: ServerId) -> &mut Peer {
        self.peers.get_mut(&id).expect("peer")
    }

    /// Calls `f` on `id`, then performs the resulting actions everywhere.
    fn with(&mut self, id: ServerId, f: impl FnOnce(&mut Peer)) {
        let was_looking = self.peer(id).role() == Role::Looking;
        f(self.peer(id));
        self.after(id, was_looking);
    }

    fn after(&mut self, id: ServerId, was_looking: bool) {
        if !was_looking && self.peer(id).role() == Role::Looking {
            self.close(id);
        }
        let actions = self.peer(id).take_actions();
        let mut persisted = None;
        for a in actions {
            self.seen.entry(id).or_default().push(a.clone());
            match a {
                Action::Send { to, msg } if !self.cut.contains(&id) && !self.cut.contains(&to) => {
                    self.queue.push_back((id, to, msg));
                }
                Action::Persist(es) if !self.manual.contains(&id) => {
                    persisted = es.last().map(|e| e.zxid);
                }
                Action::SendSnapshot { to, zxid } => {
                    let data = Vec::new();
                    self.queue.push_back((id, to, Message::Snap { zxid, data }));
                }
                _ => {}
            }
        }
        // The log completes after the batch, as a real one would.
        if let Some(z) = persisted {
            self.with(id, |p| p.on_persisted(z));
        }
    }

    /// `id` left its role: its connections close and the other ends hear about it.
    fn close(&mut self, id: ServerId) {
        self.queue.retain(|(f, t, _)| *f != id && *t != id);
        let others: Vec<ServerId> = self.peers.keys().copied().filter(|o| *o != id).collect();
        for o in others {
            self.with(o, |p| p.on_disconnected(id));
        }
    }

    fn start(&mut self) {
        let ids: Vec<ServerId> = self.peers.keys().copied().collect();
        for id in ids {
            self.with(id, Peer::start);
        }
    }

    fn deliver_one(&mut self) -> bool {
        let Some((from, to, msg)) = self.queue.pop_front() else {
            return false;
        };
        self.with(to, |p| p.on_message(from, msg));
        true
    }

    fn run(&mut self) {
        let mut n = 0;
        while self.deliver_one() {
            n += 1;
            assert!(n < 10_000, "message storm");
        }
    }

    fn tick_all(&mut self) {
        let ids: Vec<ServerId> = self.peers.keys().copied().collect();
        for id in ids {
            self.with(id, Peer::tick);
        }
    }

    /// Runs until every server serves, ticking when the network is quiet.
    fn settle(&mut self) {
        for _ in 0..50 {
            self.run();
            if self.peers.values().all(Peer::is_serving) {
                return;
            }
            self.tick_all();
        }
        panic!("did not settle: {:?}", self.roles());
    }

    fn roles(&self) -> Vec<(ServerId, Role, Option<ServerId>)> {
        self.peers
            .iter()
            .map(|(id, p)| (*id, p.role(), p.leader()))
            .collect()
    }
}

/// An established ensemble where every server serves.
fn established(
    voters: &[ServerId],
    observers: &[ServerId],
    disk: BTreeMap<ServerId, Durable>,
) -> Cluster {
    let mut c = Cluster::new(voters, observers, disk);
    c.start();
    c.settle();
    c
}

// ----- election -----------------------------------------------------------------------------

#[test]
fn election_from_equal_state_elects_the_highest_id() {
    let mut c = Cluster::new(&[1, 2, 3], &[], BTreeMap::new());
    let mut p1 = Peer::new(config(1, &[1, 2, 3], &[]), Durable::default());
    p1.start();
    assert_eq!(
        p1.take_actions(),
        vec![
            Action::RoleChanged {
                role: Role::Looking,
                leader: None,
                epoch: 0
            },
            send(2, notification(1, 0, 0, 1, PeerState::Looking)),
            send(3, notification(1, 0, 0, 1, PeerState::Looking)),
        ]
    );
    // 3's vote beats ours (same epoch and zxid, higher id): adopt and re-broadcast it; with
    // ours and 3's own vote a quorum agrees, so we follow 3 and introduce ourselves.
    p1.on_message(3, notification(3, 0, 0, 1, PeerState::Looking));
    assert_eq!(
        p1.take_actions(),
        vec![
            send(2, notification(3, 0, 0, 1, PeerState::Looking)),
            send(3, notification(3, 0, 0, 1, PeerState::Looking)),
            send(
                3,
                Message::FollowerInfo {
                    accepted_epoch: 0,
                    last_zxid: 0,
                    observer: false
                }
            ),
        ]
    );
    assert_eq!(p1.role(), Role::Following);

    // The whole ensemble agrees.
    c.start();
    c.settle();
    assert_eq!(
        c.roles(),
        vec![
            (1, Role::Following, Some(3)),
            (2, Role::Following, Some(3)),
            (3, Role::Leading, Some(3)),
        ]
    );
    assert_eq!(c.peer(3).status(), (1, 1, 0, 0));
}

#[test]
fn election_waits_for_better_votes_until_every_voter_agrees() {
    let cfg = Config {
        finalize_wait: 5,
        ..config(3, &[1, 2, 3], &[])
    };
    let mut p3 = Peer::new(cfg, Durable::default());
    p3.start();
    p3.take_actions();
    // A quorum (3 and 1) agrees, but 2 may still hold a better vote: wait.
    p3.on_message(1, notification(3, 0, 0, 1, PeerState::Looking));
    assert_eq!(p3.role(), Role::Looking);
    // Every voter now holds the vote, so no better one exists: decide without the wait.
    p3.on_message(2, notification(3, 0, 0, 1, PeerState::Looking));
    assert_eq!(p3.role(), Role::Leading);

    // With only a quorum, the wait runs out after `finalize_wait` ticks.
    let cfg = Config {
        finalize_wait: 5,
        ..config(3, &[1, 2, 3], &[])
    };
    let mut p3 = Peer::new(cfg, Durable::default());
    p3.start();
    p3.on_message(1, notification(3, 0, 0, 1, PeerState::Looking));
    for _ in 0..4 {
        p3.tick();
        assert_eq!(p3.role(), Role::Looking);
    }
    p3.tick();
    assert_eq!(p3.role(), Role::Leading);
}

#[test]
fn a_learner_repeats_its_follower_info_soon_then_less_often() {
    // The leader may not have decided yet when the first FOLLOWERINFO arrives.
    let cfg = Config {
        resend: 8,
        init_limit: 100,
        ..config(1, &[1, 2, 3], &[])
    };
    let mut p1 = Peer::new(cfg, Durable::default());
    p1.start();
    p1.on_message(3, notification(3, 0, 0, 1, PeerState::Looking));
    assert_eq!(p1.role(), Role::Following);
    p1.take_actions();
    let info = send(
        3,
        Message::FollowerInfo {
            accepted_epoch: 0,
            last_zxid: 0,
            observer: false,
        },
    );
    let mut sent_at = Vec::new();
    for t in 1..=40 {
        p1.tick();
        if p1.take_actions().contains(&info) {
            sent_at.push(t);
        }
    }
    // After one tick, then 2, 4 ticks apart, then every `resend` ticks.
    assert_eq!(sent_at, [1, 3, 7, 15, 23, 31, 39]);
}

#[test]
fn a_learner_whose_leader_introduces_itself_as_a_learner_looks_again() {
    // 1 follows 2 on 2's vote; 2 in turn took 1 for the leader (on a stale report) and
    // sends 1 its FOLLOWERINFO. Neither leads: waiting for each other must not pass for
    // hearing from a leader.
    let mut p1 = Peer::new(config(1, &[1, 2, 3], &[]), Durable::default());
    p1.start();
    p1.on_message(2, notification(2, 0, 0, 1, PeerState::Looking));
    assert_eq!(p1.role(), Role::Following);
    p1.take_actions();
    p1.on_message(
        2,
        Message::FollowerInfo {
            accepted_epoch: 0,
            last_zxid: 0,
            observer: false,
        },
    );
    assert_eq!(p1.role(), Role::Looking);
}

#[test]
fn election_prefers_epoch_then_zxid_over_id() {
    let disk = BTreeMap::from([
        (1, durable(2, 2, vec![entry(2, 1)])),
        (2, durable(1, 1, entries(1, 1, 5))),
        (3, durable(1, 1, entries(1, 1, 3))),
    ]);
    let c = established(&[1, 2, 3], &[], disk);
    assert_eq!(c.roles()[0], (1, Role::Leading, Some(1)));
}

#[test]
fn stale_notification_is_answered_with_the_current_vote() {
    let mut p = Peer::new(config(1, &[1, 2, 3, 4, 5], &[]), Durable::default());
    p.start();
    // A newer round resets the ballot box; 2's vote beats ours.
    p.on_message(2, notification(2, 0, 0, 3, PeerState::Looking));
    p.take_actions();
    p.on_message(3, notification(3, 0, 0, 1, PeerState::Looking));
    assert_eq!(
        p.take_actions(),
        vec![send(3, notification(2, 0, 0, 3, PeerState::Looking))]
    );
}

#[test]
fn newer_round_resets_the_ballot_box() {
    let mut p = Peer::new(config(1, &[1, 2, 3, 4, 5], &[]), Durable::default());
    p.start();
    p.take_actions();
    // Round 1: 4's vote beats ours; 1 and 4 agree on 4 (2 of 5).
    p.on_message(4, notification(4, 0, 0, 1, PeerState::Looking));
    p.take_actions();
    // 2 is in round 2: the ballot box is emptied and we adopt the better of 2's vote and our
    // own initial one, and re-broadcast it.
    p.on_message(2, notification(2, 0, 0, 2, PeerState::Looking));
    let n2 = notification(2, 0, 0, 2, PeerState::Looking);
    assert_eq!(
        p.take_actions(),
        vec![
            send(2, n2.clone()),
            send(3, n2.clone()),
            send(4, n2.clone()),
            send(5, n2)
        ]
    );
    assert_eq!(p.vote().map(|v| v.leader), Some(2));
    // 5 still votes 4 in round 1: stale, answered with our round-2 vote.
    p.on_message(5, notification(4, 0, 0, 1, PeerState::Looking));
    assert_eq!(
        p.take_actions(),
        vec![send(5, notification(2, 0, 0, 2, PeerState::Looking))]
    );
    // 4 and 3 come to round 2 voting 4: with us that is 3 of 5 for 4 (the round-1 votes
    // were dropped, so this needed both of them).
    p.on_message(4, notification(4, 0, 0, 2, PeerState::Looking));
    assert_eq!(p.role(), Role::Looking);
    p.take_actions();
    p.on_message(3, notification(4, 0, 0, 2, PeerState::Looking));
    assert_eq!(p.role(), Role::Following);
}

#[test]
fn late_server_joins_an_ensemble_whose_members_joined_in_different_rounds() {
    // 3 leads (elected in round 2); 1 joined later in round 7. A restarted 2 is in round 1:
    // it must still find the leader although the backers' rounds differ.
    let mut p = Peer::new(config(2, &[1, 2, 3], &[]), Durable::default());
    p.start();
    p.take_actions();
    p.on_message(1, notification(3, 0, 1, 7, PeerState::Following));
    assert_eq!(p.take_actions(), vec![]);
    p.on_message(3, notification(3, 0, 1, 2, PeerState::Leading));
    assert_eq!(
        p.take_actions(),
        vec![send(
            3,
            Message::FollowerInfo {
                accepted_epoch: 0,
                last_zxid: 0,
                observer: false
            }
        )]
    );
    assert_eq!(p.role(), Role::Following);
}

#[test]
fn same_round_quorum_of_a_leader_and_its_followers_ends_the_election() {
    // 5 voters: 3 leads, 4 follows it, both decided in round 5 on 3's vote. 1 is looking in
    // round 5 with the same vote. The out-of-election backers (3 and 4) are no quorum of 5,
    // but with 1's own vote this round has 3 of 5 for 3.
    let v3 = |state| notification(3, zxid(1, 7), 1, 5, state);
    let mut p = Peer::new(config(1, &[1, 2, 3, 4, 5], &[]), Durable::default());
    p.start();
    // 3's vote from when it was still looking: we adopt it (2 of 5 agree).
    p.on_message(3, v3(PeerState::Looking));
    p.take_actions();
    p.on_message(3, v3(PeerState::Leading));
    assert_eq!(p.take_actions(), vec![]);
    assert_eq!(p.role(), Role::Looking);
    p.on_message(4, v3(PeerState::Following));
    assert_eq!(
        p.take_actions(),
        vec![send(
            3,
            Message::FollowerInfo {
                accepted_epoch: 0,
                last_zxid: 0,
                observer: false
            }
        )]
    );
    assert_eq!(p.role(), Role::Following);
}

#[test]
fn established_server_answers_a_looking_one_but_not_others() {
    let mut c = established(&[1, 2, 3], &[], BTreeMap::new());
    c.with(3, |p| {
        p.propose(b"a".to_vec()).expect("serving");
    });
    c.run();
    // A follower tells the vote the election ended with, not its own (newer) log end, so
    // that a looking server of the same round can count it.
    c.peer(1)
        .on_message(2, notification(2, 0, 0, 9, PeerState::Looking));
    let reply = c.peer(1).take_actions();
    let [Action::Send {
        to: 2,
        msg: Message::Notification { vote, state, .. },
    }] = reply.as_slice()
    else {
        panic!("expected one notification to 2: {reply:?}");
    };
    assert_eq!(
        (*vote, *state),
        (
            Vote {
                leader: 3,
                zxid: 0,
                peer_epoch: 0
            },
            PeerState::Following
        )
    );
    let leader = c.peer(3);
    leader.on_message(1, notification(1, 0, 0, 9, PeerState::Looking));
    // The vote the election ended with (not the leader's current state), as ZooKeeper does.
    assert_eq!(
        leader.take_actions(),
        vec![send(1, notification(3, 0, 0, 1, PeerState::Leading))]
    );
    leader.on_message(2, notification(3, 0, 1, 1, PeerState::Following));
    assert_eq!(leader.take_actions(), vec![]);
}

// ----- synchronisation ------------------------------------------------------------------------

/// Leader 3 and follower 2 are established with `history` (all committed); server 1 joins
/// with `learner` on its disk.
fn join(history: Vec<Entry>, learner: Durable) -> (Cluster, Peer) {
    join_epoch(history, 1, learner)
}

/// Like [`join`], with the ensemble at `epoch` (the new leader proposes `epoch + 1`).
fn join_epoch(history: Vec<Entry>, epoch: u32, learner: Durable) -> (Cluster, Peer) {
    let disk = BTreeMap::from([
        (2, durable(epoch, epoch, history.clone())),
        (3, durable(epoch, epoch, history)),
    ]);
    let mut c = Cluster::new(&[1, 2, 3], &[], disk);
    c.cut.insert(1);
    c.with(2, Peer::start);
    c.with(3, Peer::start);
    c.run();
    for _ in 0..3 {
        c.tick_all();
        c.run();
    }
    assert!(c.peer(3).is_serving(), "{:?}", c.roles());
    c.cut.clear();
    let mut p1 = Peer::new(config(1, &[1, 2, 3], &[]), learner);
    p1.start();
    p1.take_actions();
    (c, p1)
}

/// Drives `p1` through the handshake with leader 3 and returns the leader's actions on its
/// epoch acknowledgement: the sync plan.
fn sync_actions(c: &mut Cluster, p1: &mut Peer) -> Vec<Action> {
    let new_epoch = c.peer(3).status().1;
    p1.on_message(3, notification(3, 0, new_epoch, 1, PeerState::Leading));
    p1.on_message(2, notification(3, 0, new_epoch, 1, PeerState::Following));
    let info = p1.take_actions();
    let Some(Action::Send { msg: fi, .. }) = info.last().cloned() else {
        panic!("no follower info: {info:?}");
    };
    c.peer(3).on_message(1, fi);
    let li = c.peer(3).take_actions();
    assert_eq!(li, vec![send(1, Message::LeaderInfo { new_epoch })]);
    p1.on_message(3, Message::LeaderInfo { new_epoch });
    let ack = p1.take_actions();
    let Some(Action::Send { msg: ack, .. }) = ack.last().cloned() else {
        panic!("no epoch ack: {ack:?}");
    };
    c.peer(3).on_message(1, ack);
    c.peer(3).take_actions()
}

#[test]
fn follower_just_behind_gets_a_diff() {
    let (mut c, mut p1) = join(entries(1, 1, 6), durable(1, 1, entries(1, 1, 4)));
    assert_eq!(
        sync_actions(&mut c, &mut p1),
        vec![
            send(
                1,
                Message::Diff {
                    entries: entries(1, 5, 2)
                }
            ),
            send(1, Message::NewLeader { zxid: zxid(2, 0) }),
        ]
    );
}

#[test]
fn follower_with_divergent_uncommitted_tail_gets_trunc() {
    // 1 logged 1:5 and 1:6, which never reached a quorum.
    let (mut c, mut p1) = join(entries(1, 1, 4), durable(1, 1, entries(1, 1, 6)));
    assert_eq!(
        sync_actions(&mut c, &mut p1),
        vec![
            send(1, Message::Trunc { zxid: zxid(1, 4) }),
            send(1, Message::NewLeader { zxid: zxid(2, 0) }),
        ]
    );
    p1.on_message(3, Message::Trunc { zxid: zxid(1, 4) });
    assert_eq!(
        p1.take_actions(),
        vec![Action::Truncate { zxid: zxid(1, 4) }]
    );
    assert_eq!(p1.status().2, zxid(1, 4));
}

#[test]
fn follower_far_behind_gets_a_snapshot() {
    // The leader keeps 4 entries (log_window); 1 stopped at 1:2.
    let (mut c, mut p1) = join(entries(1, 1, 10), durable(1, 1, entries(1, 1, 2)));
    assert_eq!(
        sync_actions(&mut c, &mut p1),
        vec![
            Action::SendSnapshot {
                to: 1,
                zxid: zxid(1, 10)
            },
            send(1, Message::NewLeader { zxid: zxid(2, 0) }),
        ]
    );
}

#[test]
fn follower_with_a_tail_from_another_epoch_gets_a_snapshot_not_a_cross_epoch_trunc() {
    // 1 led epoch 2 briefly: its 2:1 never committed, and it never had 1:2, which epoch 3
    // kept. Truncating it to 1:2 (our entry before 2:1) would leave it claiming 1:2 without
    // having it; only a snapshot is safe.
    let learner = vec![entry(1, 1), entry(2, 1)];
    let mut history = entries(1, 1, 2);
    history.extend(entries(3, 1, 2));
    let (mut c, mut p1) = join_epoch(history, 3, durable(2, 2, learner));
    assert_eq!(
        sync_actions(&mut c, &mut p1),
        vec![
            Action::SendSnapshot {
                to: 1,
                zxid: zxid(3, 2)
            },
            send(1, Message::NewLeader { zxid: zxid(4, 0) }),
        ]
    );
}

#[test]
fn observer_synced_before_the_leader_is_established_gets_the_adopted_history() {
    // 3's history 1:1..1:2 is adopted by the new epoch; the observer 4 has nothing.
    let disk = BTreeMap::from([
        (1, durable(1, 1, entries(1, 1, 2))),
        (3, durable(1, 1, entries(1, 1, 2))),
    ]);
    let mut c = established(&[1, 2, 3], &[4], disk);
    let to_observer: Vec<Action> = c.seen[&3]
        .iter()
        .filter(|a| match a {
            Action::Send { to: 4, msg } => {
                !matches!(msg, Message::Ping | Message::Notification { .. })
            }
            Action::SendSnapshot { to, .. } => *to == 4,
            _ => false,
        })
        .cloned()
        .collect();
    assert_eq!(
        to_observer,
        vec![
            send(4, Message::LeaderInfo { new_epoch: 2 }),
            send(
                4,
                Message::Diff {
                    entries: entries(1, 1, 2)
                }
            ),
            send(4, Message::NewLeader { zxid: zxid(2, 0) }),
            send(4, Message::Commit { zxid: zxid(1, 2) }),
            send(4, Message::UpToDate),
        ]
    );
    assert_eq!(c.peer(4).status().3, zxid(1, 2));
}

#[test]
fn learner_acknowledges_newleader_only_once_the_synced_history_is_durable() {
    let (mut c, mut p1) = join(entries(1, 1, 4), durable(1, 1, entries(1, 1, 2)));
    let plan = sync_actions(&mut c, &mut p1);
    for a in plan {
        let Action::Send { msg, .. } = a else {
            continue;
        };
        p1.on_message(3, msg);
    }
    // The diff is handed to the log, but nothing is acknowledged and the current epoch
    // stays 1 until it is durable.
    assert_eq!(p1.take_actions(), vec![Action::Persist(entries(1, 3, 2))]);
    assert_eq!(p1.status().1, 1);
    p1.on_persisted(zxid(1, 3));
    assert_eq!(p1.take_actions(), vec![]);
    p1.on_persisted(zxid(1, 4));
    assert_eq!(
        p1.take_actions(),
        vec![
            Action::PersistEpochs {
                accepted: 2,
                current: 2
            },
            send(3, Message::AckNewLeader { zxid: zxid(2, 0) }),
        ]
    );
}

#[test]
fn late_follower_holding_outstanding_proposals_is_not_truncated_and_acks_them_after_newleader() {
    // 3 leads epoch 2 with 2 following. A proposal 2:1 is outstanding (2 has not acked it).
    let (mut c, mut p1) = join(entries(1, 1, 2), durable(1, 1, entries(1, 1, 2)));
    c.manual.insert(2);
    c.with(3, |p| {
        p.propose(b"x".to_vec()).expect("serving");
    });
    c.run();
    let plan = sync_actions(&mut c, &mut p1);
    let p21 = Entry {
        zxid: zxid(2, 1),
        data: b"x".to_vec().into(),
    };
    assert_eq!(
        plan,
        vec![
            send(1, Message::Proposal(p21.clone())),
            send(1, Message::NewLeader { zxid: zxid(2, 0) }),
        ]
    );
    p1.on_message(3, Message::Proposal(p21.clone()));
    assert_eq!(p1.take_actions(), vec![Action::Persist(vec![p21])]);
    // Durable, but NEWLEADER has not arrived: no ack yet (the epoch is not durable here).
    p1.on_persisted(zxid(2, 1));
    assert_eq!(p1.take_actions(), vec![]);
    p1.on_message(3, Message::NewLeader { zxid: zxid(2, 0) });
    assert_eq!(
        p1.take_actions(),
        vec![
            Action::PersistEpochs {
                accepted: 2,
                current: 2
            },
            send(3, Message::AckNewLeader { zxid: zxid(2, 0) }),
            send(3, Message::Ack { zxid: zxid(2, 1) }),
        ]
    );
    // It commits with the leader's ack and 1's.
    c.peer(3)
        .on_message(1, Message::AckNewLeader { zxid: zxid(2, 0) });
    c.peer(3).on_message(1, Message::Ack { zxid: zxid(2, 1) });
    assert_eq!(
        c.peer(3).take_actions(),
        vec![
            send(1, Message::Commit { zxid: zxid(1, 2) }),
            send(1, Message::UpToDate),
            Action::Commit { zxid: zxid(2, 1) },
            send(1, Message::Commit { zxid: zxid(2, 1) }),
            send(2, Message::Commit { zxid: zxid(2, 1) }),
        ]
    );
}

#[test]
fn late_follower_holding_an_outstanding_proposal_is_not_truncated_and_acks_it_again() {
    // 1 logged 2:1 and lost its connection before acking; 2:1 is still outstanding (2 has
    // not acked it). Truncating 1 to the commit point could remove 2:1 just as it commits.
    let mut learner = entries(1, 1, 2);
    learner.push(Entry {
        zxid: zxid(2, 1),
        data: b"x".to_vec().into(),
    });
    let (mut c, mut p1) = join(entries(1, 1, 2), durable(2, 2, learner));
    c.manual.insert(2);
    c.with(3, |p| {
        p.propose(b"x".to_vec()).expect("serving");
    });
    c.run();
    let p21 = Entry {
        zxid: zxid(2, 1),
        data: b"x".to_vec().into(),
    };
    assert_eq!(
        sync_actions(&mut c, &mut p1),
        vec![
            send(1, Message::Proposal(p21.clone())),
            send(1, Message::NewLeader { zxid: zxid(2, 0) }),
        ]
    );
    p1.on_message(3, Message::Proposal(p21));
    assert_eq!(
        p1.take_actions(),
        vec![],
        "already logged: acked after NEWLEADER"
    );
    p1.on_message(3, Message::NewLeader { zxid: zxid(2, 0) });
    assert_eq!(
        p1.take_actions(),
        vec![
            send(3, Message::AckNewLeader { zxid: zxid(2, 0) }),
            send(3, Message::Ack { zxid: zxid(2, 1) }),
        ]
    );
}

#[test]
fn epoch_ack_from_a_learner_that_had_accepted_the_epoch_does_not_count() {
    let mut p = Peer::new(config(3, &[1, 2, 3, 4, 5], &[]), Durable::default());
    p.start();
    p.on_message(1, notification(3, 0, 0, 1, PeerState::Looking));
    p.on_message(2, notification(3, 0, 0, 1, PeerState::Looking));
    assert_eq!(p.role(), Role::Leading);
    let fi = |accepted_epoch| Message::FollowerInfo {
        accepted_epoch,
        last_zxid: 0,
        observer: false,
    };
    p.on_message(1, fi(0));
    p.on_message(2, fi(0));
    p.take_actions();
    // Epoch 1 is proposed to 1 and 2. 4 already accepted epoch 1 from another would-be
    // leader: it still syncs, but its ack must not make a quorum (ZooKeeper's -1 ack).
    p.on_message(4, fi(1));
    assert_eq!(
        p.take_actions(),
        vec![send(4, Message::LeaderInfo { new_epoch: 1 })]
    );
    let ack = Message::AckEpoch {
        current_epoch: 0,
        last_zxid: 0,
    };
    p.on_message(4, ack.clone());
    p.on_message(1, ack.clone());
    assert_eq!(
        p.take_actions(),
        vec![],
        "3, 1 (and 4, not counted): no quorum of 5"
    );
    p.on_message(2, ack);
    assert_eq!(
        p.take_actions(),
        vec![
            Action::PersistEpochs {
                accepted: 1,
                current: 1
            },
            send(1, Message::NewLeader { zxid: zxid(1, 0) }),
            send(2, Message::NewLeader { zxid: zxid(1, 0) }),
            send(4, Message::NewLeader { zxid: zxid(1, 0) }),
        ]
    );
}

#[test]
fn leader_steps_down_for_a_learner_that_accepted_a_newer_epoch() {
    let mut c = established(&[1, 2, 3], &[], BTreeMap::new());
    let leader = c.peer(3);
    leader.on_message(
        1,
        Message::FollowerInfo {
            accepted_epoch: 5,
            last_zxid: 0,
            observer: false,
        },
    );
    assert_eq!(leader.role(), Role::Looking);
    assert_eq!(
        leader.take_actions()[0],
        Action::RoleChanged {
            role: Role::Looking,
            leader: None,
            epoch: 0
        }
    );
}

// ----- broadcast ------------------------------------------------------------------------------

#[test]
fn proposal_commits_on_a_quorum_of_durable_acks() {
    let mut c = established(&[1, 2, 3], &[], BTreeMap::new());
    c.manual.extend([1, 2, 3]);
    let z = c.peer(3).propose(b"a".to_vec()).expect("serving");
    assert_eq!(z, zxid(1, 1));
    let e = Entry {
        zxid: z,
        data: b"a".to_vec().into(),
    };
    assert_eq!(
        c.peer(3).take_actions(),
        vec![
            Action::Persist(vec![e.clone()]),
            send(1, Message::Proposal(e.clone())),
            send(2, Message::Proposal(e.clone())),
        ]
    );
    // 1 logs it and acks once durable; with the leader's own durable copy that is a quorum.
    c.peer(1).on_message(3, Message::Proposal(e.clone()));
    assert_eq!(c.peer(1).take_actions(), vec![Action::Persist(vec![e])]);
    c.peer(1).on_persisted(z);
    assert_eq!(
        c.peer(1).take_actions(),
        vec![send(3, Message::Ack { zxid: z })]
    );
    c.peer(3).on_message(1, Message::Ack { zxid: z });
    assert_eq!(
        c.peer(3).take_actions(),
        vec![],
        "the leader's copy is not durable yet"
    );
    c.peer(3).on_persisted(z);
    assert_eq!(
        c.peer(3).take_actions(),
        vec![
            Action::Commit { zxid: z },
            send(1, Message::Commit { zxid: z }),
            send(2, Message::Commit { zxid: z }),
        ]
    );
}

#[test]
fn what_one_fsync_made_durable_is_acknowledged_in_one_message_naming_each_proposal() {
    let mut c = established(&[1, 2, 3], &[], BTreeMap::new());
    c.manual.extend([1, 2, 3]);
    let z1 = c.peer(3).propose(b"a".to_vec()).expect("serving");
    let z2 = c.peer(3).propose(b"b".to_vec()).expect("serving");
    c.peer(3).on_persisted(z2);
    let _ = c.peer(3).take_actions();
    for (z, d) in [(z1, b"a"), (z2, b"b")] {
        let e = Entry {
            zxid: z,
            data: d.to_vec().into(),
        };
        c.peer(1).on_message(3, Message::Proposal(e));
    }
    let _ = c.peer(1).take_actions();
    // Both become durable in one fsync: one message, each zxid named.
    c.peer(1).on_persisted(z2);
    assert_eq!(
        c.peer(1).take_actions(),
        vec![send(
            3,
            Message::Acks {
                zxids: vec![z1, z2]
            }
        )]
    );
    // An ACKS naming only the second proposal commits nothing: ACKs are never cumulative.
    c.peer(3).on_message(2, Message::Acks { zxids: vec![z2] });
    assert_eq!(c.peer(3).take_actions(), vec![]);
    c.peer(3).on_message(
        1,
        Message::Acks {
            zxids: vec![z1, z2],
        },
    );
    assert_eq!(
        c.peer(3).take_actions(),
        vec![
            Action::Commit { zxid: z1 },
            send(1, Message::Commit { zxid: z1 }),
            send(2, Message::Commit { zxid: z1 }),
            Action::Commit { zxid: z2 },
            send(1, Message::Commit { zxid: z2 }),
            send(2, Message::Commit { zxid: z2 }),
        ]
    );
}

#[test]
fn counter_exhaustion_makes_the_leader_step_down_and_the_next_epoch_elects() {
    let mut c = established(&[1, 2, 3], &[], BTreeMap::new());
    c.with(3, |p| {
        p.propose(b"last".to_vec()).expect("serving");
    });
    c.run();
    c.peer(3).set_counter_for_test(u32::MAX);
    let mut result = None;
    c.with(3, |p| result = Some(p.propose(b"one too many".to_vec())));
    assert_eq!(result, Some(Err(ProposeError::EpochExhausted)));
    assert_eq!(c.peer(3).role(), Role::Looking);
    assert!(c.seen[&3].contains(&Action::RoleChanged {
        role: Role::Looking,
        leader: None,
        epoch: 0
    }));
    c.settle();
    let leader = c
        .roles()
        .iter()
        .find(|(_, r, _)| *r == Role::Leading)
        .map(|r| r.0);
    let leader = leader.expect("a new leader");
    assert_eq!(c.peer(leader).status().1, 2, "a new epoch");
    let mut z = None;
    c.with(leader, |p| z = Some(p.propose(b"next".to_vec())));
    assert_eq!(z, Some(Ok(zxid(2, 1))));
    c.run();
    for id in [1, 2, 3] {
        assert_eq!(c.peer(id).status().3, zxid(2, 1));
    }
}

#[test]
fn follower_times_out_after_sync_limit_ticks_of_silence() {
    let mut c = established(&[1, 2, 3], &[], BTreeMap::new());
    for _ in 0..4 {
        c.peer(1).tick();
    }
    assert_eq!(c.peer(1).role(), Role::Following);
    c.peer(1).take_actions();
    c.peer(1).tick();
    assert_eq!(c.peer(1).role(), Role::Looking);
    let actions = c.peer(1).take_actions();
    assert_eq!(
        actions[0],
        Action::RoleChanged {
            role: Role::Looking,
            leader: None,
            epoch: 0
        }
    );
}

#[test]
fn leader_losing_its_quorum_steps_down() {
    // By silence: nothing heard from the followers for sync_limit ticks.
    let mut c = established(&[1, 2, 3], &[], BTreeMap::new());
    for _ in 0..4 {
        c.peer(3).tick();
    }
    assert_eq!(c.peer(3).role(), Role::Leading);
    c.peer(3).take_actions();
    c.peer(3).tick();
    assert_eq!(c.peer(3).role(), Role::Looking);
    assert_eq!(
        c.peer(3).take_actions()[0],
        Action::RoleChanged {
            role: Role::Looking,
            leader: None,
            epoch: 0
        }
    );

    // By disconnection: one follower lost leaves a quorum, two do not.
    let mut c = established(&[1, 2, 3], &[], BTreeMap::new());
    c.peer(3).on_disconnected(1);
    assert_eq!(c.peer(3).role(), Role::Leading);
    assert_eq!(c.peer(3).take_actions(), vec![]);
    c.peer(3).on_disconnected(2);
    assert_eq!(c.peer(3).role(), Role::Looking);
}

#[test]
fn observer_never_counts_toward_a_quorum() {
    // Two voters and an observer: losing one voter stops commits.
    let mut c = established(&[1, 2], &[3], BTreeMap::new());
    assert_eq!(
        c.roles(),
        vec![
            (1, Role::Following, Some(2)),
            (2, Role::Leading, Some(2)),
            (3, Role::Observing, Some(2)),
        ]
    );
    c.cut.insert(1);
    let z = c.peer(2).propose(b"a".to_vec()).expect("serving");
    let e = Entry {
        zxid: z,
        data: b"a".to_vec().into(),
    };
    // Proposals go to voters only; the observer hears of committed entries.
    assert_eq!(
        c.peer(2).take_actions(),
        vec![
            Action::Persist(vec![e]),
            send(
                1,
                Message::Proposal(Entry {
                    zxid: z,
                    data: b"a".to_vec().into()
                })
            )
        ]
    );
    c.peer(2).on_persisted(z);
    c.peer(2).on_message(3, Message::Ping);
    assert_eq!(
        c.peer(2).take_actions(),
        vec![],
        "the leader alone is no quorum of 2"
    );
    // The observer keeps answering pings, but the leader still steps down.
    for _ in 0..5 {
        c.peer(2).on_message(3, Message::Ping);
        c.peer(2).tick();
    }
    assert_eq!(c.peer(2).role(), Role::Looking);
}

#[test]
fn observer_learns_commits_through_informs() {
    let mut c = established(&[1, 2], &[3], BTreeMap::new());
    c.with(2, |p| {
        p.propose(b"a".to_vec()).expect("serving");
    });
    c.run();
    assert!(c.seen[&2].contains(&send(
        3,
        Message::Inform(Entry {
            zxid: zxid(1, 1),
            data: b"a".to_vec().into()
        })
    )));
    assert_eq!(c.peer(3).status().3, zxid(1, 1));
}

#[test]
fn leader_steps_down_when_an_epoch_ack_shows_history_it_lacks() {
    // 3 won with (epoch 1, 1:2); 1 was not part of that election and has 1:3 in epoch 1.
    let disk = BTreeMap::from([(3, durable(1, 1, entries(1, 1, 2)))]);
    let mut p = Peer::new(config(3, &[1, 2, 3], &[]), disk[&3].clone());
    p.start();
    p.on_message(2, notification(3, zxid(1, 2), 1, 1, PeerState::Looking));
    p.on_message(
        2,
        Message::FollowerInfo {
            accepted_epoch: 1,
            last_zxid: zxid(1, 1),
            observer: false,
        },
    );
    p.on_message(
        1,
        Message::FollowerInfo {
            accepted_epoch: 1,
            last_zxid: zxid(1, 3),
            observer: false,
        },
    );
    p.take_actions();
    p.on_message(
        1,
        Message::AckEpoch {
            current_epoch: 1,
            last_zxid: zxid(1, 3),
        },
    );
    assert_eq!(
        p.role(),
        Role::Looking,
        "1:3 may be committed: 3 must not lead"
    );
}

#[test]
fn looking_observers_do_not_answer_each_other() {
    let mut o = Peer::new(config(4, &[1, 2, 3], &[4, 5]), Durable::default());
    o.start();
    let looking = notification(0, i64::MIN, 0, 1, PeerState::Looking);
    assert_eq!(
        o.take_actions()[1..],
        [
            send(1, looking.clone()),
            send(2, looking.clone()),
            send(3, looking.clone()),
            send(5, looking.clone()),
        ]
    );
    o.on_message(5, looking.clone());
    assert_eq!(o.take_actions(), vec![]);
    // A looking voter does answer an observer.
    let mut v = Peer::new(config(1, &[1, 2, 3], &[4, 5]), Durable::default());
    v.start();
    v.take_actions();
    v.on_message(4, looking);
    assert_eq!(
        v.take_actions(),
        vec![send(4, notification(1, 0, 0, 1, PeerState::Looking))]
    );
}
