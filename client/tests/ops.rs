//! Every operation against a real server: create modes, versions, reads, ACLs and auth,
//! multi, multi_read, chroot, limits.

mod common;

use std::time::Duration;

use common::{ok, within};
use corral_client::{
    perms, Acl, CreateMode, CreateOptions, Error, EventType, OpResult, ReadResult, RetryPolicy,
};
use corral_proto::{ttl_of_owner, CONTAINER_EPHEMERAL_OWNER};

#[tokio::test]
async fn create_supports_every_mode_and_returns_path_and_stat() {
    let ctx = ctx_or_skip!();
    let c = ctx.client().await;
    let session = c.session_id().0;

    let (p, stat) = ok(
        "persistent",
        c.create("/p", b"v", &CreateOptions::persistent()).await,
    );
    assert_eq!(p, "/p");
    assert_eq!(
        (stat.version, stat.data_length, stat.ephemeral_owner),
        (0, 1, 0)
    );

    let (p, stat) = ok(
        "ephemeral",
        c.create("/e", b"", &CreateOptions::ephemeral()).await,
    );
    assert_eq!((p.as_str(), stat.ephemeral_owner), ("/e", session));

    let seq = CreateOptions::new(CreateMode::PersistentSequential);
    let (p1, _) = ok("seq 1", c.create("/p/s-", b"", &seq).await);
    let (p2, _) = ok("seq 2", c.create("/p/s-", b"", &seq).await);
    assert_eq!(
        (p1.as_str(), p2.as_str()),
        ("/p/s-0000000000", "/p/s-0000000001")
    );

    let eseq = CreateOptions::new(CreateMode::EphemeralSequential);
    let (p, stat) = ok("ephemeral seq", c.create("/p/e-", b"", &eseq).await);
    assert_eq!(
        (p.as_str(), stat.ephemeral_owner),
        ("/p/e-0000000002", session)
    );

    // ZooKeeper keeps the container / TTL marker in ephemeralOwner internally but reports
    // 0 to clients (DataTree.getClientEphemeralOwner) [observed 3.8.0].
    let (p, stat) = ok(
        "container",
        c.create("/c", b"", &CreateMode::Container.into()).await,
    );
    assert_eq!((p.as_str(), stat.ephemeral_owner), ("/c", 0));
    let stat = ok("container stat", c.exists("/c").await).expect("container exists");
    assert_ne!(stat.ephemeral_owner, CONTAINER_EPHEMERAL_OWNER);

    let ttl = CreateOptions::new(CreateMode::PersistentWithTtl).with_ttl(Duration::from_secs(3600));
    let (p, stat) = ok("ttl", c.create("/t", b"", &ttl).await);
    assert_eq!((p.as_str(), stat.ephemeral_owner), ("/t", 0));
    assert_eq!(ttl_of_owner(stat.ephemeral_owner), None);

    let ttl_seq = CreateOptions::new(CreateMode::PersistentSequentialWithTtl)
        .with_ttl(Duration::from_secs(60));
    let (p, _) = ok("ttl seq", c.create("/t/s-", b"", &ttl_seq).await);
    assert_eq!(p, "/t/s-0000000000");

    assert_err!(
        c.create("/p", b"", &CreateOptions::persistent()).await,
        Error::NodeExists
    );
    assert_err!(
        c.create("/none/x", b"", &CreateOptions::persistent()).await,
        Error::NoNode
    );
    assert_err!(
        c.create("/e/child", b"", &CreateOptions::persistent())
            .await,
        Error::NoChildrenForEphemerals
    );
    assert_err!(
        c.create("/p/", b"", &CreateOptions::persistent()).await,
        Error::BadArguments(_)
    );
}

#[tokio::test]
async fn containers_and_ttl_nodes_are_reaped_by_the_server() {
    let ctx = ctx_or_skip!();
    if !ctx.server.reaps_quickly() {
        eprintln!("SKIPPED: the server does not reap containers quickly");
        return;
    }
    let c = ctx.client().await;
    ok(
        "container",
        c.create("/c", b"", &CreateMode::Container.into()).await,
    );
    ok(
        "child",
        c.create("/c/x", b"", &CreateOptions::persistent()).await,
    );
    let (_, gone) = ok("watch container", c.exists_and_watch("/c").await);
    ok("delete child", c.delete("/c/x", None).await);
    let ev = ok("container reaped", within("container reaped", gone).await);
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeDeleted, "/c")
    );

    let ttl =
        CreateOptions::new(CreateMode::PersistentWithTtl).with_ttl(Duration::from_millis(300));
    ok("ttl node", c.create("/t", b"", &ttl).await);
    let (_, gone) = ok("watch ttl", c.exists_and_watch("/t").await);
    let ev = ok("ttl reaped", within("ttl node reaped", gone).await);
    assert_eq!(ev.event_type, EventType::NodeDeleted);
}

