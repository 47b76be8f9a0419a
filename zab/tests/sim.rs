//! Deterministic simulation of a `corral-zab` ensemble (STYLE §8.3 / §8.5).
//!
//! A seeded discrete-event harness runs 3 or 5 voters (some runs with one or two observers)
//! through randomised schedules and checks the ZAB invariants after every event:
//!
//! - at most one established leader per epoch, and every serving learner names it;
//! - the committed (confirmed) histories of any two servers are prefixes of one another;
//! - no committed transaction is ever removed by a TRUNC, and none is lost at the end;
//! - liveness: once everything is healed and quiet, a leader serves and new proposals are
//!   committed and applied everywhere, with every server's applied history equal.
//!
//! The shell model: `Send` goes through a per-link FIFO queue with a random delay (links are
//! independent, so messages are reordered across connections). A "loss" is a broken
//! connection: the queued messages of that link are dropped and both ends get
//! `on_disconnected`. A send across a partition or to a crashed server fails, and the sender
//! gets `on_disconnected`. When a server reports `RoleChanged { role: Looking }` the shell
//! closes all its connections (the session with its leader or learners ends, as ZooKeeper's
//! quorum sockets do). `Persist` goes to a pending buffer that is flushed (a prefix at a time)
//! at random later steps, then `on_persisted(last)`. A crash loses the pending buffer; epochs,
//! truncations and snapshots are synchronous. At restart everything on disk is applied again
//! (unconfirmed until a later `Commit` covers it).
//!
//! Schedules vary per seed: message delays, disk speed (how long a `Persist` takes), log window
//! (DIFF versus SNAP), fault rate, and crashes aimed right after protocol acknowledgements and
//! role changes (the windows where durability ordering matters).
//!
//! `CORRAL_SIM_SEEDS=N` runs N seeds (default 500); `CORRAL_SIM_SEED=S` replays one seed and
//! prints its event trace on failure; `CORRAL_SIM_FIRST=F` starts the range at seed F, and
//! `CORRAL_SIM_LIST=1` lists every failing seed.

use corral_zab::{Action, Config, Durable, Entry, Message, Peer, Role, ServerId};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// splitmix64: small, fast and good enough for schedules.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        if items.is_empty() {
            None
        } else {
            Some(items[(self.next_u64() % items.len() as u64) as usize])
        }
    }
}

/// Time units per tick of a server's clock.
const TICK: u64 = 10;
/// Length of the chaotic part of a run, in time units.
const CHAOS_TIME: u64 = 4_000;
/// Bound on the quiet part: time to elect and sync, then time to commit the final entries.
const SETTLE_TIME: u64 = 3_000;
/// Entries proposed in the liveness check.
const FINAL_PROPOSALS: usize = 3;
/// Hard bound on events per seed (a message storm would otherwise run for ever).
const MAX_STEPS: u64 = 200_000;

#[derive(Debug, Default)]
struct Disk {
    accepted: u32,
    current: u32,
    /// Snapshot content followed by the log, in zxid order.
    entries: Vec<Entry>,
}

#[derive(Debug)]
struct Node {
    peer: Option<Peer>,
    incarnation: u64,
    disk: Disk,
    /// Handed to `Persist`, not yet durable.
    pending: Vec<Entry>,
    /// The state machine: applied entries and whether a `Commit` confirmed them.
    applied: Vec<(Entry, bool)>,
    /// How much of the confirmed prefix was checked against the global history.
    checked: usize,
    flush_scheduled: bool,
}

impl Node {
    fn last_logged(&self) -> i64 {
        self.pending
            .last()
            .or(self.disk.entries.last())
            .map_or(0, |e| e.zxid)
    }

    fn applied_zxid(&self) -> i64 {
        self.applied.last().map_or(0, |(e, _)| e.zxid)
    }
}

#[derive(Debug, Default)]
struct Link {
    generation: u64,
    queue: VecDeque<Message>,
    last_at: u64,
    /// Extra delay while this link is slow, until `slow_until`.
    slow: u64,
    slow_until: u64,
}

#[derive(Debug, Clone, Copy)]
enum Ev {
    Deliver {
        from: ServerId,
        to: ServerId,
        generation: u64,
    },
    Tick {
        id: ServerId,
        incarnation: u64,
    },
    Flush {
        id: ServerId,
        incarnation: u64,
    },
    Crash {
        id: ServerId,
        incarnation: u64,
    },
    Restart {
        id: ServerId,
        incarnation: u64,
    },
    Fault,
    Propose,
}

