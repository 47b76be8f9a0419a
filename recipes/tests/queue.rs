//! The distributed queues against a real server: exactly-once delivery with competing
//! consumers, per-producer FIFO, lock safety across a consumer crash, requeue on failure,
//! bounds, priorities, multi-item nodes and both node formats.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{children, ok, wait_children, within, Proxy};
use corral_recipes::queue::{DistributedPriorityQueue, DistributedQueue, QueueFormat};
use corral_recipes::RecipeError;
use tokio::sync::mpsc;

const QUEUE: &str = "/queues/q";
const LOCKS: &str = "/queues/q-locks";

fn item(producer: usize, n: usize) -> Vec<u8> {
    format!("p{producer}-{n:04}").into_bytes()
}

fn parse(item: &[u8]) -> (usize, usize) {
    let text = std::str::from_utf8(item).expect("utf-8");
    let (p, n) = text[1..].split_once('-').expect("p<k>-<n>");
    (p.parse().unwrap(), n.parse().unwrap())
}

/// K producers and L consumers; every item delivered exactly once, and each consumer sees
/// each producer's items in the order they were put.
async fn producers_and_consumers(lock_safe: bool) {
    let ctx = ctx_or_skip!();
    const PRODUCERS: usize = 3;
    const CONSUMERS: usize = 3;
    const ITEMS: usize = 25;
    const TOTAL: usize = PRODUCERS * ITEMS;
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, Vec<u8>)>();
    let taken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut consumers = Vec::new();
    for c in 0..CONSUMERS {
        let mut queue = DistributedQueue::new(ctx.client().await, QUEUE);
        if lock_safe {
            queue = queue.with_lock_safety(LOCKS);
        }
        let (tx, taken) = (tx.clone(), taken.clone());
        consumers.push(tokio::spawn(async move {
            while taken.load(std::sync::atomic::Ordering::SeqCst) < TOTAL {
                let got = if lock_safe {
                    let tx = tx.clone();
                    queue
                        .take_with_timeout(
                            |item| {
                                let tx = tx.clone();
                                async move {
                                    tx.send((c, item)).map_err(|_| "closed")?;
                                    Ok::<(), &str>(())
                                }
                            },
                            Duration::from_millis(200),
                        )
                        .await
                        .expect("take_with")
                        .map(|r| r.expect("handler"))
                        .is_some()
                } else {
                    match queue
                        .take_timeout(Duration::from_millis(200))
                        .await
                        .expect("take")
                    {
                        Some(item) => {
                            tx.send((c, item)).expect("send");
                            true
                        }
                        None => false,
                    }
                };
                if got {
                    taken.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
        }));
    }
    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        let queue = DistributedQueue::new(ctx.client().await, QUEUE);
        producers.push(tokio::spawn(async move {
            for n in 0..ITEMS {
                queue.put(&item(p, n)).await.expect("put");
            }
        }));
    }
    for p in producers {
        within("producer", p).await.expect("task");
    }
    let mut seen: BTreeSet<(usize, usize)> = BTreeSet::new();
    let mut per_consumer: BTreeMap<(usize, usize), Vec<usize>> = BTreeMap::new();
    for _ in 0..TOTAL {
        let (c, got) = within("an item", rx.recv()).await.expect("item");
        let (p, n) = parse(&got);
        assert!(seen.insert((p, n)), "item p{p}-{n} delivered twice");
        per_consumer.entry((c, p)).or_default().push(n);
    }
    for c in consumers {
        within("consumer", c).await.expect("task");
    }
    assert_eq!(seen.len(), TOTAL, "every item delivered");
    assert!(rx.try_recv().is_err(), "no extra deliveries");
    for ((c, p), ns) in &per_consumer {
        assert!(
            ns.windows(2).all(|w| w[0] < w[1]),
            "consumer {c} got producer {p}'s items out of order: {ns:?}"
        );
    }
    let observer = ctx.client().await;
    assert!(children(&observer, QUEUE).await.is_empty());
    if lock_safe {
        let locks = wait_children(&observer, LOCKS, "locks released", |c| c.is_empty()).await;
        assert!(locks.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn competing_consumers_take_every_item_exactly_once_in_per_producer_order() {
    producers_and_consumers(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_safe_consumers_take_every_item_exactly_once_in_per_producer_order() {
    producers_and_consumers(true).await;
}

#[tokio::test]
async fn one_consumer_gets_items_in_put_order_and_an_empty_take_waits_for_a_put() {
    let ctx = ctx_or_skip!();
    let queue = DistributedQueue::new(ctx.client().await, QUEUE);
    assert_eq!(
        ok(
            "empty",
            queue.take_timeout(Duration::from_millis(100)).await
        ),
        None
    );
    assert_eq!(ok("try_take", queue.try_take().await), None);
    let consumer = DistributedQueue::new(ctx.client().await, QUEUE);
    let waiting = tokio::spawn(async move { consumer.take().await });
    for n in 0..10 {
        ok("put", queue.put(&item(0, n)).await);
    }
    let first = ok("waiting take", within("take", waiting).await.unwrap());
    assert_eq!(first, item(0, 0));
    assert_eq!(ok("len", queue.len().await), 9);
    assert_eq!(ok("peek", queue.peek().await), Some(item(0, 1)));
    assert_eq!(ok("len after peek", queue.len().await), 9);
    for n in 1..10 {
        assert_eq!(ok("take", queue.take().await), item(0, n));
    }
    assert!(ok("empty", queue.is_empty().await));
}

/// A lock-safe consumer dies in the middle of an item (its process stops: no cleanup
/// reaches the server, its session expires): the item is not lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_safe_mode_loses_no_item_when_a_consumer_dies_mid_item() {
    let ctx = ctx_or_skip!();
    let producer = DistributedQueue::new(ctx.client().await, QUEUE);
    ok("put", producer.put(b"precious").await);
    ok("put", producer.put(b"second").await);
    let proxy = Proxy::start(ctx.server.addr()).await;
    let doomed_client = ctx.client_via(&proxy).await;
    let doomed = DistributedQueue::new(doomed_client.clone(), QUEUE).with_lock_safety(LOCKS);
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let crashed = tokio::spawn(async move {
        doomed
            .take_with(|item| {
                let started_tx = started_tx.clone();
                async move {
                    let _ = started_tx.send(item);
                    // Stuck mid-item until the process dies.
                    std::future::pending::<Result<(), ()>>().await
                }
            })
            .await
    });
    assert_eq!(
        within("the doomed consumer starts", started.recv())
            .await
            .unwrap(),
        b"precious"
    );
    let observer = ctx.client().await;
    assert_eq!(children(&observer, LOCKS).await.len(), 1);
    // The process dies: nothing more reaches the server, and its session expires.
    let status = doomed_client.status();
    proxy.cut();
    crashed.abort();
    ctx.expire(&status).await;
    wait_children(&observer, LOCKS, "the dead consumer's lock goes", |c| {
        c.is_empty()
    })
    .await;

    let survivor = DistributedQueue::new(ctx.client().await, QUEUE).with_lock_safety(LOCKS);
    let got = Arc::new(Mutex::new(Vec::new()));
    for _ in 0..2 {
        let got = got.clone();
        let r = survivor
            .take_with(|item| {
                let got = got.clone();
                async move {
                    got.lock().unwrap().push(item);
                    Ok::<(), ()>(())
                }
            })
            .await;
        ok("survivor", r).expect("handler");
    }
    assert_eq!(
        *got.lock().unwrap(),
        [b"precious".to_vec(), b"second".to_vec()]
    );
    assert!(ok("empty", survivor.is_empty().await));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_lock_safe_handler_leaves_its_item_in_the_queue() {
    let ctx = ctx_or_skip!();
    let queue = Arc::new(DistributedQueue::new(ctx.client().await, QUEUE).with_lock_safety(LOCKS));
    ok("put", queue.put(b"x").await);
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let q = queue.clone();
    let task = tokio::spawn(async move {
        q.take_with(|_| {
            let started_tx = started_tx.clone();
            async move {
                let _ = started_tx.send(());
                std::future::pending::<Result<(), ()>>().await
            }
        })
        .await
    });
    within("handler starts", started.recv()).await.unwrap();
    task.abort();
    let observer = ctx.client().await;
    wait_children(&observer, LOCKS, "lock released", |c| c.is_empty()).await;
    assert_eq!(ok("take again", queue.take().await), b"x");
}

#[tokio::test]
async fn a_failing_lock_safe_handler_requeues_its_item_at_the_tail() {
    let ctx = ctx_or_skip!();
    let queue = DistributedQueue::new(ctx.client().await, QUEUE).with_lock_safety(LOCKS);
    ok("put", queue.put(b"x").await);
    ok("put", queue.put(b"y").await);
    let failed = ok(
        "take_with",
        queue
            .take_with(|_| async { Err::<(), &str>("not now") })
            .await,
    );
    assert_eq!(failed, Err("not now"));
    assert_eq!(ok("len", queue.len().await), 2);
    assert_eq!(ok("take", queue.take().await), b"y");
    assert_eq!(ok("take", queue.take().await), b"x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounded_queue_makes_put_wait_while_full() {
    let ctx = ctx_or_skip!();
    let queue = Arc::new(DistributedQueue::new(ctx.client().await, QUEUE).with_max_items(2));
    ok("put", queue.put(b"1").await);
    ok("put", queue.put(b"2").await);
    assert_eq!(
        ok(
            "full",
            queue.put_timeout(b"3", Duration::from_millis(200)).await
        ),
        None
    );
    assert_eq!(ok("len", queue.len().await), 2);
    let q = queue.clone();
    let mut blocked = tokio::spawn(async move { q.put(b"3").await });
    assert!(
        tokio::time::timeout(Duration::from_millis(200), &mut blocked)
            .await
            .is_err(),
        "put while full"
    );
    let consumer = DistributedQueue::new(ctx.client().await, QUEUE);
    assert_eq!(ok("take", consumer.take().await), b"1");
    ok("put went in", within("put", blocked).await.unwrap());
    assert_eq!(ok("len", queue.len().await), 2);
    assert_eq!(ok("take", consumer.take().await), b"2");
    assert_eq!(ok("take", consumer.take().await), b"3");
}

#[tokio::test]
async fn the_priority_queue_takes_lower_numbers_first_and_fifo_within_a_priority() {
    let ctx = ctx_or_skip!();
    let queue = DistributedPriorityQueue::new(ctx.client().await, QUEUE);
    for (data, priority) in [("c1", 5), ("a1", -3), ("b1", 0), ("c2", 5), ("a2", -3)] {
        ok("put", queue.put(data.as_bytes(), priority).await);
    }
    let observer = ctx.client().await;
    let names = children(&observer, QUEUE).await;
    assert!(
        names.contains(&"queue-0FFFFFFFD0000000001".to_string()),
        "Curator's priority names: {names:?}"
    );
    assert_eq!(ok("peek", queue.peek().await), Some(b"a1".to_vec()));
    let mut order = Vec::new();
    for _ in 0..5 {
        order.push(String::from_utf8(ok("take", queue.take().await)).unwrap());
    }
    assert_eq!(order, ["a1", "a2", "b1", "c1", "c2"]);
    assert!(ok("empty", queue.is_empty().await));
}

#[tokio::test]
async fn a_multi_item_node_is_consumed_whole_and_in_order_by_one_consumer() {
    let ctx = ctx_or_skip!();
    let queue = DistributedQueue::new(ctx.client().await, QUEUE);
    ok("put_multi", queue.put_multi(&[b"a", b"b", b"c"]).await);
    ok("put", queue.put(b"d").await);
    assert_eq!(ok("len", queue.len().await), 2);
    assert_eq!(ok("take", queue.take().await), b"a");
    // The node is gone; its other items are this consumer's.
    assert_eq!(ok("len", queue.len().await), 1);
    let other = DistributedQueue::new(ctx.client().await, QUEUE);
    assert_eq!(ok("other consumer", other.take().await), b"d");
    assert_eq!(ok("take", queue.take().await), b"b");
    assert_eq!(ok("take", queue.take().await), b"c");
}

#[tokio::test]
async fn the_two_formats_use_curators_node_names_and_data() {
    let ctx = ctx_or_skip!();
    let observer = ctx.client().await;
    let curator = DistributedQueue::new(ctx.client().await, QUEUE);
    let path = ok("put", curator.put(b"hi").await);
    assert!(path.starts_with(&format!("{QUEUE}/queue-")), "{path}");
    let (data, _) = ok("read", observer.get_data(&path).await);
    assert_eq!(data, [0, 1, 0, 1, 1, 0, 0, 0, 2, b'h', b'i', 2]);
    assert_eq!(ok("take", curator.take().await), b"hi");

    let simple = DistributedQueue::new(ctx.client().await, "/queues/simple")
        .with_format(QueueFormat::Simple);
    let path = ok("put", simple.put(b"raw").await);
    assert!(path.starts_with("/queues/simple/qn-"), "{path}");
    let (data, _) = ok("read", observer.get_data(&path).await);
    assert_eq!(data, b"raw");
    assert!(matches!(
        simple.put_multi(&[b"a", b"b"]).await,
        Err(RecipeError::BadArguments(_))
    ));
    assert_eq!(ok("take", simple.take().await), b"raw");

    // A corrupt item in a Curator-format queue is reported, not delivered as data.
    ok(
        "foreign write",
        observer
            .create(
                &format!("{QUEUE}/queue-"),
                b"garbage",
                &corral_client::CreateOptions::new(corral_client::CreateMode::PersistentSequential),
            )
            .await,
    );
    assert!(matches!(
        curator.take().await,
        Err(RecipeError::InvalidData(_))
    ));
}
