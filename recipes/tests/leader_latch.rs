//! The leader latch on a Corral ensemble (or Apache ZooKeeper): one leader, predecessor
//! watches, suspension, session loss and rejoin, Curator's double-leader and
//! vanished-parent scenarios, and a randomised run of session kills and server restarts
//! checked by a fencing-token log.

mod common;
mod leader_env;

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{children, ok, wait_children, within};
use corral_client::{Client, KeeperState};
use corral_recipes::leader::{LatchState, LeaderLatch, Term};
use corral_recipes::RecipeError;
use futures_core::Stream;
use leader_env::{observe_latch, Env, Member, Rng, TermLog};

const LATCH: &str = "/election/latch";

macro_rules! env_or_skip {
    () => {
        match Env::start().await {
            Some(env) => env,
            None => return,
        }
    };
}

fn is_latch_node(name: &str) -> bool {
    name.starts_with("_c_") && name.contains("-latch-")
}

async fn wait_latch(
    what: &str,
    latch: &LeaderLatch,
    pred: impl FnMut(&LatchState) -> bool,
) -> LatchState {
    let mut rx = latch.state_watcher();
    within(what, rx.wait_for(pred))
        .await
        .map(|s| s.clone())
        .expect("latch state channel")
}

async fn leads(what: &str, latch: &LeaderLatch) -> Term {
    ok(what, within(what, latch.leadership()).await)
}

/// Starts latches one after the other, each once the previous one's node exists, so that
/// their queue order is their start order.
async fn start_in_order(env: &Env, clients: &[Client], ids: &[&str]) -> Vec<LeaderLatch> {
    let observer = env.client().await;
    let mut latches = Vec::new();
    for (i, (client, id)) in clients.iter().zip(ids).enumerate() {
        latches.push(LeaderLatch::start_with_id(client.clone(), LATCH, *id));
        wait_children(&observer, LATCH, "latch node created", |c| c.len() == i + 1).await;
    }
    // Closing the observer removes its (child) watch.
    ok("close the observer", observer.close().await);
    latches
}

