//! The barrier and the double barrier against a real server: release together, enter and
//! leave together, no bypass (spurious wake-ups, connection events, stale ready nodes,
//! participants of an earlier round), timeouts that clean up, and sessions that expire
//! inside.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{children, ok, wait_children, within, Proxy};
use corral_client::CreateOptions;
use corral_recipes::barrier::{Barrier, DoubleBarrier};
use corral_recipes::RecipeError;

const GATE: &str = "/barriers/gate";
const ROUND: &str = "/barriers/round";

/// Whether `fut` is still pending after `d` (the future is kept).
async fn still_pending<F: std::future::Future + Unpin>(fut: &mut F, d: Duration) -> bool {
    tokio::time::timeout(d, fut).await.is_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_waiter_is_released_together_when_the_barrier_is_removed() {
    let ctx = ctx_or_skip!();
    let setter = Barrier::new(ctx.client().await, GATE);
    ok("set", setter.set().await);
    ok("set twice", setter.set().await);
    assert!(ok("is set", setter.is_set().await));
    let released = Arc::new(Mutex::new(Vec::new()));
    let mut waiters = Vec::new();
    for _ in 0..4 {
        let barrier = Barrier::new(ctx.client().await, GATE);
        assert!(
            !ok(
                "short wait",
                barrier.wait_timeout(Duration::from_millis(100)).await
            ),
            "released while set"
        );
        let released = released.clone();
        waiters.push(tokio::spawn(async move {
            barrier.wait().await.expect("wait");
            released.lock().unwrap().push(Instant::now());
        }));
    }
    // Every waiter has its watch on the barrier node before it goes.
    let removed_at = Instant::now();
    ok("remove", setter.remove().await);
    for w in waiters {
        within("waiter released", w).await.expect("task");
    }
    let released = released.lock().unwrap().clone();
    assert_eq!(released.len(), 4);
    assert!(released.iter().all(|t| *t >= removed_at));
    ok("remove twice", setter.remove().await);
    assert!(!ok("is set", setter.is_set().await));
    // Not set: a wait returns at once.
    assert!(ok(
        "wait",
        setter.wait_timeout(Duration::from_secs(5)).await
    ));
}

#[tokio::test]
async fn a_dropped_connection_does_not_release_a_waiter() {
    let ctx = ctx_or_skip!();
    let proxy = Proxy::start(ctx.server.addr()).await;
    let setter = Barrier::new(ctx.client().await, GATE);
    ok("set", setter.set().await);
    let barrier = Barrier::new(ctx.client_via(&proxy).await, GATE);
    let mut waiting = Box::pin(barrier.wait());
    assert!(still_pending(&mut waiting, Duration::from_millis(100)).await);
    proxy.cut();
    assert!(still_pending(&mut waiting, Duration::from_millis(200)).await);
    proxy.heal();
    assert!(
        still_pending(&mut waiting, Duration::from_millis(300)).await,
        "a reconnect released the waiter"
    );
    ok("remove", setter.remove().await);
    ok("released", within("released", waiting).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_enters_before_all_have_arrived_and_nobody_leaves_before_all_have_left() {
    let ctx = ctx_or_skip!();
    const N: usize = 4;
    let observer = ctx.client().await;
    let log = Arc::new(Mutex::new(Vec::<(&str, usize, Instant)>::new()));
    let mut tasks = Vec::new();
    for i in 0..N {
        let client = ctx.client().await;
        let log = log.clone();
        // Participant i arrives once i others are inside (the order of arrivals).
        let observer = observer.clone();
        tasks.push(tokio::spawn(async move {
            wait_children(&observer, ROUND, "my turn to arrive", |c| {
                c.iter().filter(|n| *n != "ready").count() >= i
            })
            .await;
            log.lock().unwrap().push(("arrive", i, Instant::now()));
            let barrier = DoubleBarrier::new(client, ROUND, N);
            let inside = barrier.enter().await.expect("enter");
            log.lock().unwrap().push(("entered", i, Instant::now()));
            inside
        }));
    }
    let mut inside = Vec::new();
    for t in tasks {
        inside.push(within("enter", t).await.expect("task"));
    }
    let entered = log.lock().unwrap().clone();
    let last_arrival = entered
        .iter()
        .filter(|e| e.0 == "arrive")
        .map(|e| e.2)
        .max()
        .unwrap();
    for (what, i, at) in &entered {
        if *what == "entered" {
            assert!(
                *at >= last_arrival,
                "participant {i} entered before the last arrived"
            );
        }
    }
    // Leave one by one: each leave blocks until the last participant has left.
    let mut leaving = Vec::new();
    let left_at = Arc::new(Mutex::new(Vec::new()));
    let last = inside.pop().unwrap();
    for (i, entered) in inside.into_iter().enumerate() {
        let left_at = left_at.clone();
        leaving.push(tokio::spawn(async move {
            entered.leave().await.expect("leave");
            left_at.lock().unwrap().push((i, Instant::now()));
        }));
    }
    wait_children(&observer, ROUND, "the others left their nodes", |c| {
        c.iter().filter(|n| *n != "ready").count() == 1
    })
    .await;
    assert!(left_at.lock().unwrap().is_empty(), "left before the last");
    let last_leaves = Instant::now();
    ok("last leaves", last.leave().await);
    for l in leaving {
        within("leave", l).await.expect("task");
    }
    let left_at = left_at.lock().unwrap().clone();
    assert_eq!(left_at.len(), N - 1);
    assert!(left_at.iter().all(|(_, t)| *t >= last_leaves));
    let left = children(&observer, ROUND).await;
    assert!(left.is_empty(), "nodes left behind: {left:?}");
}

/// Curator's GH-1290 (fixed after 5.9): a timed enter woken by a connection event must not
/// pass; and Curator's CURATOR-318: a timed-out enter must not be counted afterwards.
#[tokio::test]
async fn a_timed_enter_is_not_bypassed_by_connection_events_and_cleans_up() {
    let ctx = ctx_or_skip!();
    let proxy = Proxy::start(ctx.server.addr()).await;
    let observer = ctx.client().await;
    let barrier = DoubleBarrier::new(ctx.client_via(&proxy).await, ROUND, 2);
    let mut enter = Box::pin(barrier.enter_timeout(Duration::from_secs(3)));
    assert!(still_pending(&mut enter, Duration::from_millis(200)).await);
    proxy.cut();
    assert!(still_pending(&mut enter, Duration::from_millis(200)).await);
    proxy.heal();
    let entered = ok("timed enter", within("timed enter", enter).await);
    assert!(entered.is_none(), "entered alone");
    // Its node is gone: a late second participant is not let in by it.
    let late = DoubleBarrier::new(ctx.client().await, ROUND, 2);
    assert!(ok(
        "late enter",
        late.enter_timeout(Duration::from_millis(300)).await
    )
    .is_none());
    let left = children(&observer, ROUND).await;
    assert!(left.is_empty(), "nodes left behind: {left:?}");
}

#[tokio::test]
async fn a_ready_node_left_by_an_earlier_round_lets_nobody_through() {
    let ctx = ctx_or_skip!();
    let admin = ctx.client().await;
    let barrier = DoubleBarrier::new(ctx.client().await, ROUND, 2);
    // A round that crashed before its last leave: its ready node stays behind.
    ok(
        "parent",
        admin
            .create("/barriers", b"", &CreateOptions::persistent())
            .await,
    );
    ok(
        "dir",
        admin.create(ROUND, b"", &CreateOptions::persistent()).await,
    );
    ok(
        "stale ready",
        admin
            .create(&format!("{ROUND}/ready"), b"", &CreateOptions::persistent())
            .await,
    );
    assert!(ok(
        "alone with a stale ready node",
        barrier.enter_timeout(Duration::from_millis(300)).await
    )
    .is_none());
    // Two real participants still get in (and replace the stale node).
    let a = tokio::spawn({
        let b = DoubleBarrier::new(ctx.client().await, ROUND, 2);
        async move { b.enter().await }
    });
    let second = ok("second enters", within("enter", barrier.enter()).await);
    let first = ok("first enters", within("enter", a).await.unwrap());
    let (l1, l2) = tokio::join!(first.leave(), second.leave());
    ok("leave", l1);
    ok("leave", l2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participants_still_leaving_an_earlier_round_do_not_count_for_the_next() {
    let ctx = ctx_or_skip!();
    let a = DoubleBarrier::new(ctx.client().await, ROUND, 2);
    let b = DoubleBarrier::new(ctx.client().await, ROUND, 2);
    let (ea, eb) = tokio::join!(a.enter(), b.enter());
    let (ea, eb) = (ok("a enters", ea), ok("b enters", eb));
    // a leaves and waits for b, which is still inside.
    let mut a_leaving = Box::pin(ea.leave());
    assert!(still_pending(&mut a_leaving, Duration::from_millis(200)).await);
    // A newcomer must not make a round with b, who belongs to the finished one.
    let c = DoubleBarrier::new(ctx.client().await, ROUND, 2);
    assert!(
        ok(
            "newcomer",
            c.enter_timeout(Duration::from_millis(500)).await
        )
        .is_none(),
        "entered with a participant of the earlier round"
    );
    ok("b leaves", eb.leave().await);
    ok("a left", within("a leaves", a_leaving).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_whose_session_expires_inside_does_not_hold_the_others_back() {
    let ctx = ctx_or_skip!();
    let proxy = Proxy::start(ctx.server.addr()).await;
    let doomed_client = ctx.client_via(&proxy).await;
    let doomed = DoubleBarrier::new(doomed_client.clone(), ROUND, 3);
    let a = DoubleBarrier::new(ctx.client().await, ROUND, 3);
    let b = DoubleBarrier::new(ctx.client().await, ROUND, 3);
    let (ea, eb, ed) = tokio::join!(a.enter(), b.enter(), doomed.enter());
    let (ea, eb, ed) = (ok("a", ea), ok("b", eb), ok("doomed", ed));
    let status = doomed_client.status();
    proxy.cut();
    ctx.expire(&status).await;
    let (la, lb) = within("the others leave", async {
        tokio::join!(ea.leave(), eb.leave())
    })
    .await;
    ok("a leaves", la);
    ok("b leaves", lb);
    proxy.heal();
    let ld = within("the expired one leaves", ed.leave()).await;
    assert!(
        matches!(&ld, Err(e) if e.is_terminal()),
        "its session is gone: {ld:?}"
    );
    assert_eq!(
        DoubleBarrier::new(ctx.client().await, ROUND, 0)
            .enter()
            .await
            .err(),
        Some(RecipeError::BadArguments(
            "a double barrier needs at least one member".into()
        ))
    );
}
