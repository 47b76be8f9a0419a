//! One-shot, persistent and recursive watches; removing and checking watches.

mod common;

use common::{ok, within};
use corral_client::{AddWatchMode, CreateOptions, Error, EventType, WatcherType};

#[tokio::test]
async fn one_shot_data_watch_fires_once_with_the_change() {
    let ctx = ctx_or_skip!();
    let c = ctx.client().await;
    let writer = ctx.client().await;
    ok(
        "create",
        c.create("/w", b"0", &CreateOptions::persistent()).await,
    );
    let (data, stat, watcher) = ok("get and watch", c.get_and_watch_data("/w").await);
    assert_eq!((data.as_slice(), stat.version), (&b"0"[..], 0));

    ok("set 1", writer.set_data("/w", b"1", None).await);
    let ev = ok("event", within("data event", watcher).await);
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeDataChanged, "/w")
    );

    // The watch was one-shot: a second change reaches only a new watch.
    ok("set 2", writer.set_data("/w", b"2", None).await);
    let (data, _, watcher) = ok("rewatch", c.get_and_watch_data("/w").await);
    assert_eq!(data, b"2");
    ok("delete", writer.delete("/w", None).await);
    let ev = ok("delete event", within("delete event", watcher).await);
    assert_eq!(ev.event_type, EventType::NodeDeleted);
}

#[tokio::test]
async fn exists_and_child_watches_fire_on_create_and_child_changes() {
    let ctx = ctx_or_skip!();
    let c = ctx.client().await;
    let writer = ctx.client().await;

    let (stat, created) = ok("exists watch", c.exists_and_watch("/x").await);
    assert_eq!(stat, None);
    ok(
        "create",
        writer.create("/x", b"", &CreateOptions::persistent()).await,
    );
    let ev = ok("created", within("created", created).await);
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeCreated, "/x")
    );

    let (children, child_watch) = ok("children watch", c.get_and_watch_children("/x").await);
    assert!(children.is_empty());
    let (_, stat, child_watch2) = ok(
        "children2 watch",
        c.get_and_watch_children_with_stat("/x").await,
    );
    assert_eq!(stat.num_children, 0);
    ok(
        "child",
        writer
            .create("/x/k", b"", &CreateOptions::persistent())
            .await,
    );
    for w in [child_watch, child_watch2] {
        let ev = ok("child event", within("child event", w).await);
        assert_eq!(
            (ev.event_type, ev.path.as_str()),
            (EventType::NodeChildrenChanged, "/x")
        );
    }
    // Watches on missing nodes are not set by getData / getChildren.
    assert_err!(c.get_and_watch_data("/missing").await, Error::NoNode);
    assert_err!(c.get_and_watch_children("/missing").await, Error::NoNode);
}

#[tokio::test]
async fn persistent_watch_streams_data_and_child_events_until_removed() {
    let ctx = ctx_or_skip!();
    let c = ctx.client().await;
    let writer = ctx.client().await;
    let mut w = ok(
        "add watch",
        c.add_watch("/p", AddWatchMode::Persistent).await,
    );
    ok(
        "create",
        writer.create("/p", b"", &CreateOptions::persistent()).await,
    );
    ok("set", writer.set_data("/p", b"1", None).await);
    ok(
        "child",
        writer
            .create("/p/k", b"", &CreateOptions::persistent())
            .await,
    );
    ok("set again", writer.set_data("/p", b"2", None).await);
    let mut seen = Vec::new();
    for _ in 0..4 {
        let ev = within("persistent event", w.recv())
            .await
            .expect("open")
            .expect("event");
        seen.push((ev.event_type, ev.path));
    }
    assert_eq!(
        seen,
        [
            (EventType::NodeCreated, "/p".to_string()),
            (EventType::NodeDataChanged, "/p".to_string()),
            (EventType::NodeChildrenChanged, "/p".to_string()),
            (EventType::NodeDataChanged, "/p".to_string()),
        ]
    );
    // Removing persistent watches by kind needs ZooKeeper 3.9 (ZOOKEEPER-4472); Any works
    // everywhere.
    ok("remove", c.remove_watches("/p", WatcherType::Any).await);
    assert_eq!(within("stream end", w.recv()).await, None);
    assert_err!(
        c.remove_watches("/p", WatcherType::Any).await,
        Error::NoWatcher
    );
}

