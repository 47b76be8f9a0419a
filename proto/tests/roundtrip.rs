//! Round-trip properties: for every record, request, response, multi result and transaction,
//! decoding the encoding gives the value back, the encoding is self-delimiting (two values
//! written back to back read back in order), and whole frames survive the trip.

mod common;

use common::*;
use corral_proto::frame::frame_len;
use corral_proto::*;
use proptest::collection::vec;
use proptest::prelude::*;
use std::fmt::Debug;

/// `from_bytes(to_bytes(x)) == x`, the encoding is at least `MIN_BYTES` long, and `x` then
/// `y` written back to back read back as `x` then `y` with nothing left over.
fn check_record<T: Jute + PartialEq + Debug>(x: &T, y: &T) -> Result<(), TestCaseError> {
    let bytes = x.to_bytes();
    prop_assert!(
        bytes.len() >= T::MIN_BYTES,
        "{} < MIN_BYTES {}",
        bytes.len(),
        T::MIN_BYTES
    );
    prop_assert_eq!(&T::from_bytes(&bytes).unwrap(), x);

    let mut both = bytes.clone();
    y.write(&mut both);
    let mut r = Reader::new(&both);
    prop_assert_eq!(&T::read(&mut r).unwrap(), x);
    prop_assert_eq!(r.position(), bytes.len());
    prop_assert_eq!(&T::read(&mut r).unwrap(), y);
    prop_assert_eq!(r.remaining(), 0);
    Ok(())
}

macro_rules! record_round_trips {
    ($($name:ident: $strategy:expr;)*) => {
        proptest! {
            $(
                #[test]
                fn $name(x in $strategy, y in $strategy) {
                    check_record(&x, &y)?;
                }
            )*
        }
    };
}

record_round_trips! {
    id_round_trips: id();
    acl_round_trips: acl();
    acl_vector_round_trips: acls();
    client_info_round_trips: client_info();
    stat_round_trips: stat();
    request_header_round_trips: request_header();
    reply_header_round_trips: reply_header();
    create_request_round_trips: create_request();
    create_ttl_request_round_trips: create_ttl_request();
    create_response_round_trips: create_response();
    create2_response_round_trips: create2_response();
    delete_request_round_trips: delete_request();
    path_watch_request_round_trips: path_watch_request();
    get_data_response_round_trips: get_data_response();
    set_data_request_round_trips: set_data_request();
    path_request_round_trips: path_request();
    get_acl_response_round_trips: get_acl_response();
    set_acl_request_round_trips: set_acl_request();
    get_children_response_round_trips: get_children_response();
    get_children2_response_round_trips: get_children2_response();
    check_version_request_round_trips: check_version_request();
    auth_packet_round_trips: auth_packet();
    set_watches_round_trips: set_watches();
    set_watches2_round_trips: set_watches2();
    add_watch_request_round_trips: add_watch_request();
    watches_request_round_trips: watches_request();
    reconfig_request_round_trips: reconfig_request();
    watcher_event_round_trips: watcher_event();
    multi_header_round_trips: multi_header();
    sasl_token_round_trips: sasl_token();
    txn_header_round_trips: txn_header();
    create_txn_round_trips: create_txn();
    create_container_txn_round_trips: create_container_txn();
    create_ttl_txn_round_trips: create_ttl_txn();
    delete_txn_round_trips: delete_txn();
    set_data_txn_round_trips: set_data_txn();
    set_acl_txn_round_trips: set_acl_txn();
    check_version_txn_round_trips: check_version_txn();
    create_session_txn_round_trips: create_session_txn();
    close_session_txn_round_trips: close_session_txn();
    buffer_round_trips_keeping_null_apart_from_empty: buffer();
    string_vector_round_trips: strings();
}

