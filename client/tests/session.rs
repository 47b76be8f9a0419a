//! Sessions across failures: server restarts, partitions (through a proxy), expiry, silent
//! servers, malformed input, close.

mod common;

use std::time::Duration;

use common::{ok, wait_status, within, Ctx, Proxy};
use corral_client::{
    AddWatchMode, Client, ConnectionState, CreateOptions, Error, EventType, KeeperState, SessionId,
};
use tokio::time::Instant;

/// A client chrooted at the test root, connected through `proxy`.
async fn client_via(ctx: &Ctx, proxy: &Proxy, timeout: Duration) -> Client {
    let cs = format!("{}{}", proxy.addr(), ctx.root);
    within(
        "connect via proxy",
        Ctx::test_builder(cs)
            .with_session_timeout(timeout)
            .connect(),
    )
    .await
    .expect("connect via proxy")
}

/// The next item of a status stream.
async fn next(s: &mut corral_client::StateStream) -> Option<corral_client::SessionStatus> {
    std::future::poll_fn(|cx| futures_core::Stream::poll_next(std::pin::Pin::new(&mut *s), cx))
        .await
}

fn is_reconnected(s: &corral_client::SessionStatus) -> bool {
    s.connection_state == ConnectionState::Reconnected
        && s.keeper_state == KeeperState::SyncConnected
}

#[tokio::test]
async fn server_restart_keeps_the_session_its_ephemerals_and_its_watches() {
    let mut ctx = ctx_or_skip!();
    if common::skip_unless_restartable(&ctx.server) {
        return;
    }
    let a = within(
        "connect",
        ctx.builder()
            .with_session_timeout(Duration::from_secs(30))
            .connect(),
    )
    .await
    .expect("connect");
    let b = ctx.client().await;
    let session = a.session_id();
    ok(
        "ephemeral",
        a.create("/e", b"", &CreateOptions::ephemeral()).await,
    );
    ok(
        "watched",
        a.create("/w", b"0", &CreateOptions::persistent()).await,
    );
    let (_, _, data_watch) = ok("data watch", a.get_and_watch_data("/w").await);
    let mut recursive = ok(
        "recursive",
        a.add_watch("/", AddWatchMode::PersistentRecursive).await,
    );

    ctx.server.stop().await;
    let s = wait_status(&a, "suspended", |s| {
        s.connection_state == ConnectionState::Suspended
    })
    .await;
    assert_eq!(s.keeper_state, KeeperState::Disconnected);
    // Writes are not retried: they fail at once while disconnected.
    assert_err!(
        a.create("/x", b"", &CreateOptions::persistent()).await,
        Error::ConnectionLoss
    );
    // Reads are retried (per the retry policy) until the server is back.
    let read = a.get_data("/w");

    ctx.server.restart().await;
    let s = wait_status(&a, "reconnected", is_reconnected).await;
    assert_eq!((s.session_id, s.epoch), (session, 1));
    assert_eq!(
        ok("retried read", within("retried read", read).await).0,
        b"0"
    );
    wait_status(&b, "b reconnected", is_reconnected).await;

    let stat = ok("ephemeral survived", a.exists("/e").await).expect("ephemeral exists");
    assert_eq!(stat.ephemeral_owner, session.0);
    ok("change", b.set_data("/w", b"1", None).await);
    let ev = ok(
        "one-shot after restart",
        within("data event", data_watch).await,
    );
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeDataChanged, "/w")
    );
    let ev = within("recursive event", recursive.recv())
        .await
        .expect("open")
        .expect("event");
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeDataChanged, "/w")
    );
}

