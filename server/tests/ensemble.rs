//! Replicated ensembles over real sockets (in-process `TestingCluster`).

mod common;

use common::{closed_by_server, Raw};
use corral_proto::{Acl, CreateRequest, ErrorCode, Jute, PathWatchRequest, Request, Stat};
use corral_server::testing::TestingCluster;
use std::time::Duration;

const ELECTION: Duration = Duration::from_secs(15);

/// Logs to the test output when CORRAL_TEST_LOG is set (e.g. `info`, `debug`).
fn init_logs() {
    if let Ok(filter) = std::env::var("CORRAL_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

fn create(path: &str, data: &[u8], flags: i32) -> Request {
    Request::Create(CreateRequest {
        path: path.into(),
        data: Some(data.to_vec()),
        acl: Acl::open_unsafe(),
        flags,
    })
}

fn get(path: &str) -> Request {
    Request::GetData(PathWatchRequest {
        path: path.into(),
        watch: false,
    })
}

async fn sync(c: &mut Raw, path: &str) {
    let (h, _) = c
        .call(&Request::Sync(corral_proto::PathRequest {
            path: path.into(),
        }))
        .await;
    assert_eq!(h.err, 0, "sync");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_elect_one_leader_and_replicate_writes() {
    let cluster = TestingCluster::start(3).await.unwrap();
    let leader = cluster.wait_for_leader(ELECTION).await.unwrap();
    let modes: Vec<Option<String>> = {
        let mut v = Vec::new();
        for id in cluster.ids() {
            v.push(cluster.mode(id).await);
        }
        v
    };
    assert_eq!(
        modes
            .iter()
            .filter(|m| m.as_deref() == Some("leader"))
            .count(),
        1
    );
    assert_eq!(
        modes
            .iter()
            .filter(|m| m.as_deref() == Some("follower"))
            .count(),
        2
    );

    // A write through each server, read back from every server after a sync.
    for id in cluster.ids() {
        let mut c = Raw::connect(cluster.addr(id)).await;
        let (h, _) = c.call(&create(&format!("/from-{id}"), b"v", 0)).await;
        assert_eq!(h.err, 0, "write through server {id} (leader {leader})");
    }
    for id in cluster.ids() {
        let mut c = Raw::connect(cluster.addr(id)).await;
        sync(&mut c, "/").await;
        for w in cluster.ids() {
            let (h, _) = c.call(&get(&format!("/from-{w}"))).await;
            assert_eq!(h.err, 0, "server {id} sees the write made through {w}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_failover_keeps_acknowledged_writes() {
    init_logs();
    let mut cluster = TestingCluster::start(3).await.unwrap();
    let leader = cluster.wait_for_leader(ELECTION).await.unwrap();
    let follower = cluster.ids().into_iter().find(|id| *id != leader).unwrap();
    let mut c = Raw::connect(cluster.addr(follower)).await;
    for i in 0..50 {
        let (h, _) = c.call(&create(&format!("/k{i}"), b"x", 0)).await;
        assert_eq!(h.err, 0);
    }
    cluster.stop(leader).await;
    let next = cluster.wait_for_leader(ELECTION).await.unwrap();
    assert_ne!(next, leader);
    for id in cluster.ids().into_iter().filter(|id| *id != leader) {
        let mut c = Raw::connect(cluster.addr(id)).await;
        sync(&mut c, "/").await;
        for i in 0..50 {
            let (h, _) = c.call(&get(&format!("/k{i}"))).await;
            assert_eq!(h.err, 0, "server {id} lost /k{i}");
        }
        let (h, _) = c.call(&create(&format!("/after-{id}"), b"y", 0)).await;
        assert_eq!(h.err, 0, "writes continue with a minority down");
    }
    // The old leader comes back as a follower and catches up.
    cluster.restart(leader).await.unwrap();
    cluster.wait_for_leader(ELECTION).await.unwrap();
    let mut c = Raw::connect(cluster.addr(leader)).await;
    sync(&mut c, "/").await;
    let (h, body) = c.call(&get("/k49")).await;
    assert_eq!(h.err, 0);
    let _ = body;
    for id in cluster.ids().into_iter().filter(|id| *id != leader) {
        let (h, _) = c.call(&get(&format!("/after-{id}"))).await;
        assert_eq!(h.err, 0, "the restarted server caught up with /after-{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_quorum_writes_stop_and_clients_are_turned_away() {
    let mut cluster = TestingCluster::start(3).await.unwrap();
    let leader = cluster.wait_for_leader(ELECTION).await.unwrap();
    let others: Vec<u64> = cluster
        .ids()
        .into_iter()
        .filter(|id| *id != leader)
        .collect();
    cluster.stop(others[0]).await;
    cluster.stop(others[1]).await;
    // The leader steps down once it hears from no quorum, and stops serving.
    let deadline = tokio::time::Instant::now() + ELECTION;
    while cluster.mode(leader).await.is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "leader kept serving alone"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut s = tokio::net::TcpStream::connect(cluster.addr(leader))
        .await
        .unwrap();
    use tokio::io::AsyncWriteExt;
    let req = corral_proto::ConnectRequest {
        timeout_ms: 30_000,
        passwd: vec![0; 16],
        read_only: Some(false),
        ..Default::default()
    };
    s.write_all(&common::frame(|v| req.write(v))).await.unwrap();
    assert!(closed_by_server(&mut s).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_moves_between_servers_with_its_ephemerals() {
    let cluster = TestingCluster::start(3).await.unwrap();
    cluster.wait_for_leader(ELECTION).await.unwrap();
    let ids = cluster.ids();
    let mut c = Raw::connect(cluster.addr(ids[0])).await;
    let (h, _) = c.call(&create("/eph", b"e", 1)).await;
    assert_eq!(h.err, 0);
    let session = c.session.clone();
    drop(c);
    let mut moved = Raw::connect_with(
        cluster.addr(ids[1]),
        corral_proto::ConnectRequest {
            session_id: session.session_id,
            passwd: session.passwd.clone(),
            timeout_ms: 30_000,
            read_only: Some(false),
            ..Default::default()
        },
    )
    .await
    .expect("an answer");
    assert_eq!(
        moved.session.session_id, session.session_id,
        "session resumed"
    );
    let (h, body) = moved
        .call(&Request::Exists(PathWatchRequest {
            path: "/eph".into(),
            watch: false,
        }))
        .await;
    assert_eq!(h.err, 0);
    assert_eq!(
        Stat::from_bytes(&body).unwrap().ephemeral_owner,
        session.session_id
    );
    let (h, _) = moved.call(&Request::CloseSession).await;
    assert_eq!(h.err, 0);
    let mut other = Raw::connect(cluster.addr(ids[2])).await;
    sync(&mut other, "/").await;
    let (h, _) = other
        .call(&Request::Exists(PathWatchRequest {
            path: "/eph".into(),
            watch: false,
        }))
        .await;
    assert_eq!(
        h.err,
        ErrorCode::NoNode.code(),
        "ephemeral gone with the session"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_serves_reads_and_forwards_writes_but_never_votes() {
    let mut cluster = TestingCluster::start_with(2, 1, |_| {}).await.unwrap();
    let leader = cluster.wait_for_leader(ELECTION).await.unwrap();
    assert_eq!(cluster.mode(3).await.as_deref(), Some("observer"));
    let mut obs = Raw::connect(cluster.addr(3)).await;
    let (h, _) = obs.call(&create("/via-observer", b"o", 0)).await;
    assert_eq!(h.err, 0, "the observer forwards writes");
    let mut c = Raw::connect(cluster.addr(leader)).await;
    let (h, _) = c.call(&get("/via-observer")).await;
    assert_eq!(h.err, 0);
    let (h, _) = c.call(&create("/via-leader", b"l", 0)).await;
    assert_eq!(h.err, 0);
    sync(&mut obs, "/").await;
    let (h, _) = obs.call(&get("/via-leader")).await;
    assert_eq!(h.err, 0, "the observer learns committed writes");
    // With one of the two voters gone there is no quorum, observer or not.
    let other_voter = if leader == 1 { 2 } else { 1 };
    cluster.stop(other_voter).await;
    let deadline = tokio::time::Instant::now() + ELECTION;
    while cluster.mode(leader).await.is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "an observer counted for the quorum"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemerals_vanish_everywhere_when_a_dead_clients_session_expires() {
    let cluster = TestingCluster::start_with(3, 0, |c| c.tick_time_ms = 100)
        .await
        .unwrap();
    let leader = cluster.wait_for_leader(ELECTION).await.unwrap();
    let follower = cluster.ids().into_iter().find(|id| *id != leader).unwrap();
    let mut owner = Raw::connect_with(
        cluster.addr(follower),
        corral_proto::ConnectRequest {
            timeout_ms: 400,
            passwd: vec![0; 16],
            read_only: Some(false),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let (h, _) = owner.call(&create("/lease", b"", 1)).await;
    assert_eq!(h.err, 0);
    let mut watcher = Raw::connect(cluster.addr(leader)).await;
    let (h, _) = watcher
        .call(&Request::Exists(PathWatchRequest {
            path: "/lease".into(),
            watch: true,
        }))
        .await;
    assert_eq!(h.err, 0);
    // The owner goes silent: the leader expires its session and every server drops it.
    assert!(closed_by_server(&mut owner.stream).await);
    let deadline = tokio::time::Instant::now() + ELECTION;
    loop {
        let ev = tokio::time::timeout_at(deadline, watcher.next_event())
            .await
            .expect("NodeDeleted in time")
            .expect("connection open");
        if ev.path == "/lease" && ev.event_type == corral_proto::EventType::NodeDeleted as i32 {
            break;
        }
    }
    for id in cluster.ids() {
        let mut c = Raw::connect(cluster.addr(id)).await;
        sync(&mut c, "/").await;
        let (h, _) = c.call(&get("/lease")).await;
        assert_eq!(
            h.err,
            ErrorCode::NoNode.code(),
            "server {id} still has the ephemeral"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_servers_survive_two_failures_and_an_isolated_server_catches_up() {
    let mut cluster = TestingCluster::start(5).await.unwrap();
    let leader = cluster.wait_for_leader(ELECTION).await.unwrap();
    let others: Vec<u64> = cluster
        .ids()
        .into_iter()
        .filter(|id| *id != leader)
        .collect();
    cluster.stop(others[0]).await;
    cluster.isolate(others[1]);
    let mut c = Raw::connect(cluster.addr(leader)).await;
    for i in 0..20 {
        let (h, _) = c.call(&create(&format!("/five-{i}"), b"5", 0)).await;
        assert_eq!(h.err, 0, "3 of 5 still make a quorum");
    }
    cluster.heal(others[1]);
    cluster.restart(others[0]).await.unwrap();
    cluster.wait_for_leader(ELECTION).await.unwrap();
    for id in [others[0], others[1]] {
        let mut c = Raw::connect(cluster.addr(id)).await;
        sync(&mut c, "/").await;
        let (h, _) = c.call(&get("/five-19")).await;
        assert_eq!(h.err, 0, "server {id} caught up");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_quorum_read_only_mode_still_serves_reads() {
    let mut cluster = TestingCluster::start_with(3, 0, |c| c.read_only_mode = true)
        .await
        .unwrap();
    let leader = cluster.wait_for_leader(ELECTION).await.unwrap();
    let mut c = Raw::connect(cluster.addr(leader)).await;
    let (h, _) = c.call(&create("/kept", b"k", 0)).await;
    assert_eq!(h.err, 0);
    drop(c);
    let survivor = leader;
    for id in cluster.ids().into_iter().filter(|id| *id != survivor) {
        cluster.stop(id).await;
    }
    let deadline = tokio::time::Instant::now() + ELECTION;
    while cluster.mode(survivor).await.is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "kept serving without a quorum"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        corral_server::testing::four_letter(cluster.addr(survivor), "isro")
            .await
            .unwrap(),
        "ro"
    );
    let mut ro = Raw::connect_with(
        cluster.addr(survivor),
        corral_proto::ConnectRequest {
            timeout_ms: 30_000,
            passwd: vec![0; 16],
            read_only: Some(true),
            ..Default::default()
        },
    )
    .await
    .expect("a read-only session");
    assert_eq!(ro.session.read_only, Some(true));
    let (h, body) = ro.call(&get("/kept")).await;
    assert_eq!(h.err, 0, "reads are served from the local tree");
    assert!(body.starts_with(&[0, 0, 0, 1, b'k']));
    let (h, _) = ro.call(&create("/refused", b"", 0)).await;
    assert_eq!(h.err, ErrorCode::NotReadOnly.code());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_far_behind_is_brought_up_by_snapshot() {
    init_logs();
    let mut cluster = TestingCluster::start_with(3, 0, |c| c.commit_log_count = 10)
        .await
        .unwrap();
    let leader = cluster.wait_for_leader(ELECTION).await.unwrap();
    let behind = cluster.ids().into_iter().find(|id| *id != leader).unwrap();
    cluster.stop(behind).await;
    let mut c = Raw::connect(cluster.addr(leader)).await;
    for i in 0..60 {
        let (h, _) = c.call(&create(&format!("/snap-{i}"), b"s", 0)).await;
        assert_eq!(h.err, 0);
    }
    cluster.restart(behind).await.unwrap();
    cluster.wait_for_leader(ELECTION).await.unwrap();
    let mut f = Raw::connect(cluster.addr(behind)).await;
    sync(&mut f, "/").await;
    for i in 0..60 {
        let (h, _) = f.call(&get(&format!("/snap-{i}"))).await;
        assert_eq!(
            h.err, 0,
            "/snap-{i} on the follower that was 60 behind a window of 10"
        );
    }
    // It keeps following normally afterwards.
    let (h, _) = c.call(&create("/after-snap", b"", 0)).await;
    assert_eq!(h.err, 0);
    sync(&mut f, "/").await;
    let (h, _) = f.call(&get("/after-snap")).await;
    assert_eq!(h.err, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_divergent_uncommitted_tail_is_truncated_after_a_restart() {
    init_logs();
    let mut cluster = TestingCluster::start_with(3, 0, |c| c.tick_time_ms = 100)
        .await
        .unwrap();
    let old = cluster.wait_for_leader(ELECTION).await.unwrap();
    let mut c = Raw::connect(cluster.addr(old)).await;
    let (h, _) = c.call(&create("/before", b"b", 0)).await;
    assert_eq!(h.err, 0);
    // The leader's messages are lost: its next proposal is logged only on its own disk.
    cluster.mute(old);
    c.send(&create("/diverged", b"d", 0)).await;
    // No quorum acknowledges it: the leader gives up and drops the client, unanswered.
    assert!(
        c.reply().await.is_none(),
        "a write without a quorum must never be acknowledged"
    );
    cluster.stop(old).await;
    cluster.unmute(old);
    let new = cluster.wait_for_leader(ELECTION).await.unwrap();
    assert_ne!(new, old);
    let mut n = Raw::connect(cluster.addr(new)).await;
    let (h, _) = n.call(&create("/after", b"a", 0)).await;
    assert_eq!(h.err, 0);
    // The old leader replays its log (the uncommitted create included) at start; the new
    // leader then truncates that tail and it rebuilds its state.
    cluster.restart(old).await.unwrap();
    cluster.wait_for_leader(ELECTION).await.unwrap();
    for id in cluster.ids() {
        let mut r = Raw::connect(cluster.addr(id)).await;
        sync(&mut r, "/").await;
        let (h, _) = r.call(&get("/diverged")).await;
        assert_eq!(
            h.err,
            ErrorCode::NoNode.code(),
            "server {id} kept an uncommitted write"
        );
        let (h, _) = r.call(&get("/before")).await;
        assert_eq!(h.err, 0, "server {id} lost a committed write");
        let (h, _) = r.call(&get("/after")).await;
        assert_eq!(h.err, 0, "server {id} missed the new leader's write");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_is_answered_right_after_a_leader_change() {
    let mut cluster = TestingCluster::start(3).await.unwrap();
    let leader = cluster.wait_for_leader(ELECTION).await.unwrap();
    // Sessions made before the change: resuming them afterwards writes nothing, so nothing of
    // the new epoch is proposed when they sync.
    let mut sessions = Vec::new();
    for _ in 0..2 {
        let c = Raw::connect(cluster.addr(leader)).await;
        sessions.push(c.session.clone());
    }
    cluster.stop(leader).await;
    let next = cluster.wait_for_leader(ELECTION).await.unwrap();
    let survivors: Vec<u64> = cluster
        .ids()
        .into_iter()
        .filter(|id| *id != leader)
        .collect();
    for (session, id) in sessions.iter().zip(survivors) {
        let mut c = Raw::connect_with(
            cluster.addr(id),
            corral_proto::ConnectRequest {
                session_id: session.session_id,
                passwd: session.passwd.clone(),
                timeout_ms: 30_000,
                read_only: Some(false),
                ..Default::default()
            },
        )
        .await
        .expect("resumed");
        assert_eq!(c.session.session_id, session.session_id);
        let (h, _) = c
            .call(&Request::Sync(corral_proto::PathRequest {
                path: "/".into(),
            }))
            .await;
        assert_eq!(h.err, 0, "sync on server {id} (leader {next})");
        assert!(c.ping().await, "the session is not stuck behind the sync");
    }
}
