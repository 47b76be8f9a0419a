//! The read/write lock against a real server: shared readers, exclusive writers, no
//! writer starvation, downgrade, no upgrade.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{children, ok, wait_children, within};
use corral_recipes::lock::RwLock;
use corral_recipes::RecipeError;
use tokio::sync::Barrier;

const LOCK: &str = "/locks/rw";

#[tokio::test]
async fn readers_hold_together_and_a_writer_waits_for_them() {
    let ctx = ctx_or_skip!();
    const READERS: usize = 4;
    let barrier = Arc::new(Barrier::new(READERS + 1));
    let (release_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut tasks = Vec::new();
    for _ in 0..READERS {
        let lock = RwLock::new(ctx.client().await, LOCK);
        let barrier = barrier.clone();
        let mut release = release_tx.subscribe();
        tasks.push(tokio::spawn(async move {
            let guard = lock.read().await.expect("read");
            // Everyone reaches the barrier only if all readers hold at once.
            barrier.wait().await;
            let _ = release.recv().await;
            assert!(guard.is_held());
            guard.release().await.expect("release");
        }));
    }
    within("all readers hold at once", barrier.wait()).await;
    let writer = RwLock::new(ctx.client().await, LOCK);
    let blocked = ok(
        "write with timeout",
        writer.write_timeout(Duration::from_millis(300)).await,
    );
    assert!(blocked.is_none(), "a writer got in beside readers");
    release_tx.send(()).unwrap();
    for t in tasks {
        within("readers", t).await.expect("reader");
    }
    let w = ok("write", within("writer", writer.write()).await);
    assert!(w.is_held());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_exclude_everyone_under_contention() {
    let ctx = ctx_or_skip!();
    const CLIENTS: usize = 2;
    const TASKS: usize = 4;
    const ROUNDS: usize = 4;
    let readers = Arc::new(AtomicUsize::new(0));
    let writers = Arc::new(AtomicUsize::new(0));
    let violations = Arc::new(AtomicUsize::new(0));
    let max_readers = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let client = ctx.client().await;
        for t in 0..TASKS {
            let lock = RwLock::new(client.clone(), LOCK);
            let (readers, writers, violations, max_readers) = (
                readers.clone(),
                writers.clone(),
                violations.clone(),
                max_readers.clone(),
            );
            tasks.push(tokio::spawn(async move {
                for round in 0..ROUNDS {
                    if (c + t + round) % 3 == 0 {
                        let guard = lock.write().await.expect("write");
                        let w = writers.fetch_add(1, Ordering::SeqCst) + 1;
                        if w != 1 || readers.load(Ordering::SeqCst) != 0 {
                            violations.fetch_add(1, Ordering::SeqCst);
                        }
                        tokio::task::yield_now().await;
                        writers.fetch_sub(1, Ordering::SeqCst);
                        guard.release().await.expect("release");
                    } else {
                        let guard = lock.read().await.expect("read");
                        let r = readers.fetch_add(1, Ordering::SeqCst) + 1;
                        max_readers.fetch_max(r, Ordering::SeqCst);
                        if writers.load(Ordering::SeqCst) != 0 {
                            violations.fetch_add(1, Ordering::SeqCst);
                        }
                        tokio::task::yield_now().await;
                        readers.fetch_sub(1, Ordering::SeqCst);
                        guard.release().await.expect("release");
                    }
                }
            }));
        }
    }
    for t in tasks {
        within("contending tasks", t).await.expect("task");
    }
    assert_eq!(violations.load(Ordering::SeqCst), 0, "exclusion violated");
    let client = ctx.client().await;
    assert!(
        children(&client, LOCK).await.is_empty(),
        "nodes left behind"
    );
}

#[tokio::test]
async fn a_waiting_writer_is_not_starved_by_readers_that_come_after_it() {
    let ctx = ctx_or_skip!();
    let observer = ctx.client().await;
    let first = RwLock::new(ctx.client().await, LOCK);
    let first_read = ok("first reader", first.read().await);
    let writer_acquired = Arc::new(AtomicUsize::new(0));
    let late_acquired = Arc::new(AtomicUsize::new(0));
    let late_before_writer = Arc::new(AtomicUsize::new(0));

    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let writer = {
        let lock = RwLock::new(ctx.client().await, LOCK);
        let (writer_acquired, late_acquired) = (writer_acquired.clone(), late_acquired.clone());
        tokio::spawn(async move {
            let guard = lock.write().await.expect("write");
            writer_acquired.store(1, Ordering::SeqCst);
            let late = late_acquired.load(Ordering::SeqCst);
            done_rx.await.ok();
            guard.release().await.expect("release");
            late
        })
    };
    wait_children(&observer, LOCK, "writer queued", |c| c.len() == 2).await;

    // A stream of readers arriving after the writer.
    const LATE: usize = 4;
    let mut late = Vec::new();
    for i in 0..LATE {
        let lock = RwLock::new(ctx.client().await, LOCK);
        let (late_acquired, writer_acquired, late_before_writer) = (
            late_acquired.clone(),
            writer_acquired.clone(),
            late_before_writer.clone(),
        );
        late.push(tokio::spawn(async move {
            let guard = lock.read().await.expect("read");
            if writer_acquired.load(Ordering::SeqCst) == 0 {
                late_before_writer.fetch_add(1, Ordering::SeqCst);
            }
            late_acquired.fetch_add(1, Ordering::SeqCst);
            guard
        }));
        wait_children(&observer, LOCK, "late reader queued", |c| c.len() == i + 3).await;
    }
    // The late readers wait although only a reader holds the lock.
    assert_eq!(late_acquired.load(Ordering::SeqCst), 0);
    ok("first reader leaves", first_read.release().await);
    done_tx.send(()).unwrap();
    let late_seen_by_writer = within("writer", writer).await.expect("writer");
    assert_eq!(
        late_seen_by_writer, 0,
        "late readers got in before the writer"
    );
    let mut guards = Vec::new();
    for t in late {
        guards.push(within("late readers", t).await.expect("reader"));
    }
    assert_eq!(late_before_writer.load(Ordering::SeqCst), 0);
    assert!(
        guards.iter().all(|g| g.is_held()),
        "late readers share the lock"
    );
}

#[tokio::test]
async fn a_writer_can_downgrade_and_no_writer_gets_in_between() {
    let ctx = ctx_or_skip!();
    let lock = RwLock::new(ctx.client().await, LOCK);
    let write = ok("write", lock.write().await);
    let read = ok("downgrade", within("downgrade", write.downgrade()).await);
    assert!(read.is_held());
    let observer = ctx.client().await;
    // The write node goes; the read node stays.
    let left = wait_children(&observer, LOCK, "write node released", |c| c.len() == 1).await;
    assert!(left[0].contains("__READ__"), "{left:?}");
    // Other readers share with us; writers wait.
    let other = RwLock::new(ctx.client().await, LOCK);
    let other_read = ok("other reader", other.read_timeout(common::WAIT).await);
    assert!(other_read.expect("shared read").is_held());
    let writer = RwLock::new(ctx.client().await, LOCK);
    assert!(ok(
        "writer",
        writer.write_timeout(Duration::from_millis(300)).await
    )
    .is_none());
}

#[tokio::test]
async fn a_downgrade_is_refused_when_a_writer_queued_behind_us() {
    let ctx = ctx_or_skip!();
    let observer = ctx.client().await;
    let lock = RwLock::new(ctx.client().await, LOCK);
    let write = ok("write", lock.write().await);
    let other = RwLock::new(ctx.client().await, LOCK);
    let waiting = tokio::spawn(async move { other.write().await.map(|g| g.fencing_token()) });
    wait_children(&observer, LOCK, "second writer queued", |c| c.len() == 2).await;
    let refused = within("downgrade", write.downgrade()).await;
    let err = refused.expect_err("a writer is queued in between");
    assert_eq!(*err.error(), RecipeError::DowngradeBlocked);
    let write = err.into_guard();
    assert!(write.is_held(), "the write lock is kept");
    // Our refused read node is gone; the queue is our writer and the other writer.
    let nodes = children(&observer, LOCK).await;
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    assert!(nodes.iter().all(|n| n.contains("__WRIT__")), "{nodes:?}");
    let token = write.fencing_token();
    ok("release", write.release().await);
    let next = ok(
        "other writer",
        within("other writer", waiting).await.unwrap(),
    );
    assert!(next > token);
}

#[tokio::test]
async fn a_reader_cannot_upgrade_but_reentrant_reads_share_one_node() {
    let ctx = ctx_or_skip!();
    let client = ctx.client().await;
    let lock = RwLock::new(client.clone(), LOCK);
    let one = ok("read", lock.read().await);
    let two = ok("read again", lock.read().await);
    assert_eq!(one.path(), two.path());
    assert_eq!(two.hold_count(), 2);
    assert_eq!(
        lock.write().await.map(drop),
        Err(RecipeError::UpgradeNotSupported)
    );
    assert_eq!(children(&client, LOCK).await.len(), 1, "no write node left");
    drop((one, two));
    let w = ok("write after reads", within("write", lock.write()).await);
    assert!(w.is_held());
}