struct Sim {
    seed: u64,
    rng: Rng,
    now: u64,
    seq: u64,
    steps: u64,
    events: BTreeMap<(u64, u64), Ev>,
    cfg: Config,
    nodes: BTreeMap<ServerId, Node>,
    links: BTreeMap<(ServerId, ServerId), Link>,
    /// Partition group of each server; servers in different groups cannot talk.
    group: BTreeMap<ServerId, u8>,
    chaos: bool,
    dirty: VecDeque<ServerId>,
    /// The longest confirmed committed history seen on any server.
    committed: Vec<Entry>,
    /// Established leader of each epoch.
    leaders: BTreeMap<u32, ServerId>,
    next_payload: u64,
    max_delay: u64,
    /// Longest time a `Persist` may wait to become durable (a slow disk widens the windows
    /// between handing an entry to the log and acknowledging it).
    flush_max: u64,
    /// Longest gap between two random faults.
    fault_gap: u64,
    /// Per-mille chance that a protocol acknowledgement or role change is followed by a
    /// crash of one of the servers involved (targets the windows the invariants care about).
    crash_after_ack: u64,
    trace: Option<VecDeque<String>>,
    stats: Stats,
}

type Check = Result<(), String>;

/// What a run exercised, summed over seeds and printed with the result.
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    established: u64,
    diffs: u64,
    truncs: u64,
    snaps: u64,
    commits: u64,
    crashes: u64,
    partitions: u64,
    replayed_removed: u64,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.established += o.established;
        self.diffs += o.diffs;
        self.truncs += o.truncs;
        self.snaps += o.snaps;
        self.commits += o.commits;
        self.crashes += o.crashes;
        self.partitions += o.partitions;
        self.replayed_removed += o.replayed_removed;
    }
}

impl Sim {
    fn new(seed: u64, trace: bool) -> Sim {
        let mut rng = Rng(seed);
        let (voters, observers): (u64, u64) = match seed % 5 {
            0 => (3, 0),
            1 => (5, 0),
            2 => (3, 1),
            3 => (5, 1),
            _ => (3, 2),
        };
        let voter_ids: BTreeSet<ServerId> = (1..=voters).collect();
        let observer_ids: BTreeSet<ServerId> = (voters + 1..=voters + observers).collect();
        let cfg = Config {
            id: 0,
            voters: voter_ids.clone(),
            observers: observer_ids.clone(),
            init_limit: 10,
            sync_limit: 5,
            finalize_wait: rng.range(0, 1),
            resend: 2,
            log_window: if rng.range(0, 2) == 0 {
                64
            } else {
                rng.range(2, 8) as usize
            },
        };
        let max_delay = rng.range(2, 8);
        let flush_max = TICK * [1, 3, 10][rng.range(0, 2) as usize];
        let fault_gap = [60, 150, 300][rng.range(0, 2) as usize];
        let crash_after_ack = [0, 20, 80][rng.range(0, 2) as usize];
        let mut sim = Sim {
            seed,
            rng,
            now: 0,
            seq: 0,
            steps: 0,
            events: BTreeMap::new(),
            cfg,
            nodes: BTreeMap::new(),
            links: BTreeMap::new(),
            group: BTreeMap::new(),
            chaos: true,
            dirty: VecDeque::new(),
            committed: Vec::new(),
            leaders: BTreeMap::new(),
            next_payload: 0,
            max_delay,
            flush_max,
            fault_gap,
            crash_after_ack,
            trace: trace.then(VecDeque::new),
            stats: Stats::default(),
        };
        for id in voter_ids.iter().chain(observer_ids.iter()) {
            sim.nodes.insert(
                *id,
                Node {
                    peer: None,
                    incarnation: 0,
                    disk: Disk::default(),
                    pending: Vec::new(),
                    applied: Vec::new(),
                    checked: 0,
                    flush_scheduled: false,
                },
            );
            sim.group.insert(*id, 0);
        }
        sim
    }

    fn log(&mut self, line: impl FnOnce() -> String) {
        if let Some(t) = &mut self.trace {
            if t.len() >= 3000 {
                t.pop_front();
            }
            t.push_back(format!("[{:>5}] {}", self.now, line()));
        }
    }

    fn schedule(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.events.insert((at, self.seq), ev);
    }

    fn ids(&self) -> Vec<ServerId> {
        self.nodes.keys().copied().collect()
    }

    fn alive(&self, id: ServerId) -> bool {
        self.nodes[&id].peer.is_some()
    }

    fn peer(&self, id: ServerId) -> Option<&Peer> {
        self.nodes[&id].peer.as_ref()
    }

    fn blocked(&self, a: ServerId, b: ServerId) -> bool {
        self.group[&a] != self.group[&b]
    }