#[tokio::test]
async fn changes_made_while_disconnected_are_delivered_after_reconnect() {
    let ctx = ctx_or_skip!();
    let proxy = Proxy::start(ctx.server.addr()).await;
    let a = client_via(&ctx, &proxy, Duration::from_secs(30)).await;
    let b = ctx.client().await;
    ok(
        "node",
        b.create("/w", b"0", &CreateOptions::persistent()).await,
    );
    let (_, _, data_watch) = ok("data watch", a.get_and_watch_data("/w").await);
    let (stat, exists_watch) = ok("exists watch", a.exists_and_watch("/new").await);
    assert!(stat.is_none());
    let (_, child_watch) = ok("child watch", a.get_and_watch_children("/").await);
    let mut persistent = ok(
        "persistent",
        a.add_watch("/w", AddWatchMode::Persistent).await,
    );

    proxy.cut();
    wait_status(&a, "suspended", |s| {
        s.connection_state == ConnectionState::Suspended
    })
    .await;
    ok("change data", b.set_data("/w", b"1", None).await);
    ok(
        "create",
        b.create("/new", b"", &CreateOptions::persistent()).await,
    );
    proxy.heal();
    wait_status(&a, "reconnected", is_reconnected).await;

    // setWatches with the last zxid seen makes the server report what was missed.
    let ev = ok("data", within("data event", data_watch).await);
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeDataChanged, "/w")
    );
    let ev = ok("exists", within("exists event", exists_watch).await);
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeCreated, "/new")
    );
    let ev = ok("child", within("child event", child_watch).await);
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeChildrenChanged, "/")
    );
    // Persistent watches are re-registered (missed changes are not replayed for them).
    ok("change again", b.set_data("/w", b"2", None).await);
    let ev = within("persistent event", persistent.recv())
        .await
        .expect("open")
        .expect("event");
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeDataChanged, "/w")
    );
}

#[tokio::test]
async fn session_expiry_is_reported_to_requests_watches_and_observers() {
    let ctx = ctx_or_skip!();
    let proxy = Proxy::start(ctx.server.addr()).await;
    let a = client_via(&ctx, &proxy, Duration::from_secs(30)).await;
    ok(
        "ephemeral",
        a.create("/e", b"", &CreateOptions::ephemeral()).await,
    );
    let (_, _, watch) = ok("watch", a.get_and_watch_data("/e").await);
    let mut persistent = ok(
        "persistent",
        a.add_watch("/", AddWatchMode::PersistentRecursive).await,
    );
    let status = a.status();

    proxy.cut();
    wait_status(&a, "suspended", |s| {
        s.connection_state == ConnectionState::Suspended
    })
    .await;
    // Another client resumes the session (id + password) and closes it.
    let thief = within(
        "resume",
        Ctx::test_builder(ctx.server.addr())
            .with_session(status.session_id, status.password())
            .connect(),
    )
    .await
    .expect("resume the session");
    assert_eq!(thief.session_id(), status.session_id);
    ok("close", thief.close().await);
    proxy.heal();

    let s = wait_status(&a, "expired", |s| s.is_terminal()).await;
    assert_eq!(
        (s.keeper_state, s.connection_state, s.session_id),
        (
            KeeperState::Expired,
            ConnectionState::Lost,
            status.session_id
        )
    );
    assert_err!(within("watch ends", watch).await, Error::SessionExpired);
    assert_eq!(
        within("stream", persistent.recv()).await,
        Some(Err(Error::SessionExpired))
    );
    assert_eq!(persistent.recv().await, None);
    assert_err!(a.get_data("/e").await, Error::SessionExpired);
    assert_err!(
        a.create("/x", b"", &CreateOptions::persistent()).await,
        Error::SessionExpired
    );
    let b = ctx.client().await;
    assert_eq!(ok("ephemeral gone", b.exists("/e").await), None);
}