proptest! {
    #[test]
    fn stat_is_always_68_bytes(s in stat()) {
        prop_assert_eq!(s.to_bytes().len(), 68);
        prop_assert_eq!(<Stat as Jute>::MIN_BYTES, 68);
    }

    #[test]
    fn connect_request_round_trips_with_and_without_read_only(c in connect_request()) {
        let bytes = c.to_bytes();
        let ro = usize::from(c.read_only.is_some());
        prop_assert_eq!(bytes.len(), 28 + c.passwd.len() + ro);
        prop_assert_eq!(ConnectRequest::from_bytes(&bytes).unwrap(), c.clone());
        // In a frame, the length prefix is what tells an old client's request apart.
        let mut framed = Vec::new();
        let at = frame::begin_frame(&mut framed);
        c.write(&mut framed);
        frame::end_frame(&mut framed, at);
        let n = frame_len(&framed, DEFAULT_MAX_BUFFER).unwrap();
        prop_assert_eq!(ConnectRequest::from_bytes(&framed[4..4 + n]).unwrap(), c);
    }

    #[test]
    fn connect_response_round_trips_with_and_without_read_only(c in connect_response()) {
        let bytes = c.to_bytes();
        let ro = usize::from(c.read_only.is_some());
        prop_assert_eq!(bytes.len(), 20 + c.passwd.len() + ro);
        prop_assert_eq!(ConnectResponse::from_bytes(&bytes).unwrap(), c);
    }

    #[test]
    fn request_round_trips_for_its_opcode(req in request()) {
        let _ = request_variant(&req);
        let body = req.body_bytes();
        prop_assert_eq!(Request::decode(req.op() as i32, &body), Ok(req.clone()));
    }

    #[test]
    fn request_frame_round_trips(xid in any::<i32>(), req in request()) {
        let wire = request_frame(xid, &req);
        let n = frame_len(&wire, DEFAULT_MAX_BUFFER).unwrap();
        prop_assert_eq!(n + 4, wire.len());
        let mut r = Reader::new(&wire[4..]);
        let h = RequestHeader::read(&mut r).unwrap();
        prop_assert_eq!(h.clone(), RequestHeader { xid, op: req.op() as i32 });
        prop_assert_eq!(Request::decode(h.op, r.rest()), Ok(req));
    }

    #[test]
    fn multi_round_trips_every_allowed_write_op(ops in vec(multi_op(), 0..8)) {
        let req = Request::Multi(ops);
        let body = req.body_bytes();
        // The body always ends with the terminator {-1, true, -1}.
        prop_assert_eq!(&body[body.len() - 9..], &MULTI_END.to_bytes()[..]);
        prop_assert_eq!(Request::decode(OpCode::Multi as i32, &body), Ok(req));
    }

    #[test]
    fn multi_read_round_trips_get_data_and_get_children(ops in vec(multi_read_op(), 0..8)) {
        let req = Request::MultiRead(ops);
        let body = req.body_bytes();
        prop_assert_eq!(Request::decode(OpCode::MultiRead as i32, &body), Ok(req));
    }

    #[test]
    fn response_round_trips_for_its_opcode((op, resp) in op_and_response()) {
        let _ = response_variant(&resp);
        let body = response_bytes(&resp);
        prop_assert_eq!(Response::decode(op, &body), Ok(resp));
    }

    #[test]
    fn reply_frame_round_trips((op, resp) in op_and_response(), xid in any::<i32>(), zxid in any::<i64>()) {
        let hdr = ReplyHeader { xid, zxid, err: 0 };
        let wire = reply_frame(&hdr, Some(&resp));
        let n = frame_len(&wire, DEFAULT_MAX_BUFFER).unwrap();
        prop_assert_eq!(n + 4, wire.len());
        let mut r = Reader::new(&wire[4..]);
        prop_assert_eq!(ReplyHeader::read(&mut r).unwrap(), hdr);
        prop_assert_eq!(Response::decode(op, r.rest()), Ok(resp));
    }

    #[test]
    fn multi_results_round_trip_in_multi_and_multi_read(
        results in vec(multi_result(), 0..8),
        read in any::<bool>(),
    ) {
        for r in &results {
            let _ = multi_result_variant(r);
        }
        let op = if read { OpCode::MultiRead } else { OpCode::Multi };
        let resp = Response::Multi(results);
        let body = response_bytes(&resp);
        prop_assert_eq!(&body[body.len() - 9..], &MULTI_END.to_bytes()[..]);
        prop_assert_eq!(Response::decode(op, &body), Ok(resp));
    }

    #[test]
    fn multi_error_result_repeats_its_code_in_header_and_body(code in any::<i32>()) {
        let body = response_bytes(&Response::Multi(vec![MultiResult::Error(code)]));
        let mut r = Reader::new(&body);
        let h = MultiHeader::read(&mut r).unwrap();
        prop_assert_eq!(h, MultiHeader { op: -1, done: false, err: code });
        prop_assert_eq!(r.i32("err").unwrap(), code);
    }

    #[test]
    fn txn_round_trips_for_its_type(t in txn()) {
        let _ = txn_variant(&t);
        prop_assert_eq!(Txn::decode(t.txn_type(), &t.body_bytes()), Ok(t));
    }

    #[test]
    fn multi_txn_round_trips(ts in vec(single_txn(), 0..8)) {
        let t = Txn::Multi(ts);
        prop_assert_eq!(t.txn_type(), 14);
        prop_assert_eq!(Txn::decode(14, &t.body_bytes()), Ok(t));
    }

    #[test]
    fn txn_header_and_body_round_trip_as_a_log_entry(mut h in txn_header(), t in txn()) {
        h.txn_type = t.txn_type();
        let mut entry = h.to_bytes();
        t.write_body(&mut entry);
        let mut r = Reader::new(&entry);
        let h2 = TxnHeader::read(&mut r).unwrap();
        prop_assert_eq!(&h2, &h);
        prop_assert_eq!(Txn::decode(h2.txn_type, r.rest()), Ok(t));
    }
}

