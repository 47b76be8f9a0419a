//! NodeCache and TreeCache against a real server: events, depth limit, resynchronisation
//! after reconnects (ZOOKEEPER-4698), delete-and-recreate while disconnected
//! (CURATOR-391), session expiry, server failover, lagging subscribers, the one-shot
//! fallback, and a seeded random mix with a disconnect in the middle.

mod cache_support;
mod common;

use cache_support::{
    cut_and_wait, heal_and_wait, renewing_client_via, server_tree, wait_converged, ClusterCtx,
    LegacyProxy, Replay, Rng,
};
use common::{ok, within, Proxy};
use corral_client::{ConnectionState, CreateOptions, Error};
use corral_recipes::cache::{CacheEvent, NodeCache, TreeCache, WatchMode};

const MODES: [WatchMode; 2] = [WatchMode::Persistent, WatchMode::OneShot];

async fn next(events: &mut corral_recipes::cache::CacheEvents) -> CacheEvent {
    within("a cache event", events.recv())
        .await
        .expect("the cache is running")
}

#[tokio::test]
async fn a_node_cache_reports_creation_changes_and_deletion_in_both_watch_modes() {
    let ctx = ctx_or_skip!();
    let writer = ctx.client().await;
    for mode in MODES {
        let path = format!("/node-{mode:?}");
        let cache = ok(
            "start",
            NodeCache::start_with(&ctx.client().await, &path, mode),
        );
        let mut events = cache.events();
        assert_eq!(next(&mut events).await, CacheEvent::Initialized);
        assert_eq!(cache.watch_mode(), Some(mode));
        assert_eq!(cache.current(), None);

        ok(
            "create",
            writer
                .create(&path, b"v1", &CreateOptions::persistent())
                .await,
        );
        match next(&mut events).await {
            CacheEvent::Created(d) => {
                assert_eq!((d.path.as_str(), &d.data[..]), (&path[..], &b"v1"[..]))
            }
            other => panic!("{mode:?}: expected Created, got {other:?}"),
        }
        ok("set", writer.set_data(&path, b"v2", None).await);
        match next(&mut events).await {
            CacheEvent::Changed(d) => {
                assert_eq!(d.data, b"v2");
                assert_eq!(d.stat.version, 1);
            }
            other => panic!("{mode:?}: expected Changed, got {other:?}"),
        }
        assert_eq!(cache.data().as_deref(), Some(&b"v2"[..]));
        // Children are not the node cache's business.
        ok(
            "child",
            writer
                .create(&format!("{path}/c"), b"", &CreateOptions::persistent())
                .await,
        );
        ok("set again", writer.set_data(&path, b"v3", None).await);
        match next(&mut events).await {
            CacheEvent::Changed(d) => assert_eq!(d.data, b"v3", "{mode:?}"),
            other => panic!("{mode:?}: expected Changed, got {other:?}"),
        }
        ok(
            "delete child",
            writer.delete(&format!("{path}/c"), None).await,
        );
        ok("delete", writer.delete(&path, None).await);
        match next(&mut events).await {
            CacheEvent::Deleted(d) => assert_eq!(d.data, b"v3"),
            other => panic!("{mode:?}: expected Deleted, got {other:?}"),
        }
        assert_eq!(cache.current(), None);
        // And again: a one-shot cache must have re-armed its exists watch.
        ok(
            "recreate",
            writer
                .create(&path, b"v4", &CreateOptions::persistent())
                .await,
        );
        assert!(matches!(next(&mut events).await, CacheEvent::Created(d) if d.data == b"v4"));
    }
}