/// Records every state a latch goes through, with the client's status at that moment.
fn record_states(
    latch: &LeaderLatch,
    client: Client,
) -> Arc<std::sync::Mutex<Vec<(LatchState, KeeperState)>>> {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut rx = latch.state_watcher();
    let out = seen.clone();
    out.lock()
        .unwrap()
        .push((rx.borrow().clone(), client.status().keeper_state));
    tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            let s = rx.borrow_and_update().clone();
            out.lock().unwrap().push((s, client.status().keeper_state));
        }
    });
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_of_three_leads_and_each_follower_watches_only_its_predecessor() {
    let env = env_or_skip!();
    let clients = vec![env.client().await, env.client().await, env.client().await];
    let latches = start_in_order(&env, &clients, &["a", "b", "c"]).await;
    let term = leads("a leads", &latches[0]).await;
    for l in &latches[1..] {
        wait_latch("follower", l, |s| *s == LatchState::Follower).await;
    }
    assert!(latches[0].has_leadership());
    assert!(!latches[1].has_leadership() && !latches[2].has_leadership());

    // Curator's layout: _c_<uuid>-latch-<seq>, data = id; the token is the czxid.
    let nodes = children(&clients[0], LATCH).await;
    assert_eq!(nodes.len(), 3);
    assert!(nodes.iter().all(|n| is_latch_node(n)), "{nodes:?}");
    let (data, stat) = ok(
        "read the leader's node",
        clients[0].get_data(term.node()).await,
    );
    assert_eq!(data, b"a");
    assert_eq!(term.fencing_token().0, stat.czxid);
    assert_eq!(term.session_id(), clients[0].session_id());

    let participants = ok("participants", latches[2].participants().await);
    let ids: Vec<(&str, bool)> = participants
        .iter()
        .map(|p| (p.id(), p.is_leader()))
        .collect();
    assert_eq!(ids, [("a", true), ("b", false), ("c", false)]);
    assert_eq!(ok("leader", latches[1].leader().await).unwrap().id(), "a");

    // No herd: b's node is watched by c alone, c's node by nobody, and nobody watches
    // the directory's children.
    let node = |i: usize| format!("{}{LATCH}/{}", env.root, participants[i].node());
    let watches = env.watches().await;
    let watchers_of = |path: &str| -> Vec<String> {
        let mut w: Vec<String> = watches
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, s)| s.clone())
            .collect();
        w.sort();
        w
    };
    let session = |i: usize| clients[i].session_id().to_string();
    let mut a_watchers = vec![session(0), session(1)];
    a_watchers.sort();
    assert_eq!(watchers_of(&node(0)), a_watchers, "{watches:?}");
    assert_eq!(watchers_of(&node(1)), [session(2)], "{watches:?}");
    assert!(watchers_of(&node(2)).is_empty(), "{watches:?}");
    assert!(
        watchers_of(&format!("{}{LATCH}", env.root)).is_empty(),
        "herd on the directory: {watches:?}"
    );
    for l in latches {
        ok("close", l.close().await);
    }
    // Another client's server may lag behind the deletes for a moment: wait for them.
    wait_children(&clients[0], LATCH, "every node deleted", |c| c.is_empty()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_or_dropping_the_leader_hands_leadership_on_with_a_higher_token() {
    let env = env_or_skip!();
    let clients = vec![env.client().await, env.client().await, env.client().await];
    let mut latches = start_in_order(&env, &clients, &["a", "b", "c"]).await;
    let c = latches.pop().unwrap();
    let b = latches.pop().unwrap();
    let a = latches.pop().unwrap();
    let first = leads("a leads", &a).await;
    let a_node = first.node().to_owned();
    let mut a_states = a.state_watcher();
    ok("close a", a.close().await);
    assert_eq!(*a_states.borrow_and_update(), LatchState::Closed);
    assert_eq!(ok("a's node", clients[0].exists(&a_node).await), None);
    let second = leads("b leads", &b).await;
    assert!(second.fencing_token() > first.fencing_token());
    assert!(!c.has_leadership());
    drop(b);
    let third = leads("c leads after b is dropped", &c).await;
    assert!(third.fencing_token() > second.fencing_token());
    assert_eq!(ok("leader", c.leader().await).unwrap().id(), "c");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_waits_time_out_and_a_closed_client_fails_the_latch() {
    let env = env_or_skip!();
    let clients = vec![env.client().await, env.client().await];
    let latches = start_in_order(&env, &clients, &["a", "b"]).await;
    leads("a leads", &latches[0]).await;
    let waited = ok(
        "b waits",
        latches[1]
            .leadership_timeout(Duration::from_millis(300))
            .await,
    );
    assert_eq!(waited, None);
    // A latch whose client is closed stops for good, and says why.
    ok("close b's client", clients[1].close().await);
    let state = wait_latch("b fails", &latches[1], LatchState::is_final).await;
    assert_eq!(
        state,
        LatchState::Failed(RecipeError::Client(corral_client::Error::ClientClosed))
    );
    assert_eq!(
        latches[1].leadership().await,
        Err(RecipeError::Client(corral_client::Error::ClientClosed))
    );
    assert!(latches[0].has_leadership());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_stream_reports_leadership_as_it_moves() {
    let env = env_or_skip!();
    let clients = vec![env.client().await, env.client().await];
    let mut latches = start_in_order(&env, &clients, &["a", "b"]).await;
    let b = latches.pop().unwrap();
    let a = latches.pop().unwrap();
    leads("a leads", &a).await;
    wait_latch("b follows", &b, |s| *s == LatchState::Follower).await;
    let mut stream = b.state_stream();
    ok("close a", a.close().await);
    let next = within(
        "b's stream",
        poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)),
    )
    .await;
    assert!(
        matches!(next, Some(LatchState::Leader(_))),
        "expected leadership, got {next:?}"
    );
    ok("close b", b.close().await);
    let mut last = None;
    while let Some(s) = within(
        "stream end",
        poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)),
    )
    .await
    {
        last = Some(s);
    }
    assert_eq!(last, Some(LatchState::Closed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnected_leader_stops_claiming_and_leads_again_only_after_rechecking() {
    let env = env_or_skip!();
    let a = env.member().await;
    let b = env.client().await;
    let latch_a = LeaderLatch::start_with_id(a.client.clone(), LATCH, "a");
    let term = leads("a leads", &latch_a).await;
    let latch_b = LeaderLatch::start_with_id(b.clone(), LATCH, "b");
    wait_latch("b follows", &latch_b, |s| *s == LatchState::Follower).await;
    let seen = record_states(&latch_a, a.client.clone());

    a.cut();
    wait_latch("a suspended", &latch_a, |s| *s == LatchState::Suspended).await;
    assert!(!latch_a.has_leadership());
    a.heal();
    let again = leads("a leads again", &latch_a).await;
    assert_eq!(again, term, "the same node, session and token");
    assert!(!latch_b.has_leadership());
    // Every claim was made while connected: never during the cut.
    let seen = seen.lock().unwrap().clone();
    for (state, keeper) in &seen {
        if state.is_leader() {
            assert_eq!(
                *keeper,
                KeeperState::SyncConnected,
                "claimed while {keeper:?}: {seen:?}"
            );
        }
    }
}

/// Curator's CURATOR-696 (two leaders, fixed in 5.7): the leader's session expires while
/// it is cut off; it must not lead again on its old node when it comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_session_expired_rejoins_as_a_follower_and_never_leads_on_its_old_node() {
    let env = env_or_skip!();
    let a = env.member().await;
    let b = env.client().await;
    let latch_a = LeaderLatch::start_with_id(a.client.clone(), LATCH, "a");
    let first = leads("a leads", &latch_a).await;
    let latch_b = LeaderLatch::start_with_id(b.clone(), LATCH, "b");
    wait_latch("b follows", &latch_b, |s| *s == LatchState::Follower).await;

    let status = a.client.status();
    a.cut();
    wait_latch("a suspended", &latch_a, |s| !s.is_leader()).await;
    let seen = record_states(&latch_a, a.client.clone());
    env.expire(&status).await;
    let second = leads("b leads", &latch_b).await;
    assert!(second.fencing_token() > first.fencing_token());

    a.heal();
    within(
        "a's client renews its session",
        a.client.state_watcher().wait_for(common::WAIT, |s| {
            s.epoch == status.epoch + 1 && s.is_connected()
        }),
    )
    .await
    .expect("renewed");
    wait_latch("a follows with a new node", &latch_a, |s| {
        *s == LatchState::Follower
    })
    .await;
    // b's server may lag behind a's new node for a moment: catch up first.
    ok("sync", b.sync(LATCH).await);
    let participants = ok("participants", latch_b.participants().await);
    let ids: Vec<&str> = participants.iter().map(|p| p.id()).collect();
    assert_eq!(ids, ["b", "a"]);
    assert_ne!(
        format!("{LATCH}/{}", participants[1].node()),
        first.node(),
        "a rejoined with a new node"
    );
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter().all(|(s, _)| !s.is_leader()),
        "a led again after its session expired: {seen:?}"
    );
    assert!(latch_b.has_leadership());
}

