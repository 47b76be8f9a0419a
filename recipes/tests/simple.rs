//! The simple (unfair, herd-prone) lock against a real server.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{ok, wait_state, within};
use corral_recipes::lock::{LockState, SimpleLock};

const LOCK: &str = "/locks/simple";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simple_lock_excludes_under_contention() {
    let ctx = ctx_or_skip!();
    let holders = Arc::new(AtomicUsize::new(0));
    let max_holders = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let client = ctx.client().await;
        for _ in 0..4 {
            let lock = SimpleLock::new(client.clone(), LOCK);
            let (holders, max_holders) = (holders.clone(), max_holders.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..3 {
                    let guard = lock.acquire().await.expect("acquire");
                    let now = holders.fetch_add(1, Ordering::SeqCst) + 1;
                    max_holders.fetch_max(now, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                    holders.fetch_sub(1, Ordering::SeqCst);
                    guard.release().await.expect("release");
                }
            }));
        }
    }
    for t in tasks {
        within("contending tasks", t).await.expect("task");
    }
    assert_eq!(max_holders.load(Ordering::SeqCst), 1);
    let client = ctx.client().await;
    assert_eq!(ok("exists", client.exists(LOCK).await), None);
}

#[tokio::test]
async fn releasing_a_lost_guard_does_not_delete_the_successors_node() {
    let ctx = ctx_or_skip!();
    let admin = ctx.client().await;
    let a = SimpleLock::new(ctx.client().await, LOCK);
    let guard_a = ok("a", a.acquire().await);
    // An operator deletes the lock node: a loses the lock and knows it.
    ok("delete", admin.delete(LOCK, None).await);
    let s = wait_state("a lost", guard_a.state_watcher(), |s| *s == LockState::Lost).await;
    assert_eq!(s, LockState::Lost);
    let b = SimpleLock::new(ctx.client().await, LOCK);
    let guard_b = ok("b", within("b", b.acquire()).await);
    assert!(guard_b.fencing_token() > guard_a.fencing_token());
    ok("release a", guard_a.release().await);
    let stat = ok("exists", admin.exists(LOCK).await).expect("b's node survives");
    assert_eq!(stat.czxid, guard_b.fencing_token().0);
    assert!(guard_b.is_held());
}

#[tokio::test]
async fn a_timed_out_simple_acquire_leaves_the_holders_node_alone() {
    let ctx = ctx_or_skip!();
    let admin = ctx.client().await;
    let holder = ok(
        "holder",
        SimpleLock::new(ctx.client().await, LOCK).acquire().await,
    );
    let other = SimpleLock::new(ctx.client().await, LOCK);
    let none = ok(
        "timeout",
        other.acquire_timeout(Duration::from_millis(300)).await,
    );
    assert!(none.is_none());
    let stat = ok("exists", admin.exists(LOCK).await).expect("holder's node");
    assert_eq!(stat.czxid, holder.fencing_token().0);
    drop(holder);
    let next = ok("after release", other.acquire_timeout(common::WAIT).await);
    assert!(next.expect("acquired").is_held());
}
