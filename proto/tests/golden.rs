//! Golden byte vectors of ZK-WIRE §17, captured from a stock ZooKeeper 3.8.0 server and the
//! 3.8 Java client. Each vector is decoded into typed values (fields asserted) and the typed
//! values are encoded back to the exact captured bytes, length prefix included.
//!
//! Where the sheet elides a Stat (`<Stat 68 bytes>`) the test supplies plausible values for
//! the unknown fields and keeps every field the sheet does give.

mod common;

use common::{reply_frame, request_frame};
use corral_proto::frame::frame_len;
use corral_proto::*;

/// Hex to bytes; spaces, newlines and `|` separators are ignored.
fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b'|')
        .collect();
    assert!(digits.len() % 2 == 0, "odd number of hex digits in {s:?}");
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

const ZERO16: &str = "00000000000000000000000000000000";
const OPEN_ACL: &str = "00000001 0000001f 00000005 776f726c64 00000006 616e796f6e65";

/// Checks the 4-byte length prefix with `frame_len` and returns the payload.
fn payload(frame: &[u8]) -> &[u8] {
    let n = frame_len(frame, DEFAULT_MAX_BUFFER).expect("complete frame");
    assert_eq!(
        n + 4,
        frame.len(),
        "length prefix covers exactly the payload"
    );
    &frame[4..]
}

/// Decodes a request frame into its header and typed body, and checks that the body was
/// consumed exactly (re-encoding gives the same bytes).
fn decode_request(frame: &[u8]) -> (RequestHeader, Request) {
    let p = payload(frame);
    let mut r = Reader::new(p);
    let h = RequestHeader::read(&mut r).expect("request header");
    let body = r.rest();
    let req = Request::decode(h.op, body).expect("request body");
    assert_eq!(req.op() as i32, h.op);
    assert_eq!(
        req.body_bytes(),
        body,
        "body re-encodes to the captured bytes"
    );
    (h, req)
}

/// Decodes a reply frame answering a request of opcode `op`: the body is present only when
/// `err == 0`.
fn decode_reply(frame: &[u8], op: OpCode) -> (ReplyHeader, Option<Response>) {
    let p = payload(frame);
    let mut r = Reader::new(p);
    let h = ReplyHeader::read(&mut r).expect("reply header");
    if h.err != 0 {
        assert_eq!(r.remaining(), 0, "the server sends no body with an error");
        return (h, None);
    }
    let body = r.rest();
    let resp = Response::decode(op, body).expect("reply body");
    let mut again = Vec::new();
    resp.write(&mut again);
    assert_eq!(again, body, "reply body re-encodes to the captured bytes");
    (h, Some(resp))
}

fn connect_frame(c: &impl Jute) -> Vec<u8> {
    let mut out = Vec::new();
    let at = frame::begin_frame(&mut out);
    c.write(&mut out);
    frame::end_frame(&mut out, at);
    out
}

fn stat_v6() -> Stat {
    Stat {
        czxid: 3,
        mzxid: 3,
        ctime: 0x1a1_ffc7_1944,
        mtime: 0x1a1_ffc7_1944,
        version: 0,
        cversion: 0,
        aversion: 0,
        ephemeral_owner: 0x0100_0003_284e_0000,
        data_length: 0,
        num_children: 0,
        pzxid: 3,
    }
}

/// `/a` after V6: the sheet gives czxid 2, mzxid 2, cversion 1, dataLength 2,
/// numChildren 1, pzxid 3; the times are ours.
fn stat_a() -> Stat {
    Stat {
        czxid: 2,
        mzxid: 2,
        ctime: 0x1a1_ffc7_1900,
        mtime: 0x1a1_ffc7_1900,
        version: 0,
        cversion: 1,
        aversion: 0,
        ephemeral_owner: 0,
        data_length: 2,
        num_children: 1,
        pzxid: 3,
    }
}