/// Curator's CURATOR-724 (fixed in 5.8): the latch directory is a container; when the only
/// participant's session expires, its node goes and the server reaps the directory. The
/// latch must create it again when it rejoins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_latch_whose_directory_vanished_creates_it_again_and_leads() {
    let env = env_or_skip!();
    let a = env.member().await;
    let observer = env.client().await;
    let latch = LeaderLatch::start_with_id(a.client.clone(), LATCH, "a");
    let first = leads("a leads", &latch).await;
    let status = a.client.status();
    a.cut();
    wait_latch("a stops claiming", &latch, |s| !s.is_leader()).await;
    env.expire(&status).await;
    // The container goes once its last child has gone.
    within("the latch directory is reaped", async {
        loop {
            let (stat, watcher) = observer.exists_and_watch(LATCH).await.expect("exists");
            if stat.is_none() {
                return;
            }
            let _ = watcher.await;
        }
    })
    .await;
    a.heal();
    let second = leads("a leads again", &latch).await;
    assert!(second.fencing_token() > first.fencing_token());
    assert_ne!(second.session_id(), first.session_id());
    ok("sync", observer.sync(LATCH).await);
    assert!(ok("directory", observer.exists(LATCH).await).is_some());
}

/// After the leader's session expires, another participant leads within the session
/// timeout plus one second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_follows_an_expired_session_within_the_session_timeout_and_a_second() {
    let env = env_or_skip!();
    let a = env.member().await;
    let b = env.client().await;
    let latch_a = LeaderLatch::start_with_id(a.client.clone(), LATCH, "a");
    leads("a leads", &latch_a).await;
    let latch_b = LeaderLatch::start_with_id(b.clone(), LATCH, "b");
    wait_latch("b follows", &latch_b, |s| *s == LatchState::Follower).await;
    let timeout = a.client.status().session_timeout;
    let status = a.client.status();
    let bound = timeout + Duration::from_secs(1);
    a.cut();
    let cut_at = Instant::now();
    if env_is_cluster(&env) {
        // The session expires on its own: the server has not heard from it since the cut.
        leads("b leads", &latch_b).await;
        let took = cut_at.elapsed();
        assert!(
            took <= bound,
            "b led {took:?} after a was cut off (session timeout {timeout:?})"
        );
    } else {
        // Apache ZooKeeper's harness ticks every 2 s, so its expiry alone may take up to
        // timeout + 2 s; measure from the expiry instead.
        env.expire(&status).await;
        let expired_at = Instant::now();
        leads("b leads", &latch_b).await;
        let took = expired_at.elapsed();
        assert!(took <= bound, "b led {took:?} after a's session expired");
    }
    assert!(!latch_a.has_leadership());
}