#[test]
fn create2_container_and_ttl_results_decode_as_create2() {
    // The server writes type 15 for all three; a peer writing 19 or 21 still decodes.
    let c = Create2Response {
        path: "/c".into(),
        stat: Stat::default(),
    };
    for ty in [15i32, 19, 21] {
        let mut body = MultiHeader {
            op: ty,
            done: false,
            err: 0,
        }
        .to_bytes();
        c.write(&mut body);
        MULTI_END.write(&mut body);
        assert_eq!(
            Response::decode(OpCode::Multi, &body),
            Ok(Response::Multi(vec![MultiResult::Create2(c.clone())])),
            "type {ty}"
        );
    }
}

#[test]
fn create2_txn_type_decodes_as_create() {
    let t = CreateTxn {
        path: "/x".into(),
        data: None,
        acl: Acl::open_unsafe(),
        ephemeral: true,
        parent_cversion: 4,
    };
    assert_eq!(Txn::decode(15, &t.to_bytes()), Ok(Txn::Create(t)));
}

#[test]
fn null_string_and_null_vector_decode_as_empty() {
    // Readers accept -1 anywhere a string or vector may appear (ZK-WIRE §2).
    assert_eq!(String::from_bytes(&[0xff; 4]).unwrap(), "");
    assert_eq!(
        Vec::<String>::from_bytes(&[0xff; 4]).unwrap(),
        Vec::<String>::new()
    );
    let body = [0xff, 0xff, 0xff, 0xff, 1];
    assert_eq!(
        Request::decode(OpCode::Exists as i32, &body),
        Ok(Request::Exists(PathWatchRequest {
            path: String::new(),
            watch: true
        }))
    );
}

#[test]
fn any_non_zero_boolean_byte_is_true() {
    for b in [1u8, 2, 0x80, 0xff] {
        assert!(bool::from_bytes(&[b]).unwrap(), "{b}");
    }
    assert!(!bool::from_bytes(&[0]).unwrap());
}
