//! Bad input gets a clear error or a closed connection, never a panic or a hang, and other
//! sessions carry on.

mod common;

use common::{closed_by_server, four_letter, frame, Raw};
use corral_proto::{
    Acl, ConnectRequest, CreateRequest, ErrorCode, Jute, PathWatchRequest, Request, RequestHeader,
};
use corral_server::testing::TestingServer;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn create(path: &str) -> Request {
    Request::Create(CreateRequest {
        path: path.into(),
        data: Some(b"x".to_vec()),
        acl: Acl::open_unsafe(),
        flags: 0,
    })
}

#[tokio::test]
async fn oversized_frame_closes_only_that_connection() {
    let server = TestingServer::start().await.unwrap();
    let mut bystander = Raw::connect(server.addr()).await;
    let mut bad = Raw::connect(server.addr()).await;
    // A length prefix just above jute.maxbuffer; the body never needs to arrive.
    let len = (corral_proto::DEFAULT_MAX_BUFFER as i32 + 1).to_be_bytes();
    bad.stream.write_all(&len).await.unwrap();
    assert!(closed_by_server(&mut bad.stream).await);
    assert!(bystander.ping().await, "other sessions are unaffected");
    let (h, _) = bystander.call(&create("/still-works")).await;
    assert_eq!(h.err, 0);
}

#[tokio::test]
async fn negative_length_and_short_header_close_the_connection() {
    let server = TestingServer::start().await.unwrap();
    let mut a = Raw::connect(server.addr()).await;
    a.stream.write_all(&(-5i32).to_be_bytes()).await.unwrap();
    assert!(closed_by_server(&mut a.stream).await);
    let mut b = Raw::connect(server.addr()).await;
    b.stream
        .write_all(&frame(|v| v.extend_from_slice(&[0, 0, 0])))
        .await
        .unwrap();
    assert!(closed_by_server(&mut b.stream).await);
    assert_eq!(four_letter(server.addr(), "ruok").await, "imok");
}

#[tokio::test]
async fn malformed_body_closes_the_connection_and_applies_nothing() {
    let server = TestingServer::start().await.unwrap();
    let mut bad = Raw::connect(server.addr()).await;
    // A create whose path claims 100 bytes but carries 3.
    let bytes = frame(|v| {
        RequestHeader { xid: 1, op: 1 }.write(v);
        v.extend_from_slice(&100i32.to_be_bytes());
        v.extend_from_slice(b"/ab");
    });
    bad.stream.write_all(&bytes).await.unwrap();
    assert!(closed_by_server(&mut bad.stream).await);
    let mut c = Raw::connect(server.addr()).await;
    let (h, _) = c
        .call(&Request::Exists(PathWatchRequest {
            path: "/ab".into(),
            watch: false,
        }))
        .await;
    assert_eq!(h.err, ErrorCode::NoNode.code());
}

#[tokio::test]
async fn malformed_connect_request_is_closed_without_a_session() {
    let server = TestingServer::start().await.unwrap();
    let mut s = TcpStream::connect(server.addr()).await.unwrap();
    s.write_all(&frame(|v| v.extend_from_slice(&[0, 0, 0, 0, 1])))
        .await
        .unwrap();
    assert!(closed_by_server(&mut s).await);
    let stat = four_letter(server.addr(), "mntr").await;
    assert!(stat.contains("zk_global_sessions\t0"), "{stat}");
}

#[tokio::test]
async fn unknown_opcode_is_unimplemented_then_closed_like_zookeeper() {
    let server = TestingServer::start().await.unwrap();
    let mut bystander = Raw::connect(server.addr()).await;
    let mut c = Raw::connect(server.addr()).await;
    let bytes = frame(|v| RequestHeader { xid: 77, op: 999 }.write(v));
    c.stream.write_all(&bytes).await.unwrap();
    let (h, _) = c.reply().await.unwrap();
    assert_eq!(
        (h.xid, h.zxid, h.err),
        (77, -1, ErrorCode::Unimplemented.code())
    );
    assert!(closed_by_server(&mut c.stream).await);
    assert!(bystander.ping().await);
}

#[tokio::test]
async fn bad_paths_are_bad_arguments() {
    let server = TestingServer::start().await.unwrap();
    let mut c = Raw::connect(server.addr()).await;
    c.call(&create("/a")).await;
    for p in ["/a/", "/a/.", "/a/..", "/a/\u{1}", "/a/b\u{7f}", "noslash"] {
        let (h, _) = c.call(&create(p)).await;
        assert_eq!(h.err, ErrorCode::BadArguments.code(), "{p:?}");
    }
    // The parent is looked up first, as in ZooKeeper: "/a//b" has the parent "/a/".
    for p in ["/missing/", "/a//b", "/a/./b"] {
        let (h, _) = c.call(&create(p)).await;
        assert_eq!(h.err, ErrorCode::NoNode.code(), "{p:?}");
    }
}

#[tokio::test]
async fn client_that_has_seen_the_future_is_turned_away() {
    let server = TestingServer::start().await.unwrap();
    let req = ConnectRequest {
        last_zxid_seen: 1 << 40,
        timeout_ms: 30_000,
        passwd: vec![0; 16],
        read_only: Some(false),
        ..Default::default()
    };
    assert!(Raw::connect_with(server.addr(), req).await.is_none());
}

#[tokio::test]
async fn wrong_password_gets_no_session() {
    let server = TestingServer::start().await.unwrap();
    let good = Raw::connect(server.addr()).await;
    let req = ConnectRequest {
        session_id: good.session.session_id,
        timeout_ms: 30_000,
        passwd: vec![7; 16],
        read_only: Some(false),
        ..Default::default()
    };
    let mut bad = Raw::connect_with(server.addr(), req)
        .await
        .expect("an answer");
    assert_eq!(bad.session.timeout_ms, 0);
    assert_eq!(bad.session.session_id, 0);
    assert!(closed_by_server(&mut bad.stream).await);
}

#[tokio::test]
async fn connections_per_address_are_capped() {
    let server = TestingServer::start_with(|c| c.max_client_cnxns = 2)
        .await
        .unwrap();
    let mut a = Raw::connect(server.addr()).await;
    let _b = Raw::connect(server.addr()).await;
    let mut third = TcpStream::connect(server.addr()).await.unwrap();
    assert!(closed_by_server(&mut third).await);
    assert!(a.ping().await);
}

/// Random frame sequences on one connection never take the server down.
#[tokio::test]
async fn random_frame_sequences_never_hurt_the_server() {
    let server = TestingServer::start().await.unwrap();
    let mut bystander = Raw::connect(server.addr()).await;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for round in 0..150 {
        let mut c = Raw::connect(server.addr()).await;
        let mut bytes = Vec::new();
        for _ in 0..(next() % 6 + 1) {
            let op = [1, 2, 3, 4, 5, 8, 12, 14, 15, 19, 21, 22, 101, 105, 106, 999]
                [(next() % 16) as usize];
            let body_len = (next() % 48) as usize;
            let body: Vec<u8> = (0..body_len).map(|_| next() as u8).collect();
            bytes.extend(frame(|v| {
                RequestHeader { xid: 1, op }.write(v);
                v.extend_from_slice(&body);
            }));
        }
        c.stream.write_all(&bytes).await.unwrap();
        let _ = c.stream.shutdown().await;
        assert!(
            closed_by_server(&mut c.stream).await,
            "round {round}: connection ended"
        );
    }
    assert!(bystander.ping().await);
    assert_eq!(four_letter(server.addr(), "ruok").await, "imok");
}
