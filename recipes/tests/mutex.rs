//! The fair mutex against a real server: exclusion, fairness, no herd, cancellation,
//! protected creates, session loss, reentrancy, fencing tokens.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{children, ok, wait_children, wait_state, within, Proxy};
use corral_client::{ConnectionState, CreateOptions};
use corral_recipes::lock::{LockState, Mutex};
use corral_recipes::RecipeError;

const LOCK: &str = "/locks/m";

fn is_lock_node(name: &str) -> bool {
    name.starts_with("_c_") && name.contains("-lock-")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_clients_and_tasks_never_hold_the_mutex_together_and_lose_no_increment() {
    let ctx = ctx_or_skip!();
    const CLIENTS: usize = 3;
    const TASKS: usize = 8;
    const ROUNDS: usize = 4;
    let holders = Arc::new(AtomicUsize::new(0));
    let max_holders = Arc::new(AtomicUsize::new(0));
    // A counter updated with a read, a yield and a write: lost updates show races.
    let counter = Arc::new(std::sync::Mutex::new(0usize));
    let mut tasks = Vec::new();
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let client = ctx.client().await;
        clients.push(client.clone());
        for _ in 0..TASKS {
            let mutex = Mutex::new(client.clone(), LOCK);
            let (holders, max_holders, counter) =
                (holders.clone(), max_holders.clone(), counter.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..ROUNDS {
                    let guard = mutex.acquire().await.expect("acquire");
                    assert!(guard.is_held());
                    let now = holders.fetch_add(1, Ordering::SeqCst) + 1;
                    max_holders.fetch_max(now, Ordering::SeqCst);
                    let seen = *counter.lock().unwrap();
                    tokio::task::yield_now().await;
                    *counter.lock().unwrap() = seen + 1;
                    holders.fetch_sub(1, Ordering::SeqCst);
                    guard.release().await.expect("release");
                }
            }));
        }
    }
    for t in tasks {
        within("contending tasks", t).await.expect("task");
    }
    assert_eq!(max_holders.load(Ordering::SeqCst), 1, "two holders at once");
    assert_eq!(*counter.lock().unwrap(), CLIENTS * TASKS * ROUNDS);
    let left = children(&clients[0], LOCK).await;
    assert!(left.is_empty(), "lock nodes left behind: {left:?}");
}

#[tokio::test]
async fn waiters_acquire_in_arrival_order_and_each_release_wakes_exactly_one() {
    let ctx = ctx_or_skip!();
    const WAITERS: usize = 5;
    let observer = ctx.client().await;
    let holder = Mutex::new(ctx.client().await, LOCK);
    let first = ok("holder", holder.acquire().await);
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    let mut tasks = Vec::new();
    for i in 0..WAITERS {
        let mutex = Arc::new(Mutex::new(ctx.client().await, LOCK));
        handles.push(mutex.clone());
        let order = order.clone();
        tasks.push(tokio::spawn(async move {
            let guard = mutex.acquire().await.expect("acquire");
            order.lock().unwrap().push(i);
            guard.release().await.expect("release");
        }));
        // Arrival order: the next waiter starts only once this one is queued.
        wait_children(&observer, LOCK, "waiter queued", |c| c.len() == i + 2).await;
    }
    ok("release the holder", first.release().await);
    for t in tasks {
        within("waiters", t).await.expect("waiter");
    }
    assert_eq!(*order.lock().unwrap(), (0..WAITERS).collect::<Vec<_>>());
    let wakeups: Vec<u64> = handles.iter().map(|m| m.wakeups()).collect();
    assert_eq!(
        wakeups,
        vec![1; WAITERS],
        "each waiter is woken exactly once"
    );
}

#[tokio::test]
async fn the_next_waiter_gets_the_lock_when_the_holder_session_expires_and_the_old_guard_says_so() {
    let ctx = ctx_or_skip!();
    let proxy = Proxy::start(ctx.server.addr()).await;
    let a = ctx.client_via(&proxy).await;
    let observer = ctx.client().await;
    let guard_a = ok("a acquires", Mutex::new(a.clone(), LOCK).acquire().await);
    let token_a = guard_a.fencing_token();
    let b = Mutex::new(ctx.client().await, LOCK);
    let waiter = tokio::spawn(async move {
        let guard = b.acquire().await;
        (guard, b)
    });
    wait_children(&observer, LOCK, "b queued", |c| c.len() == 2).await;

    let status = a.status();
    proxy.cut();
    let state = wait_state("a suspended", guard_a.state_watcher(), |s| !s.is_held()).await;
    assert_eq!(state, LockState::Suspended);
    assert!(!guard_a.is_held());
    ctx.expire(&status).await;

    let (guard_b, _b) = within("b acquires", waiter).await.expect("task");
    let guard_b = ok("b acquires", guard_b);
    assert!(guard_b.is_held());
    assert!(
        guard_b.fencing_token() > token_a,
        "tokens increase: {} then {}",
        token_a,
        guard_b.fencing_token()
    );
    proxy.heal();
    let state = wait_state("a lost", guard_a.state_watcher(), |s| *s == LockState::Lost).await;
    assert_eq!(state, LockState::Lost);
    assert_eq!(guard_a.not_held().await, LockState::Lost);
    // Releasing a lost guard is harmless: the successor keeps its node.
    ok("release lost guard", guard_a.release().await);
    assert!(guard_b.is_held());
    assert_eq!(children(&observer, LOCK).await.len(), 1);
}