    // ----- server lifecycle ---------------------------------------------------------------

    fn boot(&mut self, id: ServerId) -> Check {
        let recent_len = self.rng.range(0, self.cfg.log_window as u64 + 2) as usize;
        let node = self.nodes.get_mut(&id).expect("node");
        let entries = &node.disk.entries;
        let durable = Durable {
            accepted_epoch: node.disk.accepted,
            current_epoch: node.disk.current,
            last_zxid: entries.last().map_or(0, |e| e.zxid),
            recent: entries[entries.len().saturating_sub(recent_len)..].to_vec(),
        };
        let cfg = Config {
            id,
            ..self.cfg.clone()
        };
        let mut peer = Peer::new(cfg, durable);
        peer.start();
        node.peer = Some(peer);
        node.incarnation += 1;
        node.pending.clear();
        // The real server applies everything on its disk at start.
        node.applied = node
            .disk
            .entries
            .iter()
            .map(|e| (e.clone(), false))
            .collect();
        node.checked = 0;
        node.flush_scheduled = false;
        let inc = node.incarnation;
        let at = self.now + self.rng.range(1, TICK);
        self.schedule(
            at,
            Ev::Tick {
                id,
                incarnation: inc,
            },
        );
        self.log(|| format!("boot {id}"));
        self.dirty.push_back(id);
        self.settle()
    }

    fn crash(&mut self, id: ServerId) -> Check {
        self.log(|| format!("crash {id}"));
        self.stats.crashes += 1;
        let node = self.nodes.get_mut(&id).expect("node");
        node.peer = None;
        node.incarnation += 1;
        node.pending.clear();
        node.applied.clear();
        node.checked = 0;
        for other in self.ids() {
            if other != id {
                self.break_link(id, other);
            }
        }
        self.settle()
    }

    // ----- network --------------------------------------------------------------------------

    /// Breaks the connection between `a` and `b`: queued messages are dropped both ways and
    /// both ends (if up) hear about it.
    fn break_link(&mut self, a: ServerId, b: ServerId) {
        let mut had = false;
        for key in [(a, b), (b, a)] {
            let link = self.links.entry(key).or_default();
            had |= !link.queue.is_empty();
            link.generation += 1;
            link.queue.clear();
        }
        self.log(|| format!("break {a}-{b} (dropped: {had})"));
        self.notify_disconnected(a, b);
        self.notify_disconnected(b, a);
    }

    fn notify_disconnected(&mut self, at: ServerId, peer: ServerId) {
        if let Some(p) = self.nodes.get_mut(&at).and_then(|n| n.peer.as_mut()) {
            p.on_disconnected(peer);
            self.dirty.push_back(at);
        }
    }

    fn send(&mut self, from: ServerId, to: ServerId, msg: Message) {
        if !self.alive(to) || self.blocked(from, to) {
            // Cannot connect: the sender learns that the connection is down.
            self.log(|| format!("{from}->{to} undeliverable {msg:?}"));
            self.notify_disconnected(from, to);
            return;
        }
        let delay = self.rng.range(1, self.max_delay);
        let now = self.now;
        let link = self.links.entry((from, to)).or_default();
        let extra = if link.slow_until > now { link.slow } else { 0 };
        let at = (now + delay + extra).max(link.last_at);
        link.last_at = at;
        link.queue.push_back(msg);
        let generation = link.generation;
        self.schedule(
            at,
            Ev::Deliver {
                from,
                to,
                generation,
            },
        );
    }

    // ----- the shell ------------------------------------------------------------------------

    /// Performs the actions of every server with pending work, until none has any.
    fn settle(&mut self) -> Check {
        while let Some(id) = self.dirty.pop_front() {
            let actions = match self.nodes.get_mut(&id).and_then(|n| n.peer.as_mut()) {
                Some(p) => p.take_actions(),
                None => continue,
            };
            for a in actions {
                // A crash cannot happen mid-batch, but the server may have been rebuilt.
                if !self.alive(id) {
                    break;
                }
                self.perform(id, a)?;
            }
        }
        Ok(())
    }

    /// Maybe schedules a crash of `id` shortly (chaos only).
    fn maybe_crash_soon(&mut self, id: ServerId) {
        if self.chaos && self.rng.range(0, 999) < self.crash_after_ack {
            let incarnation = self.nodes[&id].incarnation;
            let at = self.now + self.rng.range(0, 2 * TICK);
            self.schedule(at, Ev::Crash { id, incarnation });
        }
    }