#[tokio::test]
async fn a_long_partition_is_lost_and_then_expired() {
    let ctx = ctx_or_skip!();
    let proxy = Proxy::start(ctx.server.addr()).await;
    // The shortest timeout the server allows (2 ticks).
    let a = client_via(&ctx, &proxy, Duration::from_secs(4)).await;
    let timeout = a.status().session_timeout;
    ok(
        "ephemeral",
        a.create("/e", b"", &CreateOptions::ephemeral()).await,
    );
    let b = ctx.client().await;
    let (_, gone) = ok("watch ephemeral", b.exists_and_watch("/e").await);

    proxy.cut();
    let cut_at = Instant::now();
    wait_status(&a, "suspended", |s| {
        s.connection_state == ConnectionState::Suspended
    })
    .await;
    let s = wait_status(&a, "lost", |s| s.connection_state == ConnectionState::Lost).await;
    assert_eq!(
        s.keeper_state,
        KeeperState::Disconnected,
        "lost is a guess, not yet expiry"
    );
    assert!(
        cut_at.elapsed() >= timeout - Duration::from_millis(200),
        "{:?}",
        cut_at.elapsed()
    );
    // The server expires the session: its ephemeral goes.
    let ev = ok(
        "ephemeral deleted",
        within("expiry on the server", gone).await,
    );
    assert_eq!(ev.event_type, EventType::NodeDeleted);
    proxy.heal();
    let s = wait_status(&a, "expired", |s| s.is_terminal()).await;
    assert_eq!(s.keeper_state, KeeperState::Expired);
}

#[tokio::test]
async fn with_renewal_an_expired_session_is_replaced_and_the_epoch_rises() {
    let ctx = ctx_or_skip!();
    let proxy = Proxy::start(ctx.server.addr()).await;
    let cs = format!("{}{}", proxy.addr(), ctx.root);
    let a = within(
        "connect",
        Ctx::test_builder(cs).with_session_renewal(true).connect(),
    )
    .await
    .expect("connect");
    let old = a.status();
    assert_eq!(old.epoch, 1);
    let (_, watch) = ok("watch", a.exists_and_watch("/x").await);
    let mut states = a.state_watcher();

    proxy.cut();
    wait_status(&a, "suspended", |s| {
        s.connection_state == ConnectionState::Suspended
    })
    .await;
    let thief = within(
        "resume",
        Ctx::test_builder(ctx.server.addr())
            .with_session(old.session_id, old.password())
            .connect(),
    )
    .await
    .expect("resume");
    ok("close", thief.close().await);
    proxy.heal();

    let expired = within(
        "expired",
        states.wait_for(common::WAIT, |s| s.keeper_state == KeeperState::Expired),
    )
    .await;
    // The watch channel keeps only the latest status; the renewal may already be visible.
    if let Ok(s) = expired {
        assert_eq!(s.connection_state, ConnectionState::Lost);
    }
    let s = wait_status(&a, "new session", |s| s.epoch == 2 && s.is_connected()).await;
    assert_ne!(s.session_id, old.session_id);
    assert_eq!(s.connection_state, ConnectionState::Reconnected);
    assert_err!(within("old watch", watch).await, Error::SessionExpired);
    ok(
        "usable",
        a.create("/y", b"", &CreateOptions::ephemeral()).await,
    );
}

#[tokio::test]
async fn a_silent_server_is_dropped_after_two_thirds_of_the_timeout() {
    let ctx = ctx_or_skip!();
    let proxy = Proxy::start(ctx.server.addr()).await;
    let a = client_via(&ctx, &proxy, Duration::from_secs(4)).await;
    let timeout = a.status().session_timeout;
    let session = a.session_id();
    ok(
        "ephemeral",
        a.create("/e", b"", &CreateOptions::ephemeral()).await,
    );

    proxy.freeze();
    let frozen_at = Instant::now();
    wait_status(&a, "suspended", |s| {
        s.connection_state == ConnectionState::Suspended
    })
    .await;
    let detected = frozen_at.elapsed();
    assert!(
        detected >= timeout * 2 / 3 - timeout / 3 && detected < timeout,
        "detected after {detected:?} with timeout {timeout:?}"
    );
    let s = wait_status(&a, "reconnected", is_reconnected).await;
    assert_eq!(s.session_id, session);
    assert!(ok("ephemeral kept", a.exists("/e").await).is_some());
    assert!(proxy.accepted() >= 2);
}