#[tokio::test]
async fn versions_guard_set_data_delete_and_set_acl() {
    let ctx = ctx_or_skip!();
    let c = ctx.client().await;
    ok(
        "create",
        c.create("/v", b"0", &CreateOptions::persistent()).await,
    );
    let stat = ok("set v0", c.set_data("/v", b"1", Some(0)).await);
    assert_eq!(stat.version, 1);
    assert_err!(c.set_data("/v", b"2", Some(0)).await, Error::BadVersion);
    let stat = ok("set any", c.set_data("/v", b"2", None).await);
    assert_eq!(stat.version, 2);
    let (data, stat) = ok("get", c.get_data("/v").await);
    assert_eq!((data.as_slice(), stat.version), (&b"2"[..], 2));

    assert_err!(
        c.set_acl("/v", &Acl::read_unsafe(), Some(5)).await,
        Error::BadVersion
    );
    let stat = ok(
        "set acl",
        c.set_acl("/v", &Acl::open_unsafe(), Some(0)).await,
    );
    assert_eq!(stat.aversion, 1);

    ok(
        "child",
        c.create("/v/x", b"", &CreateOptions::persistent()).await,
    );
    assert_err!(c.delete("/v", None).await, Error::NotEmpty);
    ok("delete child", c.delete("/v/x", None).await);
    assert_err!(c.delete("/v", Some(1)).await, Error::BadVersion);
    ok("delete", c.delete("/v", Some(2)).await);
    assert_err!(c.delete("/v", None).await, Error::NoNode);
    assert_err!(c.set_data("/v", b"", None).await, Error::NoNode);
}

#[tokio::test]
async fn reads_report_data_children_stats_and_counts() {
    let ctx = ctx_or_skip!();
    let c = ctx.client().await;
    assert_eq!(ok("exists none", c.exists("/r").await), None);
    ok(
        "create",
        c.create("/r", b"data", &CreateOptions::persistent()).await,
    );
    for name in ["a", "b", "c"] {
        ok(
            "child",
            c.create(&format!("/r/{name}"), b"", &CreateOptions::persistent())
                .await,
        );
    }
    ok(
        "grandchild",
        c.create("/r/a/x", b"", &CreateOptions::persistent()).await,
    );
    ok(
        "ephemeral",
        c.create("/r/b/e", b"", &CreateOptions::ephemeral()).await,
    );

    let stat = ok("exists", c.exists("/r").await).expect("exists");
    assert_eq!((stat.num_children, stat.data_length), (3, 4));
    let (data, _) = ok("get", c.get_data("/r").await);
    assert_eq!(data, b"data");
    let mut children = ok("children", c.get_children("/r").await);
    children.sort();
    assert_eq!(children, ["a", "b", "c"]);
    let (children, stat) = ok("children2", c.get_children_with_stat("/r").await);
    assert_eq!((children.len(), stat.num_children), (3, 3));
    assert_eq!(ok("count", c.get_all_children_number("/r").await), 5);
    assert_eq!(ok("ephemerals", c.get_ephemerals("/").await), ["/r/b/e"]);
    assert_eq!(
        ok("ephemerals prefix", c.get_ephemerals("/r/b").await),
        ["/r/b/e"]
    );
    assert!(ok("no ephemerals", c.get_ephemerals("/r/a").await).is_empty());
    ok("sync", c.sync("/r").await);
    assert_err!(c.get_data("/nope").await, Error::NoNode);
    assert_err!(c.get_children("/nope").await, Error::NoNode);
    assert_err!(c.get_ephemerals("r").await, Error::BadArguments(_));

    let ids = ok("who am i", c.who_am_i().await);
    assert!(ids.iter().any(|i| i.auth_scheme == "ip"), "{ids:?}");

    // Empty data and null data both read as empty.
    ok(
        "empty",
        c.create("/empty", b"", &CreateOptions::persistent()).await,
    );
    assert!(ok("get empty", c.get_data("/empty").await).0.is_empty());
}

