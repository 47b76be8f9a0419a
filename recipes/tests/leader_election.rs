//! Leader election that runs the leader's work (Curator's `LeaderSelector` semantics) on a
//! Corral ensemble (or Apache ZooKeeper): one work at a time, relinquish on return or loss,
//! cancellation, requeueing, participants.

mod common;
mod leader_env;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{ok, wait_children, within};
use corral_recipes::leader::{Election, ElectionState, LeaderContext, LeaderElection};
use leader_env::{Env, Rng, TermLog};
use tokio::sync::mpsc;

const PATH: &str = "/election/selector";

macro_rules! env_or_skip {
    () => {
        match Env::start().await {
            Some(env) => env,
            None => return,
        }
    };
}

async fn wait_election(
    what: &str,
    election: &Election,
    pred: impl FnMut(&ElectionState) -> bool,
) -> ElectionState {
    let mut rx = election.state_watcher();
    within(what, rx.wait_for(pred))
        .await
        .map(|s| s.clone())
        .expect("election state channel")
}

/// A work that leads until told to stop, reporting its start and its end in `log`, and its
/// context on `started`.
fn lead_until_cancelled(
    who: &'static str,
    log: Arc<TermLog>,
    started: mpsc::UnboundedSender<(&'static str, LeaderContext)>,
) -> impl FnMut(LeaderContext) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
       + Send
       + 'static {
    move |ctx: LeaderContext| {
        let log = log.clone();
        let started = started.clone();
        Box::pin(async move {
            log.begin(who, ctx.fencing_token().0);
            let _ = started.send((who, ctx.clone()));
            ctx.cancelled().await;
            log.end(who);
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participants_take_turns_one_work_at_a_time_with_increasing_tokens() {
    let env = env_or_skip!();
    const TERMS: usize = 9;
    let log = Arc::new(TermLog::default());
    let running = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let (finished_tx, mut finished) = mpsc::unbounded_channel();
    let mut elections = Vec::new();
    for who in ["a", "b", "c"] {
        let (log, running, done, finished_tx) = (
            log.clone(),
            running.clone(),
            done.clone(),
            finished_tx.clone(),
        );
        let election = LeaderElection::new(env.client().await, PATH)
            .with_id(who)
            .with_auto_requeue(true)
            .start(move |ctx| {
                let (log, running, done, finished_tx) = (
                    log.clone(),
                    running.clone(),
                    done.clone(),
                    finished_tx.clone(),
                );
                async move {
                    assert_eq!(
                        running.fetch_add(1, Ordering::SeqCst),
                        0,
                        "two works at once"
                    );
                    log.begin(who, ctx.fencing_token().0);
                    // The work: a little while in charge.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    log.end(who);
                    running.fetch_sub(1, Ordering::SeqCst);
                    if done.fetch_add(1, Ordering::SeqCst) + 1 == TERMS {
                        let _ = finished_tx.send(());
                    }
                }
            });
        elections.push(election);
    }
    within("enough terms", finished.recv())
        .await
        .expect("terms");
    for e in elections {
        within("close", e.close()).await;
    }
    let terms = log.check();
    assert!(terms >= TERMS, "{terms} terms");
    let mut who: Vec<String> = log.terms().into_iter().map(|t| t.who).collect();
    who.sort();
    who.dedup();
    assert_eq!(
        who,
        ["a", "b", "c"],
        "every participant led: {:#?}",
        log.terms()
    );
    let observer = env.client().await;
    wait_children(&observer, PATH, "every node deleted", |c| c.is_empty()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participants_list_ids_in_queue_order_with_the_leader_first() {
    let env = env_or_skip!();
    let log = Arc::new(TermLog::default());
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let observer = env.client().await;
    let mut elections = Vec::new();
    for (i, who) in ["a", "b", "c"].into_iter().enumerate() {
        elections.push(
            LeaderElection::new(env.client().await, PATH)
                .with_id(who)
                .start(lead_until_cancelled(who, log.clone(), started_tx.clone())),
        );
        wait_children(&observer, PATH, "queued", |c| c.len() == i + 1).await;
    }
    let (who, ctx) = within("a leads", started.recv()).await.unwrap();
    assert_eq!(who, "a");
    assert!(elections[0].is_leader());
    assert_eq!(
        elections[0].state(),
        ElectionState::Leading(ctx.fencing_token())
    );
    assert_eq!(elections[1].state(), ElectionState::Queued);
    let participants = ok("participants", elections[2].participants().await);
    let ids: Vec<(&str, bool)> = participants
        .iter()
        .map(|p| (p.id(), p.is_leader()))
        .collect();
    assert_eq!(ids, [("a", true), ("b", false), ("c", false)]);
    assert_eq!(ok("leader", elections[1].leader().await).unwrap().id(), "a");
    // Curator's LeaderSelector layout: an InterProcessMutex, data = id.
    let nodes = common::children(&observer, PATH).await;
    assert!(
        nodes
            .iter()
            .all(|n| n.starts_with("_c_") && n.contains("-lock-")),
        "{nodes:?}"
    );
    assert!(ctx.node().contains("-lock-"));
    assert_eq!(ctx.id(), "a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_leader_cancels_its_work_and_the_next_leads_after_it_returned() {
    let env = env_or_skip!();
    let log = Arc::new(TermLog::default());
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let observer = env.client().await;
    let a = LeaderElection::new(env.client().await, PATH)
        .with_id("a")
        .start(lead_until_cancelled("a", log.clone(), started_tx.clone()));
    let (_, ctx_a) = within("a leads", started.recv()).await.unwrap();
    let b = LeaderElection::new(env.client().await, PATH)
        .with_id("b")
        .start(lead_until_cancelled("b", log.clone(), started_tx.clone()));
    wait_children(&observer, PATH, "b queued", |c| c.len() == 2).await;
    within("close a", a.close()).await;
    assert!(ctx_a.is_cancelled());
    let (who, ctx_b) = within("b leads", started.recv()).await.unwrap();
    assert_eq!(who, "b");
    assert!(ctx_b.fencing_token() > ctx_a.fencing_token());
    drop(b);
    within("b's work is told to stop", ctx_b.cancelled()).await;
    assert_eq!(log.check(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_auto_requeue_a_participant_leads_once_until_requeued() {
    let env = env_or_skip!();
    let observer = env.client().await;
    let terms = Arc::new(Mutex::new(Vec::new()));
    let (done_tx, mut done) = mpsc::unbounded_channel();
    let terms2 = terms.clone();
    let a = LeaderElection::new(env.client().await, PATH)
        .with_id("a")
        .start(move |ctx| {
            terms2.lock().unwrap().push(ctx.fencing_token());
            let done_tx = done_tx.clone();
            async move {
                let _ = done_tx.send(());
            }
        });
    within("a's first term", done.recv()).await.unwrap();
    wait_election("a idle", &a, |s| *s == ElectionState::Idle).await;
    wait_children(&observer, PATH, "a's node deleted", |c| c.is_empty()).await;
    assert_eq!(terms.lock().unwrap().len(), 1);
    a.requeue();
    within("a's second term", done.recv()).await.unwrap();
    wait_election("a idle again", &a, |s| *s == ElectionState::Idle).await;
    let terms = terms.lock().unwrap().clone();
    assert_eq!(terms.len(), 2);
    assert!(terms[1] > terms[0]);
}

/// The leader is cut off and its session expires: its work is told to stop as soon as the
/// connection drops (before the session is gone), and the next participant's work starts
/// only after that, with a higher token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_loses_its_connection_is_cancelled_before_another_leads() {
    let env = env_or_skip!();
    let log = Arc::new(TermLog::default());
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let observer = env.client().await;
    let a_member = env.member().await;
    let a = LeaderElection::new(a_member.client.clone(), PATH)
        .with_id("a")
        .with_auto_requeue(true)
        .start(lead_until_cancelled("a", log.clone(), started_tx.clone()));
    let (_, ctx_a) = within("a leads", started.recv()).await.unwrap();
    let b = LeaderElection::new(env.client().await, PATH)
        .with_id("b")
        .start(lead_until_cancelled("b", log.clone(), started_tx.clone()));
    wait_children(&observer, PATH, "b queued", |c| c.len() == 2).await;

    let status = a_member.client.status();
    a_member.cut();
    within("a's work is cancelled", ctx_a.cancelled()).await;
    let cancelled_at = Instant::now();
    assert!(!a.is_leader());
    env.expire(&status).await;
    let (who, ctx_b) = within("b leads", started.recv()).await.unwrap();
    assert_eq!(who, "b");
    assert!(ctx_b.fencing_token() > ctx_a.fencing_token());
    let b_term = log.terms().into_iter().find(|t| t.who == "b").unwrap();
    assert!(b_term.start >= cancelled_at);
    // a comes back in a new session and queues again behind b.
    a_member.heal();
    wait_election("a queued again", &a, |s| *s == ElectionState::Queued).await;
    wait_children(&observer, PATH, "a requeued", |c| c.len() == 2).await;
    assert!(b.is_leader());
    assert_eq!(log.check(), 2);
}

/// Random session kills of the participants: never two works at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_session_kills_never_run_two_leaders_works_at_once() {
    let env = env_or_skip!();
    let mut rng = Rng::from_env("election chaos");
    const MEMBERS: usize = 3;
    const ROUNDS: usize = 5;
    let log = Arc::new(TermLog::default());
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let mut members = Vec::new();
    let mut elections = Vec::new();
    const NAMES: [&str; MEMBERS] = ["m0", "m1", "m2"];
    for who in NAMES {
        let m = env.member().await;
        elections.push(
            LeaderElection::new(m.client.clone(), PATH)
                .with_id(who)
                .with_auto_requeue(true)
                .start(lead_until_cancelled(who, log.clone(), started_tx.clone())),
        );
        members.push(m);
    }
    let (mut leader, mut ctx) = within("a first leader", started.recv()).await.unwrap();
    for round in 0..ROUNDS {
        let victim = if rng.below(3) == 0 {
            rng.below(MEMBERS as u64) as usize
        } else {
            NAMES.iter().position(|n| *n == leader).unwrap()
        };
        eprintln!(
            "round {round}: expiring {}'s session (leader {leader})",
            NAMES[victim]
        );
        let status = members[victim].client.status();
        members[victim].cut();
        if NAMES[victim] == leader {
            within("the leader is cancelled", ctx.cancelled()).await;
        }
        env.expire(&status).await;
        members[victim].heal();
        if NAMES[victim] == leader {
            let (next, next_ctx) = within("a new leader", started.recv()).await.unwrap();
            assert!(next_ctx.fencing_token() > ctx.fencing_token());
            leader = next;
            ctx = next_ctx;
        }
        within(
            "the victim has a new session",
            members[victim]
                .client
                .state_watcher()
                .wait_for(common::WAIT, |s| s.epoch > status.epoch && s.is_connected()),
        )
        .await
        .expect("new session");
    }
    for e in elections {
        within("close", e.close()).await;
    }
    let terms = log.check();
    assert!(terms >= 2, "{:#?}", log.terms());
}