const STAT_A_HEX: &str = "0000000000000002 0000000000000002 000001a1ffc71900 000001a1ffc71900 \
                          00000000 00000001 00000000 0000000000000000 00000002 00000001 \
                          0000000000000003";

#[test]
fn stat_is_68_bytes_in_field_order() {
    let bytes = hex(STAT_A_HEX);
    assert_eq!(bytes.len(), 68);
    assert_eq!(Stat::from_bytes(&bytes).unwrap(), stat_a());
    assert_eq!(stat_a().to_bytes(), bytes);
}

// ---- V1–V4: session establishment ------------------------------------------------------

#[test]
fn v1_connect_request_with_read_only_byte() {
    let wire = hex(&format!(
        "0000002d | 00000000 | 0000000000000000 | 00007530 | 0000000000000000 | 00000010 {ZERO16} | 00"
    ));
    let req = ConnectRequest::from_bytes(payload(&wire)).unwrap();
    assert_eq!(
        req,
        ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout_ms: 30_000,
            session_id: 0,
            passwd: vec![0; 16],
            read_only: Some(false),
        }
    );
    assert_eq!(connect_frame(&req), wire);
}

#[test]
fn v2_connect_response_with_read_only_byte() {
    let wire = hex(
        "00000025 | 00000000 | 00007530 | 01000003284e0000 | 00000010 f0bd3133bdb0a8824edad9acce4f6ecc | 00",
    );
    let resp = ConnectResponse::from_bytes(payload(&wire)).unwrap();
    assert_eq!(resp.protocol_version, 0);
    assert_eq!(resp.timeout_ms, 30_000);
    assert_eq!(resp.session_id, 0x0100_0003_284e_0000);
    assert_eq!(resp.passwd, hex("f0bd3133bdb0a8824edad9acce4f6ecc"));
    assert_eq!(resp.read_only, Some(false));
    assert_eq!(connect_frame(&resp), wire);
}

#[test]
fn v3_old_client_connect_without_read_only_gets_response_without_it() {
    let wire = hex(&format!(
        "0000002c 00000000 0000000000000000 00007530 0000000000000000 00000010 {ZERO16}"
    ));
    let req = ConnectRequest::from_bytes(payload(&wire)).unwrap();
    assert_eq!(req.read_only, None);
    assert_eq!(req.timeout_ms, 30_000);
    assert_eq!(req.passwd, vec![0; 16]);
    assert_eq!(connect_frame(&req), wire);

    let wire = hex(
        "00000024 00000000 00007530 01000003284e0001 00000010 03df2b335dfc87c7431d41d8a2d88299",
    );
    let resp = ConnectResponse::from_bytes(payload(&wire)).unwrap();
    assert_eq!(
        resp,
        ConnectResponse {
            protocol_version: 0,
            timeout_ms: 30_000,
            session_id: 0x0100_0003_284e_0001,
            passwd: hex("03df2b335dfc87c7431d41d8a2d88299"),
            read_only: None,
        }
    );
    assert_eq!(connect_frame(&resp), wire);
}

#[test]
fn v4_expired_session_response_has_zero_timeout_and_id() {
    let wire = hex(&format!(
        "00000025 00000000 00000000 0000000000000000 00000010 {ZERO16} 00"
    ));
    let resp = ConnectResponse::from_bytes(payload(&wire)).unwrap();
    assert_eq!(
        resp,
        ConnectResponse {
            protocol_version: 0,
            timeout_ms: 0,
            session_id: 0,
            passwd: vec![0; 16],
            read_only: Some(false),
        }
    );
    assert_eq!(connect_frame(&resp), wire);
}

// ---- V5–V9, V11, V18: single operations -------------------------------------------------