fn env_is_cluster(env: &Env) -> bool {
    matches!(env.servers, leader_env::Servers::Cluster(_))
}

/// Randomised session kills (and, on an ensemble, server restarts): never two leaders at
/// once, tokens strictly increase, and there is always a leader again afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_session_kills_and_server_restarts_never_make_two_leaders() {
    let mut env = env_or_skip!();
    let mut rng = Rng::from_env("latch chaos");
    const MEMBERS: usize = 3;
    const ROUNDS: usize = 12;
    let log = Arc::new(TermLog::default());
    let mut members: Vec<Member> = Vec::new();
    let mut latches = Vec::new();
    let mut observers = Vec::new();
    for i in 0..MEMBERS {
        let m = env.member().await;
        let latch = LeaderLatch::start_with_id(m.client.clone(), LATCH, format!("m{i}"));
        observers.push(observe_latch(
            log.clone(),
            format!("m{i}"),
            latch.state_watcher(),
        ));
        latches.push(latch);
        members.push(m);
    }
    let restarts = env.cluster().is_some();
    if !restarts {
        eprintln!("SKIPPED (part): server restarts need an ensemble; only session kills here");
    }
    for round in 0..ROUNDS {
        // Wait for a settled election: one leader, everyone else following.
        within("a settled election", async {
            loop {
                let states: Vec<LatchState> = latches.iter().map(|l| l.state()).collect();
                let leaders = states.iter().filter(|s| s.is_leader()).count();
                let followers = states
                    .iter()
                    .filter(|s| **s == LatchState::Follower)
                    .count();
                if leaders == 1 && followers == MEMBERS - 1 {
                    return;
                }
                let mut changes: Vec<_> = latches.iter().map(|l| l.state_watcher()).collect();
                let _ = tokio::time::timeout(Duration::from_millis(500), any_changed(&mut changes))
                    .await;
            }
        })
        .await;
        // The server agrees: the first node in line is the leading latch's.
        // (Listed through the leader's own session, which decided on that same view.)
        let leading = latches.iter().position(|l| l.has_leadership()).unwrap();
        let participants = ok("participants", latches[leading].participants().await);
        assert_eq!(
            participants[0].id(),
            latches[leading].id(),
            "{participants:?}"
        );
        let action = rng.below(if restarts { 10 } else { 6 });
        if action < 6 {
            // Kill a participant's session (the leader half of the time).
            let victim = if rng.below(2) == 0 {
                latches.iter().position(|l| l.has_leadership()).unwrap()
            } else {
                rng.below(MEMBERS as u64) as usize
            };
            eprintln!("round {round}: expiring m{victim}'s session");
            let status = members[victim].client.status();
            members[victim].cut();
            wait_latch("victim stops claiming", &latches[victim], |s| {
                !s.is_leader()
            })
            .await;
            env.expire(&status).await;
            members[victim].heal();
            within(
                "the victim gets a new session",
                members[victim]
                    .client
                    .state_watcher()
                    .wait_for(common::WAIT, |s| s.epoch > status.epoch && s.is_connected()),
            )
            .await
            .expect("new session");
        } else {
            let cluster = env.cluster().unwrap();
            let id = 1 + rng.below(3);
            eprintln!("round {round}: restarting server {id}");
            cluster.restart(id).await.expect("restart");
            cluster
                .wait_for_leader(common::WAIT)
                .await
                .expect("the ensemble serves again");
        }
    }
    within("a final leader", async {
        loop {
            if latches.iter().filter(|l| l.has_leadership()).count() == 1 {
                return;
            }
            let mut changes: Vec<_> = latches.iter().map(|l| l.state_watcher()).collect();
            let _ =
                tokio::time::timeout(Duration::from_millis(500), any_changed(&mut changes)).await;
        }
    })
    .await;
    for l in latches {
        ok("close", l.close().await);
    }
    for o in observers {
        within("observer ends", o).await.expect("observer");
    }
    let terms = log.check();
    assert!(
        terms >= 2,
        "leadership moved at least once: {:#?}",
        log.terms()
    );
    eprintln!("latch chaos: {terms} terms, no overlap");
}

/// Completes when any of the receivers sees a change (or its latch is gone).
async fn any_changed(rxs: &mut [tokio::sync::watch::Receiver<LatchState>]) {
    let mut futs: Vec<_> = rxs.iter_mut().map(|rx| Box::pin(rx.changed())).collect();
    poll_fn(|cx| {
        for f in futs.iter_mut() {
            if f.as_mut().poll(cx).is_ready() {
                return std::task::Poll::Ready(());
            }
        }
        std::task::Poll::Pending
    })
    .await
}