#[tokio::test]
async fn the_next_waiter_gets_the_lock_when_the_holder_client_closes() {
    let ctx = ctx_or_skip!();
    let a = ctx.client().await;
    let guard_a = ok("a acquires", Mutex::new(a.clone(), LOCK).acquire().await);
    let b = Mutex::new(ctx.client().await, LOCK);
    let observer = ctx.client().await;
    let waiter = tokio::spawn(async move { b.acquire().await.map(|g| (g.fencing_token(), g)) });
    wait_children(&observer, LOCK, "b queued", |c| c.len() == 2).await;
    ok("close a", a.close().await);
    let (token_b, guard_b) = ok("b acquires", within("b acquires", waiter).await.unwrap());
    assert!(token_b > guard_a.fencing_token());
    assert!(guard_b.is_held());
    let state = wait_state("a lost", guard_a.state_watcher(), |s| *s == LockState::Lost).await;
    assert_eq!(state, LockState::Lost);
}

#[tokio::test]
async fn a_short_disconnect_suspends_the_guard_and_the_same_session_holds_it_again() {
    let ctx = ctx_or_skip!();
    let proxy = Proxy::start(ctx.server.addr()).await;
    let a = ctx.client_via(&proxy).await;
    let guard = ok("acquire", Mutex::new(a.clone(), LOCK).acquire().await);
    let mut states = guard.state_watcher();
    proxy.cut();
    let s = wait_state("suspended", states.clone(), |s| !s.is_held()).await;
    assert_eq!(s, LockState::Suspended);
    proxy.heal();
    within(
        "reconnected",
        a.state_watcher().wait_for(common::WAIT, |s| {
            s.connection_state == ConnectionState::Reconnected
        }),
    )
    .await
    .expect("reconnect");
    let s = within("held again", states.wait_for(|s| s.is_held()))
        .await
        .map(|s| *s)
        .expect("state");
    assert_eq!(s, LockState::Held);
    assert!(guard.is_held());
    let path = guard.path().to_owned();
    ok("release", guard.release().await);
    assert_eq!(ok("exists", a.exists(&path).await), None);
}

#[tokio::test]
async fn a_cancelled_acquire_leaves_no_node() {
    let ctx = ctx_or_skip!();
    let observer = ctx.client().await;
    let holder = ok(
        "holder",
        Mutex::new(ctx.client().await, LOCK).acquire().await,
    );
    let client = ctx.client().await;
    let waiter = {
        let client = client.clone();
        tokio::spawn(async move { Mutex::new(client, LOCK).acquire().await.map(drop) })
    };
    let queued = wait_children(&observer, LOCK, "waiter queued", |c| c.len() == 2).await;
    waiter.abort();
    assert!(within("abort", waiter).await.unwrap_err().is_cancelled());
    let holder_name = holder.path().rsplit('/').next().unwrap().to_owned();
    let left = wait_children(&observer, LOCK, "waiter's node deleted", |c| c.len() == 1).await;
    assert_eq!(left, vec![holder_name]);
    assert_eq!(queued.len(), 2);

    // Cancelled with its create in flight: dropped right after the request was sent.
    let late = Mutex::new(client.clone(), LOCK);
    let mut attempt = Box::pin(late.acquire());
    assert!(
        futures_poll_once(&mut attempt).await.is_none(),
        "cannot hold: it is taken"
    );
    drop(attempt);
    ok("release holder", holder.release().await);
    let left = wait_children(&observer, LOCK, "every node deleted", |c| c.is_empty()).await;
    assert!(left.is_empty());
}

/// Polls a future once; `None` if it is pending.
async fn futures_poll_once<F: std::future::Future + Unpin>(fut: &mut F) -> Option<F::Output> {
    std::future::poll_fn(|cx| match std::pin::Pin::new(&mut *fut).poll(cx) {
        std::task::Poll::Ready(v) => std::task::Poll::Ready(Some(v)),
        std::task::Poll::Pending => std::task::Poll::Ready(None),
    })
    .await
}

#[tokio::test]
async fn a_timed_out_acquire_deletes_its_node_before_returning() {
    let ctx = ctx_or_skip!();
    let client = ctx.client().await;
    let holder = ok("holder", Mutex::new(client.clone(), LOCK).acquire().await);
    let other = Mutex::new(ctx.client().await, LOCK);
    let got = ok(
        "acquire with timeout",
        other.acquire_timeout(Duration::from_millis(300)).await,
    );
    assert!(got.is_none(), "the lock is held by another");
    let left = children(&client, LOCK).await;
    assert_eq!(left.len(), 1, "only the holder's node: {left:?}");
    assert_eq!(other.participants().await.unwrap().len(), 1);
    drop(holder);
    let guard = ok(
        "acquire after release",
        other.acquire_timeout(common::WAIT).await,
    );
    assert!(guard.expect("acquired").is_held());
}