#[test]
fn v5_create_persistent() {
    let wire = hex(&format!(
        "00000033 | 00000001 00000001 | 00000002 2f61 | 00000002 6869 | {OPEN_ACL} | 00000000"
    ));
    let req = Request::Create(CreateRequest {
        path: "/a".into(),
        data: Some(b"hi".to_vec()),
        acl: Acl::open_unsafe(),
        flags: CreateMode::Persistent.flags(),
    });
    let (h, decoded) = decode_request(&wire);
    assert_eq!(h, RequestHeader { xid: 1, op: 1 });
    assert_eq!(decoded, req);
    assert_eq!(request_frame(1, &req), wire);

    let wire = hex("00000016 | 00000001 0000000000000002 00000000 | 00000002 2f61");
    let hdr = ReplyHeader {
        xid: 1,
        zxid: 2,
        err: 0,
    };
    let resp = Response::Create(CreateResponse { path: "/a".into() });
    assert_eq!(
        decode_reply(&wire, OpCode::Create),
        (hdr.clone(), Some(resp.clone()))
    );
    assert_eq!(reply_frame(&hdr, Some(&resp)), wire);
}

#[test]
fn v6_create2_ephemeral_sequential_returns_path_and_stat() {
    let wire = hex(&format!(
        "00000034 | 00000002 0000000f | 00000005 2f612f732d | 00000000 | {OPEN_ACL} | 00000003"
    ));
    let req = Request::Create2(CreateRequest {
        path: "/a/s-".into(),
        data: Some(vec![]),
        acl: Acl::open_unsafe(),
        flags: CreateMode::EphemeralSequential.flags(),
    });
    let (h, decoded) = decode_request(&wire);
    assert_eq!(h, RequestHeader { xid: 2, op: 15 });
    assert_eq!(decoded, req);
    assert_eq!(request_frame(2, &req), wire);

    let wire = hex(
        "00000067 | 00000002 0000000000000003 00000000 | 0000000f 2f612f732d30303030303030303030 |
         0000000000000003 0000000000000003 000001a1ffc71944 000001a1ffc71944 00000000 00000000
         00000000 01000003284e0000 00000000 00000000 0000000000000003",
    );
    let hdr = ReplyHeader {
        xid: 2,
        zxid: 3,
        err: 0,
    };
    let resp = Response::Create2(Create2Response {
        path: "/a/s-0000000000".into(),
        stat: stat_v6(),
    });
    assert_eq!(
        decode_reply(&wire, OpCode::Create2),
        (hdr.clone(), Some(resp.clone()))
    );
    assert_eq!(reply_frame(&hdr, Some(&resp)), wire);
}

#[test]
fn v7_get_data_with_watch() {
    let wire = hex("0000000f 00000003 00000004 00000002 2f61 01");
    let req = Request::GetData(PathWatchRequest {
        path: "/a".into(),
        watch: true,
    });
    let (h, decoded) = decode_request(&wire);
    assert_eq!(h, RequestHeader { xid: 3, op: 4 });
    assert_eq!(decoded, req);
    assert_eq!(request_frame(3, &req), wire);

    let wire = hex(&format!(
        "0000005a 00000003 0000000000000003 00000000 | 00000002 6869 | {STAT_A_HEX}"
    ));
    let hdr = ReplyHeader {
        xid: 3,
        zxid: 3,
        err: 0,
    };
    let resp = Response::GetData(GetDataResponse {
        data: Some(b"hi".to_vec()),
        stat: stat_a(),
    });
    assert_eq!(
        decode_reply(&wire, OpCode::GetData),
        (hdr.clone(), Some(resp.clone()))
    );
    assert_eq!(reply_frame(&hdr, Some(&resp)), wire);
}

#[test]
fn v8_exists_missing_node_is_nonode_without_body() {
    let wire = hex("00000012 00000004 00000003 00000005 2f6e6f7065 01");
    let req = Request::Exists(PathWatchRequest {
        path: "/nope".into(),
        watch: true,
    });
    let (h, decoded) = decode_request(&wire);
    assert_eq!(h, RequestHeader { xid: 4, op: 3 });
    assert_eq!(decoded, req);
    assert_eq!(request_frame(4, &req), wire);

    let wire = hex("00000010 00000004 0000000000000003 ffffff9b");
    let hdr = ReplyHeader {
        xid: 4,
        zxid: 3,
        err: ErrorCode::NoNode as i32,
    };
    assert_eq!(decode_reply(&wire, OpCode::Exists), (hdr.clone(), None));
    assert_eq!(reply_frame(&hdr, None), wire);
}

