//! ZooKeeper semantics over real sockets against an in-process server.

mod common;

use common::{closed_by_server, four_letter, Raw, WAIT};
use corral_proto::{
    Acl, AddWatchRequest, ConnectRequest, CreateRequest, CreateTtlRequest, DeleteRequest,
    ErrorCode, EventType, Jute, MultiResult, OpCode, PathRequest, PathWatchRequest, Request,
    Response, SetDataRequest, SetWatches, Stat,
};
use corral_server::config::FourLetterWhitelist;
use corral_server::testing::TestingServer;
use std::time::Instant;

fn create(path: &str, flags: i32) -> Request {
    Request::Create(CreateRequest {
        path: path.into(),
        data: Some(b"d".to_vec()),
        acl: Acl::open_unsafe(),
        flags,
    })
}

fn exists(path: &str, watch: bool) -> Request {
    Request::Exists(PathWatchRequest {
        path: path.into(),
        watch,
    })
}

/// Waits (bounded) until `raw` has received an event of `ty` on `path`.
async fn wait_event(raw: &mut Raw, ty: EventType, path: &str) {
    let seen = |raw: &Raw| {
        raw.events
            .iter()
            .any(|e| e.event_type == ty as i32 && e.path == path)
    };
    let deadline = Instant::now() + WAIT;
    while !seen(raw) {
        assert!(
            Instant::now() < deadline,
            "no {ty:?} for {path}; got {:?}",
            raw.events
        );
        assert!(
            raw.next_event().await.is_some(),
            "connection closed while waiting"
        );
    }
}

#[tokio::test]
async fn watch_event_arrives_before_the_reply_of_the_write() {
    let server = TestingServer::start().await.unwrap();
    let mut c = Raw::connect(server.addr()).await;
    c.call(&create("/w", 0)).await;
    c.call(&Request::GetData(PathWatchRequest {
        path: "/w".into(),
        watch: true,
    }))
    .await;
    assert!(c.events.is_empty());
    let (h, _) = c
        .call(&Request::SetData(SetDataRequest {
            path: "/w".into(),
            data: None,
            version: -1,
        }))
        .await;
    assert_eq!(h.err, 0);
    // `call` returned at the reply, so the event must already be there.
    assert_eq!(c.events.len(), 1);
    assert_eq!(c.events[0].event_type, EventType::NodeDataChanged as i32);
    // One-shot: a second change does not fire again.
    c.call(&Request::SetData(SetDataRequest {
        path: "/w".into(),
        data: None,
        version: -1,
    }))
    .await;
    assert_eq!(c.events.len(), 1);
}

#[tokio::test]
async fn a_read_never_overtakes_an_earlier_write_of_its_session() {
    let server = TestingServer::start().await.unwrap();
    let mut c = Raw::connect(server.addr()).await;
    // Pipeline 200 (create, exists) pairs without waiting.
    for i in 0..200 {
        c.send(&create(&format!("/p{i}"), 0)).await;
        c.send(&exists(&format!("/p{i}"), false)).await;
    }
    for i in 0..400 {
        let (h, _) = c.reply().await.unwrap();
        assert_eq!(h.xid, i + 1);
        assert_eq!(h.err, 0, "reply {i}: the exists saw its session's create");
    }
}

#[tokio::test]
async fn failed_writes_consume_a_zxid() {
    let server = TestingServer::start().await.unwrap();
    let mut c = Raw::connect(server.addr()).await;
    let (h1, _) = c.call(&create("/z", 0)).await;
    let (h2, _) = c.call(&create("/z", 0)).await;
    assert_eq!(h2.err, ErrorCode::NodeExists.code());
    assert_eq!(h2.zxid, h1.zxid + 1);
    let (h3, _) = c.call(&create("/z2", 0)).await;
    assert_eq!(h3.zxid, h2.zxid + 1);
}