#[tokio::test]
async fn a_tree_cache_mirrors_its_subtree_down_to_the_depth_limit() {
    let ctx = ctx_or_skip!();
    let writer = ctx.client().await;
    for mode in MODES {
        let root = format!("/tree-{mode:?}");
        for p in ["", "/a", "/a/b", "/a/b/c", "/d"] {
            let path = format!("{root}{p}");
            ok(
                "create",
                writer
                    .create(&path, p.as_bytes(), &CreateOptions::persistent())
                    .await,
            );
        }
        let reader = ctx.client().await;
        let cache = ok(
            "start",
            TreeCache::builder(&reader, &root)
                .with_max_depth(2)
                .with_watch_mode(mode)
                .start(),
        );
        ok("initialized", within("init", cache.initialized()).await);
        let mut events = cache.events();
        let mut replay = Replay::new(&root);
        replay.drain(&mut events);
        assert!(replay.initialized);
        let expected = server_tree(&writer, &root, 2).await;
        assert_eq!(
            cache_support::view_of(&cache.snapshot()),
            expected,
            "{mode:?}"
        );
        assert!(
            cache.get(&format!("{root}/a/b/c")).is_none(),
            "below the limit"
        );
        let kids: Vec<String> = cache.children(&root).unwrap().into_keys().collect();
        assert_eq!(kids, ["a", "d"]);

        // Deeper changes are ignored; changes within the limit are followed.
        ok(
            "deep",
            writer
                .create(
                    &format!("{root}/a/b/c/x"),
                    b"",
                    &CreateOptions::persistent(),
                )
                .await,
        );
        ok(
            "new",
            writer
                .create(&format!("{root}/d/e"), b"e", &CreateOptions::persistent())
                .await,
        );
        ok(
            "set",
            writer.set_data(&format!("{root}/a"), b"A", None).await,
        );
        ok("del", writer.delete(&format!("{root}/a/b/c/x"), None).await);
        ok("del", writer.delete(&format!("{root}/a/b/c"), None).await);
        ok("del", writer.delete(&format!("{root}/a/b"), None).await);
        let seen = wait_converged("tree", &cache, &mut events, &writer, 2).await;
        assert!(seen.contains_key(&format!("{root}/d/e")));
        assert!(!seen.contains_key(&format!("{root}/a/b")));
        let mut replay = Replay::new(&root);
        replay.drain(&mut cache.events());
        assert_eq!(replay.view, cache.snapshot());
    }
}