#[tokio::test]
async fn digest_acls_and_auth_control_access() {
    let ctx = ctx_or_skip!();
    let bob = within(
        "bob",
        ctx.builder().with_auth("digest", b"bob:secret").connect(),
    )
    .await
    .expect("bob connects");
    let anon = ctx.client().await;

    let bob_only = vec![Acl::new(
        perms::ALL,
        "digest",
        &common::digest_id("bob:secret"),
    )];
    ok(
        "create",
        bob.create(
            "/secret",
            b"s",
            &CreateOptions::persistent().with_acl(bob_only),
        )
        .await,
    );
    ok(
        "creator all",
        bob.create(
            "/mine",
            b"",
            &CreateOptions::persistent().with_acl(Acl::creator_all()),
        )
        .await,
    );
    assert_err!(anon.get_data("/secret").await, Error::NoAuth);
    assert_err!(anon.set_data("/mine", b"x", None).await, Error::NoAuth);
    let (acl, _) = ok("get acl", bob.get_acl("/mine").await);
    assert_eq!(
        acl,
        vec![Acl::new(
            perms::ALL,
            "digest",
            &common::digest_id("bob:secret")
        )]
    );

    ok("add auth", anon.add_auth("digest", b"bob:secret").await);
    assert_eq!(ok("now readable", anon.get_data("/secret").await).0, b"s");
    let ids = ok("who am i", anon.who_am_i().await);
    assert!(
        ids.iter()
            .any(|i| i.auth_scheme == "digest" && i.user == "bob"),
        "{ids:?}"
    );

    // No credentials at all for a world-readable node with a read-only ACL.
    ok(
        "read-only node",
        bob.create(
            "/ro",
            b"",
            &CreateOptions::persistent().with_acl(Acl::read_unsafe()),
        )
        .await,
    );
    let outsider = ctx.client().await;
    assert_err!(outsider.set_data("/ro", b"x", None).await, Error::NoAuth);
    assert_err!(
        outsider
            .create(
                "/bad-acl",
                b"",
                &CreateOptions::persistent().with_acl(vec![])
            )
            .await,
        Error::InvalidAcl
    );
}

#[tokio::test]
async fn refused_credentials_fail_connect_or_the_add_auth_call() {
    let ctx = ctx_or_skip!();
    let r = within(
        "connect",
        ctx.builder().with_auth("no-such-scheme", b"x").connect(),
    )
    .await;
    assert_err!(r, Error::AuthFailed);

    let c = ctx.client().await;
    let mut states = c.state_watcher();
    assert_err!(c.add_auth("no-such-scheme", b"x").await, Error::AuthFailed);
    // The server closed the connection; the session goes on after a reconnect.
    within(
        "reconnected",
        states.wait_for(common::WAIT, |s| {
            s.is_connected() && s.connection_state == corral_client::ConnectionState::Reconnected
        }),
    )
    .await
    .expect("reconnects");
    ok(
        "still usable",
        c.create("/after", b"", &CreateOptions::persistent()).await,
    );
}

#[tokio::test]
async fn multi_applies_all_or_nothing_with_per_operation_results() {
    let ctx = ctx_or_skip!();
    let c = ctx.client().await;
    ok(
        "create",
        c.create("/m", b"0", &CreateOptions::persistent()).await,
    );
    ok(
        "old",
        c.create("/m/old", b"", &CreateOptions::persistent()).await,
    );

    let results = ok(
        "multi",
        c.multi()
            .check("/m", 0)
            .create("/m/new-", b"n", &CreateMode::PersistentSequential.into())
            .set_data("/m", b"1", Some(0))
            .delete("/m/old", None)
            .commit()
            .await,
    );
    assert_eq!(results.len(), 4);
    assert_eq!(results[0], OpResult::Check);
    let OpResult::Create { path, stat } = &results[1] else {
        panic!("{results:?}")
    };
    assert_eq!((path.as_str(), stat.version), ("/m/new-0000000001", 0));
    let OpResult::SetData { stat } = &results[2] else {
        panic!("{results:?}")
    };
    assert_eq!(stat.version, 1);
    assert_eq!(results[3], OpResult::Delete);

    let err = c
        .multi()
        .create("/m/never", b"", &CreateOptions::persistent())
        .check("/m", 0)
        .delete("/m/new-0000000001", None)
        .commit()
        .await
        .unwrap_err();
    assert_eq!(
        err,
        Error::MultiFailed {
            index: 1,
            source: Box::new(Error::BadVersion),
            results: vec![
                OpResult::Aborted,
                OpResult::Error(Error::BadVersion),
                OpResult::Aborted
            ],
        }
    );
    assert_eq!(ok("nothing applied", c.exists("/m/never").await), None);
    assert!(ok("still there", c.exists("/m/new-0000000001").await).is_some());
    assert_eq!(ok("empty multi", c.multi().commit().await), vec![]);
    assert_err!(
        c.multi().check("bad", 0).commit().await,
        Error::BadArguments(_)
    );
}