#[tokio::test]
async fn recursive_watch_sees_every_descendant_but_no_child_events() {
    let ctx = ctx_or_skip!();
    let c = ctx.client().await;
    let writer = ctx.client().await;
    ok(
        "root",
        writer.create("/r", b"", &CreateOptions::persistent()).await,
    );
    let mut w = ok(
        "add watch",
        c.add_watch("/r", AddWatchMode::PersistentRecursive).await,
    );
    ok(
        "a",
        writer
            .create("/r/a", b"", &CreateOptions::persistent())
            .await,
    );
    ok(
        "a/b",
        writer
            .create("/r/a/b", b"", &CreateOptions::persistent())
            .await,
    );
    ok("set", writer.set_data("/r/a/b", b"x", None).await);
    ok("delete", writer.delete("/r/a/b", None).await);
    let mut seen = Vec::new();
    for _ in 0..4 {
        let ev = within("recursive event", w.recv())
            .await
            .expect("open")
            .expect("event");
        seen.push((ev.event_type, ev.path));
    }
    assert_eq!(
        seen,
        [
            (EventType::NodeCreated, "/r/a".to_string()),
            (EventType::NodeCreated, "/r/a/b".to_string()),
            (EventType::NodeDataChanged, "/r/a/b".to_string()),
            (EventType::NodeDeleted, "/r/a/b".to_string()),
        ]
    );
}

#[tokio::test]
async fn remove_watches_tells_one_shot_watchers_locally() {
    let ctx = ctx_or_skip!();
    let c = ctx.client().await;
    ok(
        "create",
        c.create("/n", b"", &CreateOptions::persistent()).await,
    );
    let (_, _, data_watch) = ok("data watch", c.get_and_watch_data("/n").await);
    let (_, child_watch) = ok("child watch", c.get_and_watch_children("/n").await);
    ok("check data", c.check_watches("/n", WatcherType::Data).await);
    ok(
        "remove data",
        c.remove_watches("/n", WatcherType::Data).await,
    );
    let ev = ok("removed", within("data watch removed", data_watch).await);
    assert_eq!(ev.event_type, EventType::DataWatchRemoved);
    assert_err!(
        c.check_watches("/n", WatcherType::Data).await,
        Error::NoWatcher
    );
    ok("remove any", c.remove_watches("/n", WatcherType::Any).await);
    let ev = ok("removed", within("child watch removed", child_watch).await);
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::ChildWatchRemoved, "/n")
    );
}

#[tokio::test]
async fn dropped_persistent_watcher_is_removed_from_the_server() {
    let ctx = ctx_or_skip!();
    let c = ctx.client().await;
    ok(
        "create",
        c.create("/d", b"", &CreateOptions::persistent()).await,
    );
    let w = ok(
        "add watch",
        c.add_watch("/d", AddWatchMode::PersistentRecursive).await,
    );
    drop(w);
    // The notification precedes this reply on c's connection; handling it sends the
    // removeWatches (and, before ZooKeeper 3.9, its fallback once it is answered, which
    // precedes the sync reply).
    ok("set", c.set_data("/d", b"1", None).await);
    ok("sync", c.sync("/").await);
    assert_err!(
        c.remove_watches("/d", WatcherType::Any).await,
        Error::NoWatcher
    );
}

#[tokio::test]
async fn a_slow_persistent_watcher_is_closed_with_lagged() {
    let ctx = ctx_or_skip!();
    let c = within(
        "connect",
        ctx.builder().with_watch_queue_capacity(2).connect(),
    )
    .await
    .expect("connect");
    ok(
        "create",
        c.create("/s", b"", &CreateOptions::persistent()).await,
    );
    let mut w = ok(
        "add watch",
        c.add_watch("/s", AddWatchMode::Persistent).await,
    );
    for i in 0..5 {
        ok(
            "set",
            c.set_data("/s", format!("{i}").as_bytes(), None).await,
        );
    }
    // Every notification precedes the reply of the write that caused it.
    let mut events = 0;
    loop {
        match within("lagged stream", w.recv()).await {
            Some(Ok(_)) => events += 1,
            Some(Err(e)) => {
                assert_eq!(e, Error::WatcherLagged);
                break;
            }
            None => panic!("stream ended without reporting the lag"),
        }
    }
    assert_eq!(events, 2);
    assert_eq!(w.recv().await, None);
}
