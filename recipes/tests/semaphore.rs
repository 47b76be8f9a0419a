//! The semaphore against a real server: never more than N leases, blocking at N, the
//! layout, loss reporting.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{children, ok, wait_state, within};
use corral_recipes::lock::{LockState, Semaphore};
use corral_recipes::RecipeError;

const SEM: &str = "/semaphores/s";
const LEASES: &str = "/semaphores/s/leases";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_more_than_n_leases_are_held() {
    let ctx = ctx_or_skip!();
    const N: u32 = 3;
    const CLIENTS: usize = 2;
    const TASKS: usize = 5;
    const ROUNDS: usize = 3;
    let holders = Arc::new(AtomicUsize::new(0));
    let max_holders = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let client = ctx.client().await;
        for _ in 0..TASKS {
            let sem = Semaphore::new(client.clone(), SEM, N);
            let (holders, max_holders) = (holders.clone(), max_holders.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..ROUNDS {
                    let lease = sem.acquire().await.expect("acquire");
                    let now = holders.fetch_add(1, Ordering::SeqCst) + 1;
                    max_holders.fetch_max(now, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                    holders.fetch_sub(1, Ordering::SeqCst);
                    lease.release().await.expect("release");
                }
            }));
        }
    }
    for t in tasks {
        within("contending tasks", t).await.expect("task");
    }
    let max = max_holders.load(Ordering::SeqCst);
    assert!(max <= N as usize, "{max} leases at once, max {N}");
    let client = ctx.client().await;
    assert!(children(&client, LEASES).await.is_empty(), "leases left");
}

#[tokio::test]
async fn the_n_plus_first_taker_waits_until_a_lease_is_returned() {
    let ctx = ctx_or_skip!();
    let client = ctx.client().await;
    let sem = Semaphore::new(client.clone(), SEM, 2);
    let a = ok("lease a", sem.acquire().await);
    let b = ok("lease b", sem.acquire().await);
    assert_ne!(a.path(), b.path());
    assert!(a.path().starts_with(&format!("{LEASES}/_c_")));
    assert!(a.path().contains("-lease-"));
    let other = Semaphore::new(ctx.client().await, SEM, 2);
    let none = ok(
        "third lease",
        other.acquire_timeout(Duration::from_millis(300)).await,
    );
    assert!(none.is_none(), "a third lease was granted");
    // The timed-out taker left neither a lease node nor a mutex node.
    assert_eq!(children(&client, LEASES).await.len(), 2);
    assert!(children(&client, &format!("{SEM}/locks")).await.is_empty());
    let waiting = tokio::spawn(async move { other.acquire().await });
    ok("return a", a.release().await);
    let c = ok("third lease", within("third lease", waiting).await.unwrap());
    assert!(c.fencing_token() > b.fencing_token());
    assert!(b.is_held() && c.is_held());
    assert_eq!(ok("participants", sem.participants().await).len(), 2);
}

#[tokio::test]
async fn a_lease_reports_loss_when_its_client_closes() {
    let ctx = ctx_or_skip!();
    let client = ctx.client().await;
    let lease = ok(
        "lease",
        Semaphore::new(client.clone(), SEM, 1).acquire().await,
    );
    assert!(lease.is_held());
    ok("close", client.close().await);
    let s = wait_state("lost", lease.state_watcher(), |s| *s == LockState::Lost).await;
    assert_eq!(s, LockState::Lost);
    let other = Semaphore::new(ctx.client().await, SEM, 1);
    let again = ok(
        "lease after close",
        other.acquire_timeout(common::WAIT).await,
    );
    assert!(again.is_some());
}

#[tokio::test]
async fn a_semaphore_without_leases_is_refused() {
    let ctx = ctx_or_skip!();
    let sem = Semaphore::new(ctx.client().await, SEM, 0);
    assert!(matches!(
        sem.acquire().await,
        Err(RecipeError::BadArguments(_))
    ));
}