#[tokio::test]
async fn a_delete_and_recreate_while_disconnected_surfaces_as_deleted_then_created() {
    // CURATOR-391: the node looks unchanged after the reconnect, but it is another node.
    let ctx = ctx_or_skip!();
    let writer = ctx.client().await;
    for mode in MODES {
        let root = format!("/recreate-{mode:?}");
        ok(
            "root",
            writer
                .create(&root, b"", &CreateOptions::persistent())
                .await,
        );
        let node = format!("{root}/n");
        ok(
            "create",
            writer
                .create(&node, b"same", &CreateOptions::persistent())
                .await,
        );
        ok(
            "child",
            writer
                .create(&format!("{node}/kid"), b"k", &CreateOptions::persistent())
                .await,
        );
        let proxy = Proxy::start(ctx.server.addr()).await;
        let reader = ctx.client_via(&proxy).await;
        let cache = ok(
            "start",
            TreeCache::builder(&reader, &root)
                .with_watch_mode(mode)
                .start(),
        );
        ok("init", within("init", cache.initialized()).await);
        let before = cache.get(&node).expect("cached");
        let mut events = cache.events();
        let mut record = cache.events();
        let mut replay = Replay::new(&root);
        replay.drain(&mut record);

        cut_and_wait(&proxy, &reader).await;
        ok(
            "delete kid",
            writer.delete(&format!("{node}/kid"), None).await,
        );
        ok("delete", writer.delete(&node, None).await);
        ok(
            "recreate",
            writer
                .create(&node, b"same", &CreateOptions::persistent())
                .await,
        );
        heal_and_wait(&proxy, &reader).await;

        let final_view = wait_converged("recreate", &cache, &mut events, &writer, usize::MAX).await;
        replay.drain(&mut record);
        let after = cache.get(&node).expect("cached again");
        assert_eq!(after.data, before.data);
        assert_ne!(after.stat.czxid, before.stat.czxid);
        let about_node: Vec<&CacheEvent> = replay
            .log
            .iter()
            .filter(|e| e.data().is_some_and(|d| d.path.starts_with(&node)))
            .collect();
        let kinds: Vec<String> = about_node
            .iter()
            .map(|e| match e {
                CacheEvent::Created(d) => format!("created {}", d.path),
                CacheEvent::Deleted(d) => format!("deleted {}", d.path),
                CacheEvent::Changed(d) => format!("changed {}", d.path),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            kinds[kinds.len() - 3..],
            [
                format!("deleted {node}/kid"),
                format!("deleted {node}"),
                format!("created {node}")
            ],
            "{mode:?}: {kinds:?}"
        );
        assert_eq!(cache_support::view_of(&replay.view), final_view);
    }
}

#[tokio::test]
async fn changes_made_while_disconnected_are_reported_after_the_reconnect() {
    // ZOOKEEPER-4698: a persistent watch does not replay what happened while disconnected.
    let ctx = ctx_or_skip!();
    let writer = ctx.client().await;
    let root = "/offline";
    ok(
        "root",
        writer.create(root, b"", &CreateOptions::persistent()).await,
    );
    for n in ["a", "b", "c"] {
        ok(
            "create",
            writer
                .create(&format!("{root}/{n}"), b"0", &CreateOptions::persistent())
                .await,
        );
    }
    let proxy = Proxy::start(ctx.server.addr()).await;
    let reader = ctx.client_via(&proxy).await;
    let cache = ok("start", TreeCache::builder(&reader, root).start());
    ok("init", within("init", cache.initialized()).await);
    assert_eq!(cache.watch_mode(), Some(WatchMode::Persistent));
    let mut events = cache.events();
    let mut record = cache.events();
    let mut replay = Replay::new(root);
    replay.drain(&mut record);

    cut_and_wait(&proxy, &reader).await;
    ok(
        "set",
        writer.set_data(&format!("{root}/a"), b"1", None).await,
    );
    ok("delete", writer.delete(&format!("{root}/b"), None).await);
    ok(
        "create",
        writer
            .create(&format!("{root}/d"), b"new", &CreateOptions::persistent())
            .await,
    );
    ok(
        "create deep",
        writer
            .create(
                &format!("{root}/d/e"),
                b"deep",
                &CreateOptions::persistent(),
            )
            .await,
    );
    heal_and_wait(&proxy, &reader).await;

    wait_converged("offline changes", &cache, &mut events, &writer, usize::MAX).await;
    replay.drain(&mut record);
    assert!(replay
        .log
        .iter()
        .any(|e| matches!(e, CacheEvent::Changed(d) if d.path == "/offline/a" && d.data == b"1")));
    assert!(replay
        .log
        .iter()
        .any(|e| matches!(e, CacheEvent::Deleted(d) if d.path == "/offline/b")));
    assert!(replay
        .log
        .iter()
        .any(|e| matches!(e, CacheEvent::Created(d) if d.path == "/offline/d/e")));
    // And the watch still works after the reconnect.
    ok(
        "later",
        writer.set_data(&format!("{root}/c"), b"2", None).await,
    );
    loop {
        if let CacheEvent::Changed(d) = next(&mut events).await {
            if d.path == "/offline/c" {
                assert_eq!(d.data, b"2");
                break;
            }
        }
    }
}

#[tokio::test]
async fn a_random_mix_with_a_disconnect_ends_identical_to_the_server_and_replays_to_it() {
    let ctx = ctx_or_skip!();
    let mut rng = Rng::from_env("random mix");
    let writer = ctx.client().await;
    const OPS: usize = 240;
    for mode in MODES {
        let root = format!("/mix-{mode:?}");
        ok(
            "root",
            writer
                .create(&root, b"", &CreateOptions::persistent())
                .await,
        );
        let proxy = Proxy::start(ctx.server.addr()).await;
        let reader = ctx.client_via(&proxy).await;
        let cache = ok(
            "start",
            TreeCache::builder(&reader, &root)
                .with_watch_mode(mode)
                .with_event_capacity(100_000)
                .start(),
        );
        // Subscribed before the first load: these streams see everything.
        let mut events = cache.events();
        let mut record = cache.events();
        ok("init", within("init", cache.initialized()).await);
        let mut counts = [0usize; 4];
        for op in 0..OPS {
            if op == OPS / 3 {
                cut_and_wait(&proxy, &reader).await;
            }
            if op == 2 * OPS / 3 {
                heal_and_wait(&proxy, &reader).await;
            }
            let depth = 1 + rng.below(3) as usize;
            let mut path = root.clone();
            for _ in 0..depth {
                path.push('/');
                path.push((b'a' + rng.below(3) as u8) as char);
            }
            let data = format!("{op}").into_bytes();
            let kind = rng.below(10);
            let result = match kind {
                0..=3 => writer
                    .create(&path, &data, &CreateOptions::persistent())
                    .await
                    .map(|_| ()),
                4..=6 => writer.set_data(&path, &data, None).await.map(|_| ()),
                7..=8 => writer.delete(&path, None).await,
                _ => {
                    // Delete and create again at once (a new czxid, maybe the same data).
                    match writer.delete(&path, None).await {
                        Ok(()) => writer
                            .create(&path, b"again", &CreateOptions::persistent())
                            .await
                            .map(|_| ()),
                        Err(e) => Err(e),
                    }
                }
            };
            match result {
                Ok(()) => {
                    counts[match kind {
                        0..=3 => 0,
                        4..=6 => 1,
                        7..=8 => 2,
                        _ => 3,
                    }] += 1
                }
                Err(Error::NoNode | Error::NodeExists | Error::NotEmpty) => {}
                Err(e) => panic!("op {op} on {path}: {e:?}"),
            }
        }
        println!("{mode:?}: applied creates/sets/deletes/recreates {counts:?}");
        assert!(
            counts[..3].iter().all(|c| *c > 0) && counts.iter().sum::<usize>() >= OPS / 6,
            "too few ops applied: {counts:?}"
        );
        let server = wait_converged("random mix", &cache, &mut events, &writer, usize::MAX).await;
        assert!(server.len() > 1, "the mix left something to compare");
        // The stream subscribed before the start replays, event by event consistently,
        // to the cache's content, which is the server's.
        let mut full = Replay::new(&root);
        full.drain(&mut record);
        assert_eq!(full.resets, 0);
        assert!(full.initialized);
        assert_eq!(full.view, cache.snapshot());
        assert_eq!(cache_support::view_of(&full.view), server);
        // So does a subscription taken now.
        let mut late = Replay::new(&root);
        late.drain(&mut cache.events());
        assert_eq!(late.view, cache.snapshot());
    }
}

#[tokio::test]
async fn a_cache_survives_a_session_expiry_and_reports_what_changed_meanwhile() {
    let ctx = ctx_or_skip!();
    let writer = ctx.client().await;
    for mode in MODES {
        let root = format!("/expiry-{mode:?}");
        ok(
            "root",
            writer
                .create(&root, b"", &CreateOptions::persistent())
                .await,
        );
        ok(
            "a",
            writer
                .create(&format!("{root}/a"), b"1", &CreateOptions::persistent())
                .await,
        );
        let proxy = Proxy::start(ctx.server.addr()).await;
        let reader = renewing_client_via(&ctx, &proxy).await;
        let cache = ok(
            "start",
            TreeCache::builder(&reader, &root)
                .with_watch_mode(mode)
                .start(),
        );
        let mut events = cache.events();
        ok("init", within("init", cache.initialized()).await);

        let status = reader.status();
        proxy.cut();
        reader
            .state_watcher()
            .wait_for(common::WAIT, |s| !s.is_connected())
            .await
            .expect("cut");
        ok(
            "set",
            writer.set_data(&format!("{root}/a"), b"2", None).await,
        );
        ok(
            "b",
            writer
                .create(&format!("{root}/b"), b"", &CreateOptions::persistent())
                .await,
        );
        ctx.expire(&status).await;
        proxy.heal();
        reader
            .state_watcher()
            .wait_for(common::WAIT, |s| s.is_connected() && s.epoch > status.epoch)
            .await
            .expect("renewed");
        wait_converged("after expiry", &cache, &mut events, &writer, usize::MAX).await;
        // Watches were set again in the new session.
        ok(
            "c",
            writer
                .create(&format!("{root}/c"), b"", &CreateOptions::persistent())
                .await,
        );
        wait_converged(
            "after expiry, live",
            &cache,
            &mut events,
            &writer,
            usize::MAX,
        )
        .await;
        assert!(cache.get(&format!("{root}/c")).is_some(), "{mode:?}");
    }
}

#[tokio::test]
async fn a_cache_converges_after_its_server_fails_over() {
    let Some(cx) = ClusterCtx::start("cache failover").await else {
        return;
    };
    let mut cx = cx;
    let writer = cx.client().await;
    let root = "/failover";
    ok(
        "root",
        writer.create(root, b"", &CreateOptions::persistent()).await,
    );
    for i in 0..5 {
        ok(
            "c",
            writer
                .create(&format!("{root}/n{i}"), b"0", &CreateOptions::persistent())
                .await,
        );
    }
    let reader = cx.client().await;
    let cache = ok("start", TreeCache::builder(&reader, root).start());
    let mut events = cache.events();
    ok("init", within("init", cache.initialized()).await);
    let victim = cx.server_of(&reader).await;
    println!("stopping member {victim}, which serves the cache's client");
    let mut states = reader.state_watcher();
    cx.cluster.stop(victim).await;
    // Suspended, or already Reconnected elsewhere.
    states
        .wait_for(common::WAIT, |s| {
            s.connection_state != ConnectionState::Connected
        })
        .await
        .expect("the cache's client loses its server");
    // The writer may have been on the same member: it reconnects by itself.
    let write = |w: &corral_client::Client, p: String, d: &'static [u8]| {
        let w = w.clone();
        async move {
            loop {
                match w.set_data(&p, d, None).await {
                    Ok(_) => return,
                    Err(e) if e.is_retryable() => {
                        w.state_watcher()
                            .wait_for(common::WAIT, |s| s.is_connected())
                            .await
                            .expect("writer reconnects");
                    }
                    Err(e) => panic!("set {p}: {e:?}"),
                }
            }
        }
    };
    for i in 0..5 {
        within("write", write(&writer, format!("{root}/n{i}"), b"1")).await;
    }
    reader
        .state_watcher()
        .wait_for(common::WAIT, |s| s.is_connected())
        .await
        .expect("the cache's client fails over");
    assert_ne!(cx.server_of(&reader).await, victim);
    let seen = wait_converged("failover", &cache, &mut events, &writer, usize::MAX).await;
    assert!(
        seen.values().filter(|v| v.0 == b"1").count() == 5,
        "{seen:?}"
    );
    cx.cluster.restart(victim).await.expect("restart");
}