    fn perform(&mut self, id: ServerId, action: Action) -> Check {
        if self.trace.is_some() {
            let text = match &action {
                Action::InstallSnapshot { zxid, data } => {
                    format!(
                        "InstallSnapshot {{ zxid: {zxid:#x}, {} bytes }}",
                        data.len()
                    )
                }
                Action::Send {
                    to,
                    msg: Message::Snap { zxid, .. },
                } => format!("Send {to} Snap {zxid:#x}"),
                other => format!("{other:?}"),
            };
            self.log(|| format!("{id}: {text}"));
        }
        match action {
            Action::Send { to, msg } => {
                match &msg {
                    Message::Diff { .. } => self.stats.diffs += 1,
                    Message::Trunc { .. } => self.stats.truncs += 1,
                    Message::AckEpoch { .. }
                    | Message::AckNewLeader { .. }
                    | Message::Ack { .. }
                    | Message::Acks { .. }
                    | Message::NewLeader { .. }
                    | Message::Commit { .. } => {
                        let victim = if self.rng.range(0, 1) == 0 { id } else { to };
                        self.maybe_crash_soon(victim);
                    }
                    _ => {}
                }
                self.send(id, to, msg)
            }
            Action::Persist(entries) => {
                let node = self.nodes.get_mut(&id).expect("node");
                let mut last = node.last_logged();
                for e in &entries {
                    if e.zxid <= last {
                        return Err(format!(
                            "server {id}: Persist of {:#x} after {last:#x} (log must grow)",
                            e.zxid
                        ));
                    }
                    last = e.zxid;
                }
                node.pending.extend(entries);
                if !node.flush_scheduled {
                    node.flush_scheduled = true;
                    let inc = node.incarnation;
                    let at = self.now + self.rng.range(1, self.flush_max);
                    self.schedule(
                        at,
                        Ev::Flush {
                            id,
                            incarnation: inc,
                        },
                    );
                }
            }
            Action::PersistEpochs { accepted, current } => {
                let node = self.nodes.get_mut(&id).expect("node");
                if accepted < node.disk.accepted || current < node.disk.current {
                    return Err(format!(
                        "server {id}: epochs went back: ({}, {}) -> ({accepted}, {current})",
                        node.disk.accepted, node.disk.current
                    ));
                }
                if current > accepted {
                    return Err(format!(
                        "server {id}: current epoch {current} above accepted {accepted}"
                    ));
                }
                node.disk.accepted = accepted;
                node.disk.current = current;
            }
            Action::Truncate { zxid } => {
                let node = &self.nodes[&id];
                for e in node
                    .disk
                    .entries
                    .iter()
                    .chain(node.pending.iter())
                    .chain(node.applied.iter().map(|(e, _)| e))
                {
                    if e.zxid > zxid && is_committed(&self.committed, e) {
                        return Err(format!(
                            "server {id}: TRUNC to {zxid:#x} removes committed {:#x}",
                            e.zxid
                        ));
                    }
                }
                if node.applied.iter().any(|(e, _)| e.zxid > zxid) {
                    self.stats.replayed_removed += 1;
                }
                let node = self.nodes.get_mut(&id).expect("node");
                node.disk.entries.retain(|e| e.zxid <= zxid);
                node.pending.retain(|e| e.zxid <= zxid);
                node.applied.retain(|(e, _)| e.zxid <= zxid);
                node.checked = node.checked.min(node.applied.len());
            }
            Action::InstallSnapshot { zxid, data } => {
                let applied = decode(&data);
                let last = applied.last().map_or(0, |(e, _)| e.zxid);
                if last != zxid {
                    return Err(format!(
                        "server {id}: snapshot at {zxid:#x} holds state at {last:#x}"
                    ));
                }
                let node = self.nodes.get_mut(&id).expect("node");
                node.disk.entries = applied.iter().map(|(e, _)| e.clone()).collect();
                node.pending.clear();
                node.applied = applied;
                node.checked = 0;
                self.check_confirmed(id)?;
            }
            Action::SendSnapshot { to, zxid } => {
                let node = &self.nodes[&id];
                if node.applied_zxid() != zxid {
                    return Err(format!(
                        "server {id}: SendSnapshot at {zxid:#x} but applied state is at {:#x}",
                        node.applied_zxid()
                    ));
                }
                let data = encode(&node.applied);
                self.stats.snaps += 1;
                self.send(id, to, Message::Snap { zxid, data });
            }
            Action::Commit { zxid } => {
                let node = self.nodes.get_mut(&id).expect("node");
                let n = node.applied.len();
                let log: Vec<&Entry> = node.disk.entries.iter().chain(&node.pending).collect();
                if n > 0 && (log.len() < n || *log[n - 1] != node.applied[n - 1].0) {
                    return Err(format!("server {id}: applied state is not a log prefix"));
                }
                if log.last().map_or(0, |e| e.zxid) < zxid {
                    return Err(format!(
                        "server {id}: Commit {zxid:#x} beyond the log ({:#x})",
                        log.last().map_or(0, |e| e.zxid)
                    ));
                }
                let fresh: Vec<Entry> = log[n..]
                    .iter()
                    .take_while(|e| e.zxid <= zxid)
                    .map(|e| (*e).clone())
                    .collect();
                node.applied.extend(fresh.into_iter().map(|e| (e, false)));
                self.stats.commits += 1;
                for (e, confirmed) in node.applied.iter_mut() {
                    if e.zxid <= zxid {
                        *confirmed = true;
                    }
                }
                self.check_confirmed(id)?;
            }
            Action::Deliver { .. } => {}
            Action::RoleChanged {
                role,
                leader,
                epoch,
            } => match role {
                Role::Leading => {
                    if leader != Some(id) {
                        return Err(format!("server {id}: leading with leader {leader:?}"));
                    }
                    self.stats.established += 1;
                    self.maybe_crash_soon(id);
                    if let Some(other) = self.leaders.insert(epoch, id) {
                        return Err(format!(
                            "epoch {epoch} established twice: by {other} and by {id}"
                        ));
                    }
                }
                Role::Following | Role::Observing => {
                    let Some(l) = leader else {
                        return Err(format!("server {id}: serving without a leader"));
                    };
                    if self.leaders.get(&epoch) != Some(&l) {
                        return Err(format!(
                            "server {id} serves leader {l} in epoch {epoch}, but that epoch's \
                             established leader is {:?}",
                            self.leaders.get(&epoch)
                        ));
                    }
                }
                Role::Looking => {
                    // The sessions of the old role end: close every connection.
                    for other in self.ids() {
                        if other != id {
                            self.break_link(id, other);
                        }
                    }
                }
                Role::Standalone => return Err(format!("server {id}: standalone")),
            },
        }
        Ok(())
    }