#[tokio::test]
async fn multi_read_runs_every_read_independently() {
    let ctx = ctx_or_skip!();
    let c = ctx.client().await;
    ok(
        "create",
        c.create("/mr", b"d", &CreateOptions::persistent()).await,
    );
    ok(
        "child",
        c.create("/mr/k", b"", &CreateOptions::persistent()).await,
    );
    let results = ok(
        "multi read",
        c.multi_read()
            .get_data("/mr")
            .get_children("/nope")
            .get_children("/mr")
            .execute()
            .await,
    );
    let ReadResult::Data { data, stat } = &results[0] else {
        panic!("{results:?}")
    };
    assert_eq!((data.as_slice(), stat.num_children), (&b"d"[..], 1));
    assert_eq!(results[1], ReadResult::Error(Error::NoNode));
    assert_eq!(results[2], ReadResult::Children(vec!["k".into()]));
}

#[tokio::test]
async fn chroot_prefixes_requests_and_strips_every_returned_path() {
    let ctx = ctx_or_skip!();
    let raw = ctx.raw_client().await;
    let app = format!("{}/app", ctx.root);
    ok(
        "app",
        raw.create(&app, b"", &CreateOptions::persistent()).await,
    );
    let c = within(
        "chrooted connect",
        common::Ctx::test_builder(format!("{}{}", ctx.server.addr(), app)).connect(),
    )
    .await
    .expect("connect");

    let (p, _) = ok(
        "seq",
        c.create("/s-", b"", &CreateMode::EphemeralSequential.into())
            .await,
    );
    assert_eq!(p, "/s-0000000000");
    assert!(ok(
        "raw sees it",
        raw.exists(&format!("{app}/s-0000000000")).await
    )
    .is_some());
    assert_eq!(
        ok("ephemerals", c.get_ephemerals("/").await),
        ["/s-0000000000"]
    );
    let (children, _) = ok("root children", c.get_children_with_stat("/").await);
    assert_eq!(children, ["s-0000000000"]);

    let results = ok(
        "multi",
        c.multi()
            .create("/m", b"", &CreateOptions::persistent())
            .commit()
            .await,
    );
    assert!(
        matches!(&results[0], OpResult::Create { path, .. } if path == "/m"),
        "{results:?}"
    );

    let (_, _, watcher) = ok("watch", c.get_and_watch_data("/m").await);
    ok(
        "raw set",
        raw.set_data(&format!("{app}/m"), b"x", None).await,
    );
    let ev = ok("event", within("event", watcher).await);
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeDataChanged, "/m")
    );
}

#[tokio::test]
async fn config_and_reconfig_reach_the_server() {
    let ctx = ctx_or_skip!();
    let c = ctx.client().await;
    // Standalone servers have /zookeeper/config (possibly empty); reconfig is off by default.
    let _ = ok("get config", c.get_config().await);
    assert_err!(c.reconfig("", "2", "", None).await, Error::ReconfigDisabled);
}

#[tokio::test]
async fn frames_beyond_max_buffer_are_refused_both_ways() {
    let ctx = ctx_or_skip!();
    let c = ctx.client().await;
    ok(
        "big node",
        c.create("/big", &[7u8; 4096], &CreateOptions::persistent())
            .await,
    );

    let small = within(
        "connect",
        ctx.builder()
            .with_max_buffer_bytes(1024)
            .with_retry_policy(RetryPolicy::none())
            .connect(),
    )
    .await
    .expect("connect");
    let mut states = small.state_watcher();
    assert_err!(
        small.set_data("/big", &[0u8; 2048], None).await,
        Error::BadArguments(_)
    );
    // A reply over the limit closes the connection; the client reconnects.
    assert_err!(small.get_data("/big").await, Error::ConnectionLoss);
    within(
        "reconnect",
        states.wait_for(common::WAIT, |s| {
            s.connection_state == corral_client::ConnectionState::Reconnected
        }),
    )
    .await
    .expect("reconnected");
    assert!(ok("small reads still work", small.exists("/big").await).is_some());
}

#[tokio::test]
async fn invalid_arguments_are_rejected_before_sending() {
    let ctx = ctx_or_skip!();
    let c = ctx.client().await;
    for path in ["", "a", "/a/", "/a//b", "/a/../b"] {
        assert_err!(c.get_data(path).await, Error::BadArguments(_));
    }
    assert_err!(
        c.create(
            "/x",
            b"",
            &CreateOptions::new(CreateMode::PersistentWithTtl)
        )
        .await,
        Error::BadArguments(_)
    );
    assert!(
        Client::builder("").connect().await.is_err(),
        "an empty connect string is refused"
    );
}

use corral_client::Client;