#[tokio::test]
async fn a_lagging_subscriber_is_reset_and_still_replays_to_the_content() {
    let ctx = ctx_or_skip!();
    let writer = ctx.client().await;
    let root = "/lag";
    ok(
        "root",
        writer.create(root, b"", &CreateOptions::persistent()).await,
    );
    let cache = ok(
        "start",
        TreeCache::builder(&ctx.client().await, root)
            .with_event_capacity(4)
            .start(),
    );
    ok("init", within("init", cache.initialized()).await);
    let mut slow = cache.events();
    for i in 0..40 {
        ok(
            "create",
            writer
                .create(
                    &format!("{root}/n{i:02}"),
                    b"",
                    &CreateOptions::persistent(),
                )
                .await,
        );
    }
    let mut replay = Replay::new(root);
    let expected = server_tree(&writer, root, usize::MAX).await;
    within("the slow subscriber catches up", async {
        loop {
            let e = slow.recv().await.expect("running");
            replay.apply(&e);
            if cache_support::view_of(&replay.view) == expected {
                break;
            }
        }
    })
    .await;
    assert!(
        replay.resets >= 1,
        "a subscriber 40 events behind with room for 4 was never reset"
    );
}

#[tokio::test]
async fn caches_fall_back_to_one_shot_watches_on_servers_without_persistent_watches() {
    let ctx = ctx_or_skip!();
    let legacy = LegacyProxy::start(ctx.server.addr()).await;
    let old_client = within("connect", ctx.builder_for(legacy.addr()).connect())
        .await
        .expect("connect");
    let writer = ctx.client().await;
    let root = "/legacy";
    let cache = ok("start", TreeCache::builder(&old_client, root).start());
    let mut events = cache.events();
    ok("init", within("init", cache.initialized()).await);
    assert_eq!(cache.watch_mode(), Some(WatchMode::OneShot));
    assert!(
        *legacy.refused.lock().unwrap() >= 1,
        "addWatch was never tried"
    );
    ok(
        "root",
        writer
            .create(root, b"r", &CreateOptions::persistent())
            .await,
    );
    ok(
        "kid",
        writer
            .create(&format!("{root}/k"), b"k", &CreateOptions::persistent())
            .await,
    );
    ok(
        "set",
        writer.set_data(&format!("{root}/k"), b"k2", None).await,
    );
    wait_converged("legacy", &cache, &mut events, &writer, usize::MAX).await;
    assert_eq!(
        cache.get(&format!("{root}/k")).map(|d| d.data),
        Some(b"k2".to_vec())
    );
    // Also a node cache.
    let node = ok("node", NodeCache::start(&old_client, &format!("{root}/k")));
    ok("init", within("node init", node.initialized()).await);
    assert_eq!(node.watch_mode(), Some(WatchMode::OneShot));
    assert_eq!(node.data(), Some(b"k2".to_vec()));
}