    /// The confirmed prefix of `id` agrees with the global committed history (and extends it).
    fn check_confirmed(&mut self, id: ServerId) -> Check {
        let node = self.nodes.get_mut(&id).expect("node");
        let confirmed = node.applied.iter().take_while(|(_, c)| *c).count();
        if node.applied[confirmed..].iter().any(|(_, c)| *c) {
            return Err(format!(
                "server {id}: confirmed entries after unconfirmed ones"
            ));
        }
        for i in node.checked.min(confirmed)..confirmed {
            let e = &node.applied[i].0;
            match self.committed.get(i) {
                Some(g) if g == e => {}
                Some(g) => {
                    return Err(format!(
                        "server {id}: committed #{i} is {:#x} {:?}, elsewhere {:#x} {:?}",
                        e.zxid,
                        String::from_utf8_lossy(&e.data),
                        g.zxid,
                        String::from_utf8_lossy(&g.data)
                    ))
                }
                None => self.committed.push(e.clone()),
            }
        }
        node.checked = confirmed;
        Ok(())
    }

    // ----- events ---------------------------------------------------------------------------

    fn step(&mut self) -> Result<bool, String> {
        let Some((&(at, seq), &ev)) = self.events.iter().next() else {
            return Ok(false);
        };
        self.events.remove(&(at, seq));
        self.now = at;
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return Err(format!("more than {MAX_STEPS} steps: a message storm?"));
        }
        match ev {
            Ev::Deliver {
                from,
                to,
                generation,
            } => {
                let link = self.links.entry((from, to)).or_default();
                if link.generation != generation {
                    return Ok(true);
                }
                let msg = link.queue.pop_front().expect("queued message");
                if self.trace.is_some() {
                    let text = match &msg {
                        Message::Snap { zxid, .. } => format!("Snap {zxid:#x}"),
                        m => format!("{m:?}"),
                    };
                    self.log(|| format!("{from}->{to} {text}"));
                }
                if let Some(p) = self.nodes.get_mut(&to).and_then(|n| n.peer.as_mut()) {
                    p.on_message(from, msg);
                    self.dirty.push_back(to);
                }
            }
            Ev::Tick { id, incarnation } => {
                let node = self.nodes.get_mut(&id).expect("node");
                if node.incarnation != incarnation {
                    return Ok(true);
                }
                if let Some(p) = node.peer.as_mut() {
                    p.tick();
                    self.dirty.push_back(id);
                }
                let at = self.now + self.rng.range(TICK - 2, TICK + 2);
                self.schedule(at, Ev::Tick { id, incarnation });
            }
            Ev::Flush { id, incarnation } => {
                let node = self.nodes.get_mut(&id).expect("node");
                if node.incarnation != incarnation {
                    return Ok(true);
                }
                node.flush_scheduled = false;
                if !node.pending.is_empty() {
                    let n = self.rng.range(1, node.pending.len() as u64) as usize;
                    let node = self.nodes.get_mut(&id).expect("node");
                    let flushed: Vec<Entry> = node.pending.drain(..n).collect();
                    let last = flushed.last().expect("flushed").zxid;
                    node.disk.entries.extend(flushed);
                    let more = !node.pending.is_empty();
                    if more {
                        node.flush_scheduled = true;
                    }
                    if let Some(p) = node.peer.as_mut() {
                        p.on_persisted(last);
                        self.dirty.push_back(id);
                    }
                    self.log(|| format!("{id}: flushed to {last:#x}"));
                    if more {
                        let at = self.now + self.rng.range(1, self.flush_max);
                        self.schedule(at, Ev::Flush { id, incarnation });
                    }
                }
            }
            Ev::Crash { id, incarnation } => {
                if self.chaos && self.nodes[&id].incarnation == incarnation && self.alive(id) {
                    self.crash(id)?;
                    // Come back after a while, so that crashes keep overlapping elections.
                    let at = self.now + self.rng.range(TICK, 20 * TICK);
                    let incarnation = self.nodes[&id].incarnation;
                    self.schedule(at, Ev::Restart { id, incarnation });
                }
            }
            Ev::Restart { id, incarnation } => {
                if self.chaos && self.nodes[&id].incarnation == incarnation && !self.alive(id) {
                    self.boot(id)?;
                }
            }
            Ev::Fault => {
                if self.chaos {
                    self.fault()?;
                    let at = self.now + self.rng.range(10, self.fault_gap);
                    self.schedule(at, Ev::Fault);
                }
            }
            Ev::Propose => {
                if self.chaos {
                    let leaders: Vec<ServerId> = self
                        .ids()
                        .into_iter()
                        .filter(|id| {
                            self.peer(*id)
                                .is_some_and(|p| p.role() == Role::Leading && p.is_serving())
                        })
                        .collect();
                    if let Some(id) = self.rng.pick(&leaders) {
                        self.propose(id);
                    }
                    let at = self.now + self.rng.range(1, 4 * TICK);
                    self.schedule(at, Ev::Propose);
                }
            }
        }
        self.settle()?;
        Ok(true)
    }

    fn propose(&mut self, id: ServerId) {
        self.next_payload += 1;
        let data = format!("s{}-p{}", self.seed, self.next_payload).into_bytes();
        let peer = self.nodes.get_mut(&id).and_then(|n| n.peer.as_mut());
        let result = peer.map(|p| p.propose(data));
        let n = self.next_payload;
        self.log(|| format!("{id}: propose p{n} -> {result:?}"));
        self.dirty.push_back(id);
    }

    fn fault(&mut self) -> Check {
        let ids = self.ids();
        let up: Vec<ServerId> = ids.iter().copied().filter(|i| self.alive(*i)).collect();
        let down: Vec<ServerId> = ids.iter().copied().filter(|i| !self.alive(*i)).collect();
        match self.rng.range(0, 99) {
            0..=29 => {
                let (Some(a), Some(b)) = (self.rng.pick(&up), self.rng.pick(&up)) else {
                    return Ok(());
                };
                if a != b {
                    self.break_link(a, b);
                }
            }
            30..=37 => {
                if let Some(id) = self.rng.pick(&up) {
                    self.crash(id)?;
                }
            }
            38..=44 => {
                let leaders: Vec<ServerId> = up
                    .iter()
                    .copied()
                    .filter(|i| self.peer(*i).is_some_and(|p| p.role() == Role::Leading))
                    .collect();
                if let Some(id) = self.rng.pick(&leaders) {
                    self.crash(id)?;
                }
            }
            45..=64 => {
                if let Some(id) = self.rng.pick(&down) {
                    self.boot(id)?;
                }
            }
            65..=77 => {
                let groups: Vec<u8> = ids.iter().map(|_| self.rng.range(0, 1) as u8).collect();
                self.log(|| format!("partition {groups:?}"));
                self.stats.partitions += 1;
                for (id, g) in ids.iter().zip(groups) {
                    self.group.insert(*id, g);
                }
                for a in &ids {
                    for b in &ids {
                        if a < b && self.blocked(*a, *b) {
                            self.break_link(*a, *b);
                        }
                    }
                }
            }
            78..=92 => {
                self.log(|| "heal".to_string());
                for id in &ids {
                    self.group.insert(*id, 0);
                }
            }
            _ => {
                let (Some(a), Some(b)) = (self.rng.pick(&ids), self.rng.pick(&ids)) else {
                    return Ok(());
                };
                let slow = self.rng.range(10, 10 * TICK);
                let until = self.now + self.rng.range(TICK, 40 * TICK);
                self.log(|| format!("slow {a}->{b} by {slow} until {until}"));
                let link = self.links.entry((a, b)).or_default();
                link.slow = slow;
                link.slow_until = until;
            }
        }
        self.settle()
    }

    fn run_until(
        &mut self,
        deadline: u64,
        mut done: impl FnMut(&Sim) -> bool,
    ) -> Result<bool, String> {
        loop {
            if done(self) {
                return Ok(true);
            }
            match self.events.keys().next() {
                Some((at, _)) if *at <= deadline => {}
                _ => return Ok(false),
            }
            self.step()?;
        }
    }

    /// The serving leader that every server follows, if the ensemble is fully up.
    fn stable_leader(&self) -> Option<ServerId> {
        let leader = self
            .nodes
            .iter()
            .find(|(_, n)| {
                n.peer
                    .as_ref()
                    .is_some_and(|p| p.role() == Role::Leading && p.is_serving())
            })
            .map(|(id, _)| *id)?;
        self.nodes
            .values()
            .all(|n| {
                n.peer
                    .as_ref()
                    .is_some_and(|p| p.is_serving() && p.leader() == Some(leader))
            })
            .then_some(leader)
    }

    fn describe(&self) -> String {
        let mut s = String::new();
        for (id, n) in &self.nodes {
            match &n.peer {
                Some(p) => {
                    let _ = writeln!(
                        s,
                        "  {id}: {:?} serving={} leader={:?} status={:x?} vote={:?} applied={:#x} \
                         pending={}",
                        p.role(),
                        p.is_serving(),
                        p.leader(),
                        p.status(),
                        p.vote(),
                        n.applied_zxid(),
                        n.pending.len()
                    );
                }
                None => {
                    let _ = writeln!(s, "  {id}: down");
                }
            }
        }
        s
    }

    fn run(&mut self) -> Check {
        for id in self.ids() {
            self.boot(id)?;
        }
        let at = self.rng.range(0, 100);
        self.schedule(at, Ev::Fault);
        let at = self.rng.range(0, 50);
        self.schedule(at, Ev::Propose);
        let chaos_end = CHAOS_TIME;
        self.run_until(chaos_end, |_| false)?;

        // Quiet: heal everything, restart crashed servers, no more faults.
        self.chaos = false;
        self.log(|| "--- quiet ---".to_string());
        for id in self.ids() {
            self.group.insert(id, 0);
        }
        for link in self.links.values_mut() {
            link.slow_until = 0;
        }
        for id in self.ids() {
            if !self.alive(id) {
                self.boot(id)?;
            }
        }
        let deadline = self.now + SETTLE_TIME;
        if !self.run_until(deadline, |s| s.stable_leader().is_some())? {
            return Err(format!(
                "no stable serving leader {SETTLE_TIME} time units after healing\n{}",
                self.describe()
            ));
        }
        let leader = self.stable_leader().expect("leader");
        let mut wanted = Vec::new();
        for _ in 0..FINAL_PROPOSALS {
            self.next_payload += 1;
            let data = format!("s{}-final{}", self.seed, self.next_payload).into_bytes();
            let p = self.nodes.get_mut(&leader).and_then(|n| n.peer.as_mut());
            match p.expect("leader up").propose(data.clone()) {
                Ok(_) => wanted.push(data),
                Err(e) => return Err(format!("stable leader {leader} refused a proposal: {e:?}")),
            }
            self.dirty.push_back(leader);
            self.settle()?;
        }
        let deadline = self.now + SETTLE_TIME;
        let all_applied = |s: &Sim| {
            s.nodes.values().all(|n| {
                wanted
                    .iter()
                    .all(|w| n.applied.iter().any(|(e, c)| *c && *e.data == **w))
            })
        };
        if !self.run_until(deadline, all_applied)? {
            return Err(format!(
                "final proposals not committed and applied everywhere\n{}",
                self.describe()
            ));
        }
        // Every server's applied history is the same, and it holds every committed entry.
        let reference: Vec<&Entry> = self.nodes[&leader].applied.iter().map(|(e, _)| e).collect();
        for (id, n) in &self.nodes {
            let mine: Vec<&Entry> = n.applied.iter().map(|(e, _)| e).collect();
            if mine != reference {
                return Err(format!(
                    "server {id}'s applied history differs from the leader's ({} vs {} entries)",
                    mine.len(),
                    reference.len()
                ));
            }
        }
        if reference.len() < self.committed.len()
            || reference[..self.committed.len()]
                .iter()
                .zip(&self.committed)
                .any(|(a, b)| *a != b)
        {
            return Err("a committed entry was lost".to_string());
        }
        Ok(())
    }
}