#[test]
fn v9_ping() {
    let wire = hex("00000008 fffffffe 0000000b");
    let (h, decoded) = decode_request(&wire);
    assert_eq!(
        h,
        RequestHeader {
            xid: XID_PING,
            op: 11
        }
    );
    assert_eq!(decoded, Request::Ping);
    assert_eq!(request_frame(XID_PING, &Request::Ping), wire);

    let wire = hex("00000010 fffffffe 0000000000000003 00000000");
    let hdr = ReplyHeader {
        xid: XID_PING,
        zxid: 3,
        err: 0,
    };
    assert_eq!(
        decode_reply(&wire, OpCode::Ping),
        (hdr.clone(), Some(Response::Empty))
    );
    assert_eq!(reply_frame(&hdr, Some(&Response::Empty)), wire);
}

#[test]
fn v10_notification_node_data_changed() {
    let wire =
        hex("0000001e | ffffffff ffffffffffffffff 00000000 | 00000003 00000003 00000002 2f61");
    let p = payload(&wire);
    let mut r = Reader::new(p);
    let hdr = ReplyHeader::read(&mut r).unwrap();
    assert_eq!(
        hdr,
        ReplyHeader {
            xid: XID_NOTIFICATION,
            zxid: -1,
            err: 0
        }
    );
    let ev = WatcherEvent::read(&mut r).unwrap();
    r.finish("notification").unwrap();
    assert_eq!(
        ev,
        WatcherEvent {
            event_type: EventType::NodeDataChanged as i32,
            state: KeeperState::SyncConnected as i32,
            path: "/a".into(),
        }
    );

    let mut out = Vec::new();
    let at = frame::begin_frame(&mut out);
    hdr.write(&mut out);
    ev.write(&mut out);
    frame::end_frame(&mut out, at);
    assert_eq!(out, wire);
}

#[test]
fn v11_set_data_bad_version_still_consumes_a_zxid() {
    let wire = hex("00000018 00000006 00000005 00000002 2f61 00000002 7633 00000007");
    let req = Request::SetData(SetDataRequest {
        path: "/a".into(),
        data: Some(b"v3".to_vec()),
        version: 7,
    });
    let (h, decoded) = decode_request(&wire);
    assert_eq!(h, RequestHeader { xid: 6, op: 5 });
    assert_eq!(decoded, req);
    assert_eq!(request_frame(6, &req), wire);

    let wire = hex("00000010 00000006 0000000000000005 ffffff99");
    let hdr = ReplyHeader {
        xid: 6,
        zxid: 5,
        err: ErrorCode::BadVersion as i32,
    };
    assert_eq!(decode_reply(&wire, OpCode::SetData), (hdr.clone(), None));
    assert_eq!(reply_frame(&hdr, None), wire);
}

#[test]
fn v18_get_children2_returns_names_and_parent_stat() {
    let wire = hex("0000000f 00000007 0000000c 00000002 2f61 00");
    let req = Request::GetChildren2(PathWatchRequest {
        path: "/a".into(),
        watch: false,
    });
    let (h, decoded) = decode_request(&wire);
    assert_eq!(h, RequestHeader { xid: 7, op: 12 });
    assert_eq!(decoded, req);
    assert_eq!(request_frame(7, &req), wire);

    let wire = hex(&format!(
        "00000068 | 00000007 0000000000000005 00000000 | 00000001 0000000c 732d30303030303030303030 | {STAT_A_HEX}"
    ));
    let hdr = ReplyHeader {
        xid: 7,
        zxid: 5,
        err: 0,
    };
    let resp = Response::GetChildren2(GetChildren2Response {
        children: vec!["s-0000000000".into()],
        stat: stat_a(),
    });
    assert_eq!(
        decode_reply(&wire, OpCode::GetChildren2),
        (hdr.clone(), Some(resp.clone()))
    );
    assert_eq!(reply_frame(&hdr, Some(&resp)), wire);
}