#[tokio::test]
async fn a_closed_cache_ends_its_streams_and_refuses_to_wait() {
    let ctx = ctx_or_skip!();
    let cache = ok(
        "start",
        TreeCache::builder(&ctx.client().await, "/closing").start(),
    );
    ok("init", within("init", cache.initialized()).await);
    let mut events = cache.events();
    assert_eq!(next(&mut events).await, CacheEvent::Initialized);
    cache.close();
    assert_eq!(within("end", events.recv()).await, None);
    assert!(cache.is_closed());
    assert!(matches!(
        TreeCache::builder(&ctx.client().await, "bad").start(),
        Err(corral_recipes::RecipeError::BadArguments(_))
    ));
}

#[tokio::test]
async fn a_cache_whose_watch_queue_overflows_still_converges() {
    // A tiny client-side queue: a burst overflows it (WatcherLagged) unless the cache
    // keeps up; either way the cache must end equal to the server.
    let ctx = ctx_or_skip!();
    let writer = ctx.client().await;
    let small = within(
        "connect",
        ctx.builder_for(&ctx.server.addr())
            .with_watch_queue_capacity(2)
            .connect(),
    )
    .await
    .expect("connect");
    let root = "/burst";
    let cache = ok("start", TreeCache::builder(&small, root).start());
    let mut events = cache.events();
    ok("init", within("init", cache.initialized()).await);
    ok(
        "root",
        writer.create(root, b"", &CreateOptions::persistent()).await,
    );
    // Pipelined: all sent before any reply is awaited.
    let creates: Vec<_> = (0..300)
        .map(|i| {
            writer.create(
                &format!("{root}/n{i:03}"),
                b"x",
                &CreateOptions::persistent(),
            )
        })
        .collect();
    for c in creates {
        ok("create", c.await);
    }
    let seen = wait_converged("burst", &cache, &mut events, &writer, usize::MAX).await;
    assert_eq!(seen.len(), 301);
}