fn is_committed(history: &[Entry], e: &Entry) -> bool {
    history
        .binary_search_by_key(&e.zxid, |g| g.zxid)
        .is_ok_and(|i| history[i] == *e)
}

fn encode(applied: &[(Entry, bool)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (e, confirmed) in applied {
        out.extend_from_slice(&e.zxid.to_le_bytes());
        out.push(u8::from(*confirmed));
        out.extend_from_slice(&(e.data.len() as u32).to_le_bytes());
        out.extend_from_slice(&e.data);
    }
    out
}

fn decode(mut data: &[u8]) -> Vec<(Entry, bool)> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let zxid = i64::from_le_bytes(data[..8].try_into().expect("zxid"));
        let confirmed = data[8] == 1;
        let len = u32::from_le_bytes(data[9..13].try_into().expect("len")) as usize;
        out.push((
            Entry {
                zxid,
                data: data[13..13 + len].into(),
            },
            confirmed,
        ));
        data = &data[13 + len..];
    }
    out
}

/// Runs one seed; on failure returns the reason (and the trace tail when tracing).
fn run_seed(seed: u64, trace: bool) -> Result<(u64, Stats), String> {
    let mut sim = Sim::new(seed, trace);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let r = sim.run();
        (r, sim.steps, sim.trace.take())
    }));
    match outcome {
        Ok((Ok(()), steps, _)) => Ok((steps, sim.stats)),
        Ok((Err(e), _, t)) => Err(with_trace(e, t)),
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(format!("panic: {msg}"))
        }
    }
}