// ---- V12, V13, V19: multi and multiRead -------------------------------------------------

fn multi_v12_v13(check_version: i32) -> Request {
    Request::Multi(vec![
        Request::Create(CreateRequest {
            path: "/m".into(),
            data: Some(vec![]),
            acl: Acl::open_unsafe(),
            flags: 0,
        }),
        Request::Check(CheckVersionRequest {
            path: "/a".into(),
            version: check_version,
        }),
    ])
}

#[test]
fn v12_multi_request_encodes_headers_ops_and_terminator() {
    let wire = hex(&format!(
        "00000056 | 00000008 0000000e |
         00000001 00 ffffffff | 00000002 2f6d 00000000 {OPEN_ACL} 00000000 |
         0000000d 00 ffffffff | 00000002 2f61 00000005 |
         ffffffff 01 ffffffff"
    ));
    let (h, decoded) = decode_request(&wire);
    assert_eq!(h, RequestHeader { xid: 8, op: 14 });
    assert_eq!(decoded, multi_v12_v13(5));
    assert_eq!(request_frame(8, &multi_v12_v13(5)), wire);
}

#[test]
fn v12_failed_multi_reply_has_err_zero_and_per_op_errors() {
    let wire = hex("00000033 | 00000008 0000000000000006 00000000 |
         ffffffff 00 00000000 | 00000000 |
         ffffffff 00 ffffff99 | ffffff99 |
         ffffffff 01 ffffffff");
    let hdr = ReplyHeader {
        xid: 8,
        zxid: 6,
        err: 0,
    };
    let resp = Response::Multi(vec![
        MultiResult::Error(0),
        MultiResult::Error(ErrorCode::BadVersion as i32),
    ]);
    assert_eq!(
        decode_reply(&wire, OpCode::Multi),
        (hdr.clone(), Some(resp.clone()))
    );
    assert_eq!(reply_frame(&hdr, Some(&resp)), wire);
}

#[test]
fn v13_successful_multi_reply() {
    // The request is V12's with check version 1 (xid 9).
    let req_wire = request_frame(9, &multi_v12_v13(1));
    let (h, decoded) = decode_request(&req_wire);
    assert_eq!(h, RequestHeader { xid: 9, op: 14 });
    assert_eq!(decoded, multi_v12_v13(1));
    assert_eq!(req_wire.len(), 4 + 0x56, "same size as V12");

    let wire = hex(
        "00000031 | 00000009 0000000000000007 00000000 | 00000001 00 00000000 | 00000002 2f6d |
         0000000d 00 00000000 | ffffffff 01 ffffffff",
    );
    let hdr = ReplyHeader {
        xid: 9,
        zxid: 7,
        err: 0,
    };
    let resp = Response::Multi(vec![MultiResult::Create("/m".into()), MultiResult::Check]);
    assert_eq!(
        decode_reply(&wire, OpCode::Multi),
        (hdr.clone(), Some(resp.clone()))
    );
    assert_eq!(reply_frame(&hdr, Some(&resp)), wire);
}

#[test]
fn v19_multi_read_request_and_reply() {
    let req = Request::MultiRead(vec![
        Request::GetData(PathWatchRequest {
            path: "/cont".into(),
            watch: false,
        }),
        Request::GetChildren(PathWatchRequest {
            path: "/nonexist".into(),
            watch: false,
        }),
    ]);
    // Request bytes are not in the capture; they follow §8.1 (op 22, MultiHeader err -1).
    let req_wire = hex("0000003b | 0000000a 00000016 |
         00000004 00 ffffffff | 00000005 2f636f6e74 00 |
         00000008 00 ffffffff | 00000009 2f6e6f6e6578697374 00 |
         ffffffff 01 ffffffff");
    let (h, decoded) = decode_request(&req_wire);
    assert_eq!(h, RequestHeader { xid: 10, op: 22 });
    assert_eq!(decoded, req);
    assert_eq!(request_frame(10, &req), req_wire);

    let body = hex(&format!(
        "00000004 00 00000000 | 00000000 {STAT_A_HEX} | ffffffff 00 ffffff9b | ffffff9b | ffffffff 01 ffffffff"
    ));
    let resp = Response::Multi(vec![
        MultiResult::GetData(GetDataResponse {
            data: Some(vec![]),
            stat: stat_a(),
        }),
        MultiResult::Error(ErrorCode::NoNode as i32),
    ]);
    assert_eq!(Response::decode(OpCode::MultiRead, &body).unwrap(), resp);
    assert_eq!(common::response_bytes(&resp), body);
}

// ---- V14–V17: auth, whoAmI, addWatch, setWatches2 ----------------------------------------

#[test]
fn v14_auth_digest() {
    let wire = hex(
        "00000024 | fffffffc 00000064 | 00000000 | 00000006 646967657374 | 0000000a 626f623a736563726574",
    );
    let req = Request::Auth(AuthPacket {
        auth_type: 0,
        scheme: "digest".into(),
        auth: Some(b"bob:secret".to_vec()),
    });
    let (h, decoded) = decode_request(&wire);
    assert_eq!(
        h,
        RequestHeader {
            xid: XID_AUTH,
            op: 100
        }
    );
    assert_eq!(decoded, req);
    assert_eq!(request_frame(XID_AUTH, &req), wire);

    let wire = hex("00000010 fffffffc 0000000000000000 00000000");
    let hdr = ReplyHeader {
        xid: XID_AUTH,
        zxid: 0,
        err: 0,
    };
    assert_eq!(
        decode_reply(&wire, OpCode::Auth),
        (hdr.clone(), Some(Response::Empty))
    );
    assert_eq!(reply_frame(&hdr, Some(&Response::Empty)), wire);
}

#[test]
fn v15_who_am_i() {
    let wire = hex("00000008 0000000b 0000006b");
    let (h, decoded) = decode_request(&wire);
    assert_eq!(h, RequestHeader { xid: 11, op: 107 });
    assert_eq!(decoded, Request::WhoAmI);
    assert_eq!(request_frame(11, &Request::WhoAmI), wire);

    let wire = hex("00000038 | 0000000b 0000000000000007 00000000 | 00000002 |
         00000006 646967657374 00000003 626f62 | 00000002 6970 00000009 3132372e302e302e31");
    let hdr = ReplyHeader {
        xid: 11,
        zxid: 7,
        err: 0,
    };
    let resp = Response::WhoAmI(vec![
        ClientInfo {
            auth_scheme: "digest".into(),
            user: "bob".into(),
        },
        ClientInfo {
            auth_scheme: "ip".into(),
            user: "127.0.0.1".into(),
        },
    ]);
    assert_eq!(
        decode_reply(&wire, OpCode::WhoAmI),
        (hdr.clone(), Some(resp.clone()))
    );
    assert_eq!(reply_frame(&hdr, Some(&resp)), wire);
}

#[test]
fn v16_add_watch_reply_has_a_four_byte_body() {
    let wire = hex("00000012 0000000c 0000006a 00000002 2f61 00000001");
    let req = Request::AddWatch(AddWatchRequest {
        path: "/a".into(),
        mode: AddWatchMode::PersistentRecursive as i32,
    });
    let (h, decoded) = decode_request(&wire);
    assert_eq!(h, RequestHeader { xid: 12, op: 106 });
    assert_eq!(decoded, req);
    assert_eq!(request_frame(12, &req), wire);

    let wire = hex("00000014 0000000c 0000000000000007 00000000 | 00000000");
    let hdr = ReplyHeader {
        xid: 12,
        zxid: 7,
        err: 0,
    };
    assert_eq!(
        decode_reply(&wire, OpCode::AddWatch),
        (hdr.clone(), Some(Response::AddWatch))
    );
    assert_eq!(reply_frame(&hdr, Some(&Response::AddWatch)), wire);
    assert_eq!(common::response_bytes(&Response::AddWatch), [0, 0, 0, 0]);
}

#[test]
fn v17_set_watches2_from_the_java_client_uses_a_normal_xid() {
    let wire = hex(
        "0000004a | 00000004 00000069 | 000000000000002e | 00000001 00000009 2f6a61766174657374 |
         00000001 00000008 2f6e6f7468657265 | 00000000 | 00000000 | 00000001 00000009 2f6a61766174657374",
    );
    let req = Request::SetWatches2(SetWatches2 {
        relative_zxid: 0x2e,
        data_watches: vec!["/javatest".into()],
        exist_watches: vec!["/nothere".into()],
        child_watches: vec![],
        persistent_watches: vec![],
        persistent_recursive_watches: vec!["/javatest".into()],
    });
    let (h, decoded) = decode_request(&wire);
    assert_eq!(h, RequestHeader { xid: 4, op: 105 });
    assert_eq!(decoded, req);
    assert_eq!(request_frame(4, &req), wire);

    let wire = hex("00000010 00000004 000000000000002e 00000000");
    let hdr = ReplyHeader {
        xid: 4,
        zxid: 0x2e,
        err: 0,
    };
    assert_eq!(
        decode_reply(&wire, OpCode::SetWatches2),
        (hdr.clone(), Some(Response::Empty))
    );
    assert_eq!(reply_frame(&hdr, Some(&Response::Empty)), wire);
}

// ---- V20, V21 ---------------------------------------------------------------------------

#[test]
fn v20_close_session() {
    let wire = hex("00000008 00000006 fffffff5");
    let (h, decoded) = decode_request(&wire);
    assert_eq!(h, RequestHeader { xid: 6, op: -11 });
    assert_eq!(decoded, Request::CloseSession);
    assert_eq!(request_frame(6, &Request::CloseSession), wire);

    let wire = hex("00000010 00000006 0000000000000030 00000000");
    let hdr = ReplyHeader {
        xid: 6,
        zxid: 0x30,
        err: 0,
    };
    assert_eq!(
        decode_reply(&wire, OpCode::CloseSession),
        (hdr.clone(), Some(Response::Empty))
    );
    assert_eq!(reply_frame(&hdr, Some(&Response::Empty)), wire);
}

#[test]
fn v21_four_letter_word_is_not_a_valid_frame_prefix() {
    // "ruok" read as a length prefix is 0x72756f6b, far above jute.maxbuffer, so a server
    // that checks four-letter words first can never confuse one with a frame.
    let ruok = hex("72756f6b");
    assert_eq!(ruok, b"ruok");
    assert!(matches!(
        frame_len(&ruok, DEFAULT_MAX_BUFFER),
        Err(DecodeError::BadLength {
            len: 0x7275_6f6b,
            ..
        })
    ));
}

#[test]
fn pipelined_frames_split_at_their_length_prefixes() {
    // V9 ping then V15 whoAmI then V8 exists, back to back in one read buffer.
    let mut buf = hex("00000008 fffffffe 0000000b");
    buf.extend(hex("00000008 0000000b 0000006b"));
    buf.extend(hex("00000012 00000004 00000003 00000005 2f6e6f7065 01"));
    let mut ops = Vec::new();
    let mut rest = &buf[..];
    while !rest.is_empty() {
        let n = frame_len(rest, DEFAULT_MAX_BUFFER).unwrap();
        let (_, req) = decode_request(&rest[..4 + n]);
        ops.push(req.op());
        rest = &rest[4 + n..];
    }
    assert_eq!(ops, [OpCode::Ping, OpCode::WhoAmI, OpCode::Exists]);
}
