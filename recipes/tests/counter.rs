//! The counters against a real server: concurrent updates from many clients add up,
//! compare-and-set, versioned updates, change notifications, and Curator's encodings.

mod common;

use std::collections::BTreeSet;

use common::{ok, within};
use corral_client::CreateOptions;
use corral_recipes::counter::{AtomicValue, DistributedAtomicLong, SharedCount, VersionedValue};
use corral_recipes::RecipeError;

const LONG: &str = "/counters/long";
const COUNT: &str = "/counters/count";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_from_many_clients_sum_exactly() {
    let ctx = ctx_or_skip!();
    const CLIENTS: usize = 4;
    const TASKS: usize = 3;
    const ROUNDS: usize = 10;
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let client = ctx.client().await;
        for _ in 0..TASKS {
            let counter = DistributedAtomicLong::new(client.clone(), LONG);
            tasks.push(tokio::spawn(async move {
                let mut posts = Vec::new();
                for _ in 0..ROUNDS {
                    let v = counter.increment().await.expect("increment");
                    assert!(v.succeeded(), "lost the race for too long: {v:?}");
                    assert_eq!(v.post_value(), v.pre_value() + 1);
                    posts.push(v.post_value());
                }
                posts
            }));
        }
    }
    let mut posts = BTreeSet::new();
    for t in tasks {
        for p in within("incrementing", t).await.expect("task") {
            assert!(posts.insert(p), "two increments saw the same result {p}");
        }
    }
    let total = (CLIENTS * TASKS * ROUNDS) as i64;
    assert_eq!(posts, (1..=total).collect::<BTreeSet<_>>());
    let counter = DistributedAtomicLong::new(ctx.client().await, LONG);
    assert_eq!(ok("get", counter.get().await), total);
}

#[tokio::test]
async fn the_atomic_long_compares_and_sets_and_uses_curators_encoding() {
    let ctx = ctx_or_skip!();
    let client = ctx.client().await;
    let counter = DistributedAtomicLong::new(client.clone(), LONG);
    assert_eq!(ok("get before use", counter.get().await), 0);
    assert!(ok("initialize", counter.initialize(40).await));
    assert!(!ok("initialize again", counter.initialize(7).await));
    assert_eq!(
        ok("add", counter.add(2).await),
        AtomicValue::new(true, 40, 42)
    );
    let (data, _) = ok("raw", client.get_data(LONG).await);
    assert_eq!(data, 42i64.to_be_bytes());
    assert_eq!(
        ok("cas mismatch", counter.compare_and_set(41, 0).await),
        AtomicValue::new(false, 42, 42)
    );
    assert_eq!(
        ok("cas", counter.compare_and_set(42, -1).await),
        AtomicValue::new(true, 42, -1)
    );
    assert_eq!(ok("decrement", counter.decrement().await).post_value(), -2);
    assert_eq!(ok("subtract", counter.subtract(3).await).post_value(), -5);
    assert_eq!(
        ok("try_set", counter.try_set(100).await),
        AtomicValue::new(true, -5, 100)
    );
    ok("force_set", counter.force_set(i64::MAX).await);
    assert_eq!(
        ok("wrapping add", counter.increment().await).post_value(),
        i64::MIN
    );
    // A node that is not a long is an error, not a guess.
    ok("garbage", client.set_data(LONG, b"abc", None).await);
    assert!(matches!(
        counter.increment().await,
        Err(RecipeError::InvalidData(_))
    ));
}

#[tokio::test]
async fn updates_without_retries_that_lose_the_race_report_it_and_change_nothing() {
    let ctx = ctx_or_skip!();
    let client = ctx.client().await;
    let counter = DistributedAtomicLong::new(client.clone(), LONG)
        .with_retry_policy(corral_client::RetryPolicy::none());
    ok("init", counter.initialize(1).await);
    // Another client increments at the same time: some of our single attempts may lose.
    let other = DistributedAtomicLong::new(ctx.client().await, LONG);
    let done = tokio::spawn(async move {
        for _ in 0..20 {
            other.increment().await.expect("other");
        }
    });
    let mut failures = 0;
    for _ in 0..20 {
        let v = ok("increment", counter.increment().await);
        if !v.succeeded() {
            failures += 1;
            assert_eq!(v.pre_value(), v.post_value());
        }
    }
    within("other", done).await.unwrap();
    let value = ok("get", counter.get().await);
    assert_eq!(value, 1 + 20 + (20 - failures));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_counts_notify_changes_and_refuse_stale_versions() {
    let ctx = ctx_or_skip!();
    let a = ok("a", SharedCount::start(ctx.client().await, COUNT, 7).await);
    let b = ok("b", SharedCount::start(ctx.client().await, COUNT, 99).await);
    assert_eq!(a.count(), 7);
    assert_eq!(b.count(), 7, "the seed only applies to a new node");
    let client = ctx.client().await;
    let (data, _) = ok("raw", client.get_data(COUNT).await);
    assert_eq!(data, 7i32.to_be_bytes());

    let mut changes = b.watcher();
    ok("set", a.set_count(8).await);
    within("b sees 8", changes.wait_for(|v| v.value() == 8))
        .await
        .expect("watch");
    let seen = b.versioned_value();
    assert_eq!(seen.value(), 8);
    let stale = VersionedValue::new(seen.version() - 1, 8);
    assert!(!ok("stale", b.try_set_count(stale, 100).await));
    assert!(ok("fresh", b.try_set_count(seen, 9).await));
    assert_eq!(b.count(), 9);
    within("a sees 9", a.watcher().wait_for(|v| v.value() == 9))
        .await
        .expect("watch");
    // A write from outside the recipe is seen too.
    ok(
        "raw write",
        client.set_data(COUNT, &42i32.to_be_bytes(), None).await,
    );
    within("a sees 42", a.watcher().wait_for(|v| v.value() == 42))
        .await
        .expect("watch");
    // A malformed node is refused at start.
    ok(
        "bad node",
        client
            .create("/counters/bad", b"xy", &CreateOptions::persistent())
            .await,
    );
    assert!(matches!(
        SharedCount::start(ctx.client().await, "/counters/bad", 0).await,
        Err(RecipeError::InvalidData(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optimistic_shared_count_updates_from_many_clients_sum_exactly() {
    let ctx = ctx_or_skip!();
    const CLIENTS: usize = 4;
    const ROUNDS: i32 = 10;
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let count = ok(
            "start",
            SharedCount::start(ctx.client().await, COUNT, 0).await,
        );
        tasks.push(tokio::spawn(async move {
            for _ in 0..ROUNDS {
                loop {
                    let seen = count.versioned_value();
                    if count
                        .try_set_count(seen, seen.value() + 1)
                        .await
                        .expect("try_set")
                    {
                        break;
                    }
                    // Lost the race: the handle now holds the newer value; try again.
                }
            }
        }));
    }
    for t in tasks {
        within("updating", t).await.expect("task");
    }
    let count = ok(
        "start",
        SharedCount::start(ctx.client().await, COUNT, 0).await,
    );
    assert_eq!(count.count(), CLIENTS as i32 * ROUNDS);
}