fn with_trace(e: String, trace: Option<VecDeque<String>>) -> String {
    match trace {
        Some(t) => {
            let tail: Vec<String> = t.into_iter().collect();
            format!(
                "{e}\n--- trace (last {} lines) ---\n{}",
                tail.len(),
                tail.join("\n")
            )
        }
        None => e,
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

#[test]
fn simulation_keeps_zab_invariants() {
    if let Some(seed) = env_u64("CORRAL_SIM_SEED") {
        eprintln!("corral-zab sim: replaying seed {seed}");
        match run_seed(seed, true) {
            Ok((steps, stats)) => eprintln!("seed {seed}: ok ({steps} steps) {stats:?}"),
            Err(e) => panic!("seed {seed} failed: {e}"),
        }
        return;
    }
    let seeds = env_u64("CORRAL_SIM_SEEDS").unwrap_or(500);
    let first = env_u64("CORRAL_SIM_FIRST").unwrap_or(0);
    let next = AtomicU64::new(first);
    let failures: Mutex<Vec<(u64, String)>> = Mutex::new(Vec::new());
    let steps = AtomicU64::new(0);
    let stats = Mutex::new(Stats::default());
    let started = std::time::Instant::now();
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(4);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= first + seeds {
                    break;
                }
                match run_seed(seed, false) {
                    Ok((n, st)) => {
                        steps.fetch_add(n, Ordering::Relaxed);
                        stats.lock().expect("lock").add(&st);
                    }
                    Err(e) => failures.lock().expect("lock").push((seed, e)),
                }
            });
        }
    });
    eprintln!(
        "corral-zab sim: {seeds} seeds, {} steps, {:.1?}\n  exercised: {:?}",
        steps.load(Ordering::Relaxed),
        started.elapsed(),
        stats.into_inner().expect("lock")
    );
    let mut failures = failures.into_inner().expect("lock");
    failures.sort_by_key(|(s, _)| *s);
    if std::env::var("CORRAL_SIM_LIST").is_ok() {
        for (seed, e) in &failures {
            eprintln!("seed {seed}: {}", e.lines().next().unwrap_or(""));
        }
    }
    if let Some((seed, e)) = failures.first() {
        let failed: Vec<u64> = failures.iter().map(|(s, _)| *s).take(20).collect();
        panic!(
            "{} of {seeds} seeds failed (first ones: {failed:?})\n\
             first failure, seed {seed}: {e}\n\
             replay with:\n  \
             CORRAL_SIM_SEED={seed} cargo test -p corral-zab --test sim -- --nocapture",
            failures.len(),
        );
    }
}