#[tokio::test]
async fn a_connection_loss_during_the_create_does_not_leave_a_second_node() {
    let ctx = ctx_or_skip!();
    let proxy = Proxy::start(ctx.server.addr()).await;
    let client = ctx.client_via(&proxy).await;
    let observer = ctx.client().await;
    // Parents first, so that the trapped create is the lock node's and succeeds.
    for dir in ["/locks", LOCK] {
        ok(
            "parent",
            observer
                .create(dir, b"", &CreateOptions::persistent())
                .await,
        );
    }
    proxy.cut_after_create("-lock-");
    let mutex = Mutex::new(client.clone(), LOCK);
    let guard = ok("acquire", within("acquire", mutex.acquire()).await);
    assert_eq!(proxy.trips(), 1, "the create's reply was swallowed");
    assert_eq!(
        proxy.swallowed_error(),
        Some(0),
        "the swallowed create was applied"
    );
    let nodes = children(&observer, LOCK).await;
    assert_eq!(nodes.len(), 1, "exactly one lock node: {nodes:?}");
    assert_eq!(format!("{LOCK}/{}", nodes[0]), guard.path());
    assert!(guard.is_held());
    ok("release", guard.release().await);
    assert!(children(&observer, LOCK).await.is_empty());
}

#[tokio::test]
async fn reentrant_acquires_share_one_node_until_the_last_guard_goes() {
    let ctx = ctx_or_skip!();
    let client = ctx.client().await;
    let mutex = Mutex::new(client.clone(), LOCK);
    let one = ok("first", mutex.acquire().await);
    let two = ok("again", within("reentrant", mutex.acquire()).await);
    assert_eq!(one.path(), two.path());
    assert_eq!(one.fencing_token(), two.fencing_token());
    assert_eq!(two.hold_count(), 2);
    assert_eq!(children(&client, LOCK).await.len(), 1);
    let path = one.path().to_owned();
    ok("release one", one.release().await);
    assert!(ok("exists", client.exists(&path).await).is_some());
    assert!(two.is_held());
    assert_eq!(two.hold_count(), 1);
    ok("release two", two.release().await);
    assert_eq!(ok("exists", client.exists(&path).await), None);
}

#[tokio::test]
async fn fencing_tokens_strictly_increase_across_acquisitions() {
    let ctx = ctx_or_skip!();
    let a = Mutex::new(ctx.client().await, LOCK);
    let b = Mutex::new(ctx.client().await, LOCK);
    let mut last = None;
    for round in 0..6 {
        let mutex = if round % 2 == 0 { &a } else { &b };
        let guard = ok("acquire", mutex.acquire().await);
        let token = guard.fencing_token();
        if let Some(prev) = last {
            assert!(token > prev, "round {round}: {token} after {prev}");
        }
        last = Some(token);
        ok("release", guard.release().await);
    }
}

#[tokio::test]
async fn foreign_children_do_not_block_the_lock() {
    let ctx = ctx_or_skip!();
    let client = ctx.client().await;
    ok(
        "parent",
        client
            .create("/locks", b"", &CreateOptions::persistent())
            .await,
    );
    ok(
        "dir",
        client.create(LOCK, b"", &CreateOptions::persistent()).await,
    );
    for foreign in ["aaa", "lock-notanumber", "0000000000"] {
        ok(
            "foreign child",
            client
                .create(
                    &format!("{LOCK}/{foreign}"),
                    b"",
                    &CreateOptions::persistent(),
                )
                .await,
        );
    }
    let mutex = Mutex::new(client.clone(), LOCK);
    let guard = ok(
        "acquire",
        within("acquire beside foreign children", mutex.acquire()).await,
    );
    assert!(guard.is_held());
    let participants = ok("participants", mutex.participants().await);
    assert_eq!(participants.len(), 1);
    assert!(is_lock_node(&participants[0]));
}

#[tokio::test]
async fn acquiring_again_through_a_handle_whose_hold_is_suspended_is_refused() {
    let ctx = ctx_or_skip!();
    let proxy = Proxy::start(ctx.server.addr()).await;
    let client = ctx.client_via(&proxy).await;
    let mutex = Mutex::new(client.clone(), LOCK);
    let guard = ok("acquire", mutex.acquire().await);
    proxy.cut();
    wait_state("suspended", guard.state_watcher(), |s| !s.is_held()).await;
    let again = mutex.acquire().await;
    assert!(
        matches!(again, Err(RecipeError::HoldNotValid(LockState::Suspended))),
        "{again:?}"
    );
    proxy.heal();
}