#[tokio::test]
async fn malformed_server_input_drops_the_connection_not_the_session() {
    let ctx = ctx_or_skip!();
    let proxy = Proxy::start(ctx.server.addr()).await;
    let a = client_via(&ctx, &proxy, Duration::from_secs(30)).await;
    let session = a.session_id();
    let garbage: [&[u8]; 4] = [
        // A frame length far beyond jute.maxbuffer.
        &[0x7f, 0xff, 0xff, 0xff],
        // A reply to a request never sent (xid 999999).
        &[
            0, 0, 0, 16, 0, 0x0f, 0x42, 0x3f, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0,
        ],
        // A notification whose body is truncated.
        &[
            0, 0, 0, 18, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 3,
        ],
        // A negative frame length.
        &[0xff, 0xff, 0xff, 0xf0],
    ];
    for (i, bytes) in garbage.into_iter().enumerate() {
        let mut states = a.state_watcher();
        proxy.inject_to_clients(bytes);
        within(
            "suspended",
            states.wait_for(common::WAIT, |s| {
                s.connection_state == ConnectionState::Suspended
            }),
        )
        .await
        .unwrap_or_else(|e| panic!("garbage {i} did not drop the connection: {e}"));
        let s = wait_status(&a, "reconnected", is_reconnected).await;
        assert_eq!(s.session_id, session, "garbage {i}");
    }
    ok(
        "still works",
        a.create("/ok", b"", &CreateOptions::ephemeral()).await,
    );
}

#[tokio::test]
async fn close_ends_the_session_and_its_ephemerals() {
    let ctx = ctx_or_skip!();
    let a = ctx.client().await;
    let b = ctx.client().await;
    ok(
        "ephemeral",
        a.create("/e", b"", &CreateOptions::ephemeral()).await,
    );
    let (_, gone) = ok("watch", b.exists_and_watch("/e").await);
    let (_, _, own) = ok("own watch", a.get_and_watch_data("/e").await);
    let mut states = a.state_watcher().into_stream();
    // Requests sent before close are answered first.
    let before = a.get_data("/e");
    ok("close", a.close().await);
    let last = within("closed status", next(&mut states))
        .await
        .expect("a status");
    assert_eq!(last.keeper_state, KeeperState::Closed);
    assert_eq!(within("stream end", next(&mut states)).await, None);
    assert_eq!(ok("answered before close", before.await).0, b"");
    let s = a.status();
    assert_eq!(
        (s.keeper_state, s.connection_state),
        (KeeperState::Closed, ConnectionState::Closed)
    );
    let ev = ok("deleted", within("ephemeral deleted", gone).await);
    assert_eq!(ev.event_type, EventType::NodeDeleted);
    // The closing session's own watch sees the deletion too (delivered before the reply).
    assert_eq!(
        ok("own watch", within("own watch", own).await).event_type,
        EventType::NodeDeleted
    );
    assert_err!(a.get_data("/").await, Error::ClientClosed);
    ok("close twice", a.close().await);
}

#[tokio::test]
async fn dropping_the_last_handle_closes_the_session() {
    let ctx = ctx_or_skip!();
    let a = ctx.client().await;
    let b = ctx.client().await;
    ok(
        "ephemeral",
        a.create("/e", b"", &CreateOptions::ephemeral()).await,
    );
    let (_, gone) = ok("watch", b.exists_and_watch("/e").await);
    let clone = a.clone();
    drop(a);
    assert!(ok("clone still works", clone.exists("/e").await).is_some());
    drop(clone);
    let ev = ok("deleted", within("ephemeral deleted", gone).await);
    assert_eq!(ev.event_type, EventType::NodeDeleted);
}

#[tokio::test]
async fn connect_gives_up_after_the_connection_timeout() {
    common::init_tracing();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let started = Instant::now();
    let r = within(
        "connect",
        Client::builder(format!("127.0.0.1:{port}"))
            .with_connection_timeout(Duration::from_millis(700))
            .connect(),
    )
    .await;
    assert_err!(r, Error::Timeout);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn resuming_an_unknown_session_is_reported_as_expired() {
    let ctx = ctx_or_skip!();
    let r = within(
        "connect",
        Ctx::test_builder(ctx.server.addr())
            .with_session(SessionId(0x0100_0000_0000_1234), &[0; 16])
            .connect(),
    )
    .await;
    assert_err!(r, Error::SessionExpired);
}