#[tokio::test]
async fn expired_session_loses_its_ephemerals_and_watchers_hear_it() {
    let server = TestingServer::start_with(|c| c.tick_time_ms = 100)
        .await
        .unwrap();
    let mut owner = Raw::connect_with(
        server.addr(),
        ConnectRequest {
            timeout_ms: 300,
            passwd: vec![0; 16],
            read_only: Some(false),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(owner.session.timeout_ms, 300);
    let (h, _) = owner.call(&create("/eph", 1)).await;
    assert_eq!(h.err, 0);
    let mut watcher = Raw::connect(server.addr()).await;
    let (h, _) = watcher.call(&exists("/eph", true)).await;
    assert_eq!(h.err, 0);
    // The owner goes silent; its session expires and the server closes its connection.
    assert!(closed_by_server(&mut owner.stream).await);
    wait_event(&mut watcher, EventType::NodeDeleted, "/eph").await;
    let (h, _) = watcher.call(&exists("/eph", false)).await;
    assert_eq!(h.err, ErrorCode::NoNode.code());
    // Resuming the expired session is refused.
    let again = Raw::connect_with(
        server.addr(),
        ConnectRequest {
            session_id: owner.session.session_id,
            passwd: owner.session.passwd.clone(),
            timeout_ms: 300,
            read_only: Some(false),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(again.session.timeout_ms, 0);
}

#[tokio::test]
async fn close_session_deletes_ephemerals_then_closes() {
    let server = TestingServer::start().await.unwrap();
    let mut owner = Raw::connect(server.addr()).await;
    owner.call(&create("/bye", 1)).await;
    let mut watcher = Raw::connect(server.addr()).await;
    watcher.call(&exists("/bye", true)).await;
    let (h, _) = owner.call(&Request::CloseSession).await;
    assert_eq!(h.err, 0);
    assert!(closed_by_server(&mut owner.stream).await);
    wait_event(&mut watcher, EventType::NodeDeleted, "/bye").await;
}

#[tokio::test]
async fn container_is_removed_once_its_last_child_goes() {
    let server = TestingServer::start().await.unwrap();
    let mut c = Raw::connect(server.addr()).await;
    let (h, _) = c
        .call(&Request::CreateContainer(CreateRequest {
            path: "/box".into(),
            data: None,
            acl: Acl::open_unsafe(),
            flags: 4,
        }))
        .await;
    assert_eq!(h.err, 0);
    c.call(&create("/box/item", 0)).await;
    c.call(&exists("/box", true)).await;
    c.call(&Request::Delete(DeleteRequest {
        path: "/box/item".into(),
        version: -1,
    }))
    .await;
    wait_event(&mut c, EventType::NodeDeleted, "/box").await;
}

#[tokio::test]
async fn ttl_node_is_removed_after_its_ttl() {
    let server = TestingServer::start().await.unwrap();
    let mut c = Raw::connect(server.addr()).await;
    let (h, body) = c
        .call(&Request::CreateTtl(CreateTtlRequest {
            path: "/ttl".into(),
            data: None,
            acl: Acl::open_unsafe(),
            flags: 5,
            ttl: 200,
        }))
        .await;
    assert_eq!(h.err, 0);
    let Response::Create2(r) = Response::decode(OpCode::CreateTtl, &body).unwrap() else {
        panic!("create2 response")
    };
    assert_eq!(
        r.stat.ephemeral_owner, 0,
        "TTL owners read as 0, as in ZooKeeper"
    );
    c.call(&exists("/ttl", true)).await;
    wait_event(&mut c, EventType::NodeDeleted, "/ttl").await;
}

#[tokio::test]
async fn set_watches_catches_up_on_what_changed() {
    let server = TestingServer::start().await.unwrap();
    let mut c = Raw::connect(server.addr()).await;
    let (before, _) = c.call(&create("/sw", 0)).await;
    c.call(&create("/quiet", 0)).await;
    c.call(&Request::SetData(SetDataRequest {
        path: "/sw".into(),
        data: None,
        version: -1,
    }))
    .await;
    let mut fresh = Raw::connect(server.addr()).await;
    let (h, _) = fresh
        .call(&Request::SetWatches(SetWatches {
            relative_zxid: before.zxid,
            data_watches: vec!["/sw".into(), "/gone".into()],
            exist_watches: vec!["/quiet".into()],
            child_watches: vec![],
        }))
        .await;
    assert_eq!(h.err, 0);
    let got: Vec<(i32, &str)> = fresh
        .events
        .iter()
        .map(|e| (e.event_type, e.path.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (EventType::NodeDataChanged as i32, "/sw"),
            (EventType::NodeDeleted as i32, "/gone"),
            (EventType::NodeCreated as i32, "/quiet"),
        ]
    );
}

#[tokio::test]
async fn recursive_watch_sees_descendants_until_removed() {
    let server = TestingServer::start().await.unwrap();
    let mut c = Raw::connect(server.addr()).await;
    c.call(&create("/r", 0)).await;
    let (h, body) = c
        .call(&Request::AddWatch(AddWatchRequest {
            path: "/r".into(),
            mode: 1,
        }))
        .await;
    assert_eq!((h.err, body.as_slice()), (0, &[0u8, 0, 0, 0][..]));
    c.call(&create("/r/a", 0)).await;
    c.call(&create("/r/a/b", 0)).await;
    let types: Vec<i32> = c.events.iter().map(|e| e.event_type).collect();
    assert_eq!(
        types,
        [EventType::NodeCreated as i32; 2],
        "no child events for recursive"
    );
    let (h, _) = c
        .call(&Request::RemoveWatches(corral_proto::WatchesRequest {
            path: "/r".into(),
            watcher_type: 3,
        }))
        .await;
    assert_eq!(h.err, 0);
    c.call(&create("/r/c", 0)).await;
    assert_eq!(c.events.len(), 2);
    let (h, _) = c
        .call(&Request::RemoveWatches(corral_proto::WatchesRequest {
            path: "/r".into(),
            watcher_type: 3,
        }))
        .await;
    assert_eq!(h.err, ErrorCode::NoWatcher.code());
}

#[tokio::test]
async fn multi_is_atomic_with_per_op_results() {
    let server = TestingServer::start().await.unwrap();
    let mut c = Raw::connect(server.addr()).await;
    let ops = vec![
        create("/m1", 0),
        Request::Check(corral_proto::CheckVersionRequest {
            path: "/m1".into(),
            version: 5,
        }),
    ];
    let (h, body) = c.call(&Request::Multi(ops)).await;
    assert_eq!(h.err, 0, "a failed multi still answers err 0");
    let Response::Multi(rs) = Response::decode(OpCode::Multi, &body).unwrap() else {
        panic!()
    };
    assert_eq!(rs, [MultiResult::Error(0), MultiResult::Error(-103)]);
    let (h, _) = c.call(&exists("/m1", false)).await;
    assert_eq!(h.err, ErrorCode::NoNode.code(), "nothing applied");
    let (_, body) = c
        .call(&Request::Multi(vec![create("/m1", 0), create("/m1/x", 0)]))
        .await;
    let Response::Multi(rs) = Response::decode(OpCode::Multi, &body).unwrap() else {
        panic!()
    };
    assert_eq!(
        rs,
        [
            MultiResult::Create("/m1".into()),
            MultiResult::Create("/m1/x".into())
        ]
    );
}

#[tokio::test]
async fn get_ephemerals_and_all_children_number() {
    let server = TestingServer::start().await.unwrap();
    let mut c = Raw::connect(server.addr()).await;
    c.call(&create("/g", 0)).await;
    c.call(&create("/g/e1", 1)).await;
    c.call(&create("/g/p", 0)).await;
    c.call(&create("/g/p/e2", 1)).await;
    let (_, body) = c
        .call(&Request::GetEphemerals(PathRequest {
            path: "/g/p".into(),
        }))
        .await;
    let Response::GetEphemerals(list) = Response::decode(OpCode::GetEphemerals, &body).unwrap()
    else {
        panic!()
    };
    assert_eq!(list, ["/g/p/e2"]);
    let (_, body) = c
        .call(&Request::GetAllChildrenNumber(PathRequest {
            path: "/g".into(),
        }))
        .await;
    assert_eq!(i32::from_bytes(&body).unwrap(), 3);
}

#[tokio::test]
async fn stat_fields_follow_zookeeper() {
    let server = TestingServer::start().await.unwrap();
    let mut c = Raw::connect(server.addr()).await;
    let (h_parent, _) = c.call(&create("/s", 0)).await;
    let (h_child, _) = c.call(&create("/s/c", 0)).await;
    c.call(&Request::Delete(DeleteRequest {
        path: "/s/c".into(),
        version: -1,
    }))
    .await;
    let (h_del, body) = c.call(&exists("/s", false)).await;
    let stat = Stat::from_bytes(&body).unwrap();
    assert_eq!(stat.czxid, h_parent.zxid);
    assert_eq!(stat.cversion, 2, "a create and a delete each bump cversion");
    assert_eq!(stat.pzxid, h_child.zxid + 1, "the delete moved pzxid");
    assert_eq!(stat.num_children, 0);
    assert_eq!(
        h_del.zxid,
        h_child.zxid + 1,
        "a read answers with the last zxid"
    );
}

#[tokio::test]
async fn four_letter_words_honour_the_whitelist() {
    let server = TestingServer::start_with(|c| {
        c.four_letter_whitelist = FourLetterWhitelist::parse("srvr, mntr");
    })
    .await
    .unwrap();
    assert_eq!(
        four_letter(server.addr(), "ruok").await,
        "ruok is not executed because it is not in the whitelist.\n"
    );
    assert!(four_letter(server.addr(), "srvr")
        .await
        .contains("Mode: standalone"));
    assert!(four_letter(server.addr(), "mntr")
        .await
        .contains("zk_znode_count\t5"));
}

#[tokio::test]
async fn watch_events_about_unreadable_nodes_are_not_delivered() {
    let server = TestingServer::start().await.unwrap();
    let mut watcher = Raw::connect(server.addr()).await;
    let (h, _) = watcher
        .call(&Request::AddWatch(AddWatchRequest {
            path: "/".into(),
            mode: 1,
        }))
        .await;
    assert_eq!(h.err, 0);
    let mut owner = Raw::connect(server.addr()).await;
    let auth = corral_proto::AuthPacket {
        auth_type: 0,
        scheme: "digest".into(),
        auth: Some(b"bob:secret".to_vec()),
    };
    let (h, _) = owner.call(&Request::Auth(auth)).await;
    assert_eq!(h.err, 0);
    let secret = Request::Create(CreateRequest {
        path: "/secret".into(),
        data: None,
        acl: Acl::creator_all(),
        flags: 0,
    });
    let (h, _) = owner.call(&secret).await;
    assert_eq!(h.err, 0);
    owner.call(&create("/public", 0)).await;
    owner
        .call(&Request::Delete(DeleteRequest {
            path: "/secret".into(),
            version: -1,
        }))
        .await;
    owner.call(&create("/public2", 0)).await;
    // The public creates are seen; nothing about the node only bob may read, before or after.
    wait_event(&mut watcher, EventType::NodeCreated, "/public2").await;
    assert!(watcher.events.iter().any(|e| e.path == "/public"));
    assert!(
        watcher.events.iter().all(|e| e.path != "/secret"),
        "{:?}",
        watcher.events
    );
}
