//! Totality: decoding never panics, never allocates in proportion to a length prefix it has
//! not yet seen the bytes for, reports truncation as an error (never a wrong value), and
//! reports `Incomplete` only from the framing layer.

mod common;

use common::*;
use corral_proto::frame::frame_len;
use corral_proto::*;
use proptest::collection::vec;
use proptest::prelude::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fmt::Debug;

// ---- allocation tracking -----------------------------------------------------------------

/// The system allocator, recording the largest single allocation made on each thread, so a
/// test can assert that a hostile length prefix did not turn into a huge `with_capacity`.
struct Tracking;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|c| {
        if size > c.get() {
            c.set(size);
        }
    });
}

// A test-only allocator wrapper: every method forwards to `System` unchanged.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded verbatim; the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

/// Runs `f` and returns its result with the largest single allocation it made.
fn largest_allocation<R>(f: impl FnOnce() -> R) -> (R, usize) {
    LARGEST.with(|c| c.set(0));
    let r = f();
    (r, LARGEST.with(|c| c.get()))
}

#[test]
fn allocation_tracker_sees_large_allocations() {
    // Guards the guard: without this, every `largest <= bound` assertion could be vacuous.
    let (v, largest) = largest_allocation(|| Vec::<u8>::with_capacity(1 << 20));
    assert!(v.capacity() >= 1 << 20);
    assert!(largest >= 1 << 20, "tracker saw only {largest} bytes");
    let ((), small) = largest_allocation(|| ());
    assert_eq!(small, 0);
}

/// A generous bound on any single allocation made while decoding `n` input bytes: vectors
/// are pre-sized only up to what the remaining bytes could hold.
fn alloc_bound(n: usize) -> usize {
    16 * n + 4096
}

// ---- helpers -----------------------------------------------------------------------------

/// Opcode values worth trying: every known one, its neighbours and arbitrary integers.
fn opcode_value() -> impl Strategy<Value = i32> {
    let known: Vec<i32> = ALL_OPS.iter().map(|o| *o as i32).collect();
    prop_oneof![
        3 => proptest::sample::select(known),
        1 => -20i32..120,
        1 => any::<i32>(),
    ]
}

fn txn_type_value() -> impl Strategy<Value = i32> {
    prop_oneof![
        3 => proptest::sample::select(vec![1, 2, 5, 7, 13, 14, 15, 19, 20, 21, -1, -10, -11]),
        1 => any::<i32>(),
    ]
}

/// One corruption of a valid encoding.
#[derive(Debug, Clone)]
enum Mutation {
    Truncate(usize),
    Flip(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    /// Overwrite 4 bytes with a hostile int (lengths, counts, opcodes).
    Int(usize, i32),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let hostile = proptest::sample::select(vec![
        -1,
        -2,
        0,
        1,
        14,
        22,
        i32::MAX,
        i32::MIN,
        DEFAULT_MAX_BUFFER as i32,
        2 * DEFAULT_MAX_BUFFER as i32 + 1,
    ]);
    prop_oneof![
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 1u8..).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Remove),
        (any::<usize>(), hostile).prop_map(|(i, v)| Mutation::Int(i, v)),
    ]
}

fn mutate(mut bytes: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for m in muts {
        let n = bytes.len();
        match *m {
            Mutation::Truncate(i) => bytes.truncate(i % (n + 1)),
            Mutation::Flip(i, b) if n > 0 => bytes[i % n] ^= b,
            Mutation::Insert(i, b) => bytes.insert(i % (n + 1), b),
            Mutation::Remove(i) if n > 0 => {
                bytes.remove(i % n);
            }
            Mutation::Int(i, v) if n >= 4 => {
                let at = i % (n - 3);
                bytes[at..at + 4].copy_from_slice(&v.to_be_bytes());
            }
            _ => {}
        }
    }
    bytes
}

/// Decodes arbitrary bytes as a request of opcode `op` and checks what came out: no panic,
/// no `Incomplete`, a bounded allocation, and a value that re-encodes to itself.
fn check_request_decode(op: i32, body: &[u8]) -> Result<(), TestCaseError> {
    let (res, largest) = largest_allocation(|| Request::decode(op, body));
    prop_assert!(
        largest <= alloc_bound(body.len()),
        "allocated {largest} for {} bytes",
        body.len()
    );
    let client_op = OpCode::from_i32(op).filter(|o| {
        !matches!(
            o,
            OpCode::Notification | OpCode::CreateSession | OpCode::Error
        )
    });
    match res {
        Ok(req) => {
            prop_assert!(client_op.is_some(), "decoded {req:?} for op {op}");
            prop_assert_eq!(req.op() as i32, op);
            prop_assert_eq!(Request::decode(op, &req.body_bytes()), Ok(req));
        }
        Err(RequestError::UnknownOp(o)) => {
            prop_assert_eq!(o, op);
            prop_assert!(client_op.is_none(), "op {op} reported unknown");
        }
        Err(RequestError::Decode(DecodeError::Incomplete)) => {
            prop_assert!(false, "Incomplete is for framing only");
        }
        Err(RequestError::Decode(_)) => {}
        Err(RequestError::BadMulti(o)) => {
            prop_assert!(matches!(op, 14 | 22), "BadMulti({o}) outside a multi");
        }
    }
    Ok(())
}

fn check_response_decode(op: OpCode, body: &[u8]) -> Result<(), TestCaseError> {
    let (res, largest) = largest_allocation(|| Response::decode(op, body));
    prop_assert!(
        largest <= alloc_bound(body.len()),
        "allocated {largest} for {} bytes",
        body.len()
    );
    match res {
        Ok(resp) => {
            prop_assert_eq!(Response::decode(op, &response_bytes(&resp)), Ok(resp));
        }
        Err(e) => prop_assert_ne!(e, DecodeError::Incomplete),
    }
    Ok(())
}

fn check_txn_decode(ty: i32, body: &[u8]) -> Result<(), TestCaseError> {
    let (res, largest) = largest_allocation(|| Txn::decode(ty, body));
    prop_assert!(
        largest <= alloc_bound(body.len()),
        "allocated {largest} for {} bytes",
        body.len()
    );
    match res {
        Ok(t) => {
            let expected_type = if ty == 15 { 1 } else { ty };
            prop_assert_eq!(t.txn_type(), expected_type);
            prop_assert_eq!(Txn::decode(ty, &t.body_bytes()), Ok(t));
        }
        Err(e) => prop_assert_ne!(e, DecodeError::Incomplete),
    }
    Ok(())
}

fn check_jute_decode<T: Jute + PartialEq + Debug>(bytes: &[u8]) -> Result<(), TestCaseError> {
    let (res, largest) = largest_allocation(|| T::from_bytes(bytes));
    prop_assert!(
        largest <= alloc_bound(bytes.len()),
        "allocated {largest} for {} bytes",
        bytes.len()
    );
    match res {
        Ok(v) => prop_assert_eq!(T::from_bytes(&v.to_bytes()), Ok(v)),
        Err(e) => prop_assert_ne!(e, DecodeError::Incomplete),
    }
    Ok(())
}

// ---- arbitrary bytes never panic ---------------------------------------------------------

proptest! {
    #[test]
    fn request_decode_is_total_for_any_opcode(op in opcode_value(), body in vec(any::<u8>(), 0..160)) {
        check_request_decode(op, &body)?;
    }

    #[test]
    fn request_decode_is_total_on_corrupted_valid_bodies(
        req in request(),
        other_op in opcode_value(),
        muts in vec(mutation(), 1..4),
    ) {
        let body = mutate(req.body_bytes(), &muts);
        check_request_decode(req.op() as i32, &body)?;
        check_request_decode(other_op, &body)?;
    }

    #[test]
    fn response_decode_is_total_for_every_opcode(
        op in proptest::sample::select(ALL_OPS),
        body in vec(any::<u8>(), 0..160),
    ) {
        check_response_decode(op, &body)?;
    }

    #[test]
    fn response_decode_is_total_on_corrupted_valid_bodies(
        (op, resp) in op_and_response(),
        muts in vec(mutation(), 1..4),
    ) {
        let body = mutate(response_bytes(&resp), &muts);
        check_response_decode(op, &body)?;
    }

    #[test]
    fn txn_decode_is_total(ty in txn_type_value(), body in vec(any::<u8>(), 0..160)) {
        check_txn_decode(ty, &body)?;
    }

    #[test]
    fn txn_decode_is_total_on_corrupted_valid_bodies(t in txn(), muts in vec(mutation(), 1..4)) {
        let body = mutate(t.body_bytes(), &muts);
        check_txn_decode(t.txn_type(), &body)?;
    }

    #[test]
    fn connect_request_decode_is_total(bytes in vec(any::<u8>(), 0..64)) {
        check_jute_decode::<ConnectRequest>(&bytes)?;
    }

    #[test]
    fn connect_response_decode_is_total(bytes in vec(any::<u8>(), 0..64)) {
        check_jute_decode::<ConnectResponse>(&bytes)?;
    }

    #[test]
    fn connect_decode_is_total_on_corrupted_valid_bodies(
        req in connect_request(),
        resp in connect_response(),
        muts in vec(mutation(), 1..4),
    ) {
        check_jute_decode::<ConnectRequest>(&mutate(req.to_bytes(), &muts))?;
        check_jute_decode::<ConnectResponse>(&mutate(resp.to_bytes(), &muts))?;
    }

    #[test]
    fn record_decode_is_total_on_arbitrary_bytes(bytes in vec(any::<u8>(), 0..96)) {
        check_jute_decode::<RequestHeader>(&bytes)?;
        check_jute_decode::<ReplyHeader>(&bytes)?;
        check_jute_decode::<TxnHeader>(&bytes)?;
        check_jute_decode::<WatcherEvent>(&bytes)?;
        check_jute_decode::<MultiHeader>(&bytes)?;
        check_jute_decode::<Stat>(&bytes)?;
        check_jute_decode::<Vec<Acl>>(&bytes)?;
        check_jute_decode::<Vec<ClientInfo>>(&bytes)?;
        check_jute_decode::<SetWatches2>(&bytes)?;
        check_jute_decode::<CreateTtlRequest>(&bytes)?;
        check_jute_decode::<CloseSessionTxn>(&bytes)?;
    }

    /// `frame_len` against its specification, for any bytes and any maximum.
    #[test]
    fn frame_len_matches_its_specification(
        buf in prop_oneof![
            vec(any::<u8>(), 0..12),
            (0i32..40, vec(any::<u8>(), 0..48)).prop_map(|(n, rest)| {
                let mut v = n.to_be_bytes().to_vec();
                v.extend(rest);
                v
            }),
        ],
        max in prop_oneof![Just(DEFAULT_MAX_BUFFER), 0usize..64],
    ) {
        let res = frame_len(&buf, max);
        if buf.len() < 4 {
            prop_assert_eq!(res, Err(DecodeError::Incomplete));
            return Ok(());
        }
        let prefix = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        if prefix < 0 || prefix as usize > max {
            let bad_length = matches!(res, Err(DecodeError::BadLength { len, .. }) if len == i64::from(prefix));
            prop_assert!(bad_length, "{:?}", res);
        } else if buf.len() - 4 < prefix as usize {
            prop_assert_eq!(res, Err(DecodeError::Incomplete));
        } else {
            prop_assert_eq!(res, Ok(prefix as usize));
        }
    }
}

// ---- strict prefixes ---------------------------------------------------------------------

proptest! {
    #[test]
    fn every_strict_prefix_of_a_request_frame_is_incomplete(xid in any::<i32>(), req in request()) {
        let wire = request_frame(xid, &req);
        prop_assert_eq!(frame_len(&wire, DEFAULT_MAX_BUFFER), Ok(wire.len() - 4));
        for n in 0..wire.len() {
            prop_assert_eq!(frame_len(&wire[..n], DEFAULT_MAX_BUFFER), Err(DecodeError::Incomplete), "prefix {}", n);
        }
    }

    #[test]
    fn every_strict_prefix_of_a_reply_frame_is_incomplete((_op, resp) in op_and_response(), hdr in reply_header()) {
        let wire = reply_frame(&hdr, Some(&resp));
        prop_assert_eq!(frame_len(&wire, DEFAULT_MAX_BUFFER), Ok(wire.len() - 4));
        for n in 0..wire.len() {
            prop_assert_eq!(frame_len(&wire[..n], DEFAULT_MAX_BUFFER), Err(DecodeError::Incomplete), "prefix {}", n);
        }
    }

    #[test]
    fn every_strict_prefix_of_a_request_body_is_an_error(req in request()) {
        let body = req.body_bytes();
        for n in 0..body.len() {
            let res = Request::decode(req.op() as i32, &body[..n]);
            let is_decode_error = matches!(
                res,
                Err(RequestError::Decode(ref e)) if *e != DecodeError::Incomplete
            );
            prop_assert!(is_decode_error, "prefix {} of {:?} gave {:?}", n, req, res);
        }
    }

    #[test]
    fn every_strict_prefix_of_a_response_body_is_an_error((op, resp) in op_and_response()) {
        let body = response_bytes(&resp);
        for n in 0..body.len() {
            let res = Response::decode(op, &body[..n]);
            if n == 0 && resp == Response::AddWatch {
                // Documented leniency: a missing addWatch body reads as success.
                prop_assert_eq!(res, Ok(Response::AddWatch));
                continue;
            }
            let is_error = matches!(res, Err(ref e) if *e != DecodeError::Incomplete);
            prop_assert!(is_error, "prefix {} of {:?} gave {:?}", n, resp, res);
        }
    }

    #[test]
    fn every_strict_prefix_of_a_txn_body_is_an_error(t in txn()) {
        let body = t.body_bytes();
        for n in 0..body.len() {
            let res = Txn::decode(t.txn_type(), &body[..n]);
            let is_error = matches!(res, Err(ref e) if *e != DecodeError::Incomplete);
            prop_assert!(is_error, "prefix {} of {:?} gave {:?}", n, t, res);
        }
    }

    #[test]
    fn connect_request_prefixes_are_errors_except_the_old_client_form(c in connect_request()) {
        let bytes = c.to_bytes();
        for n in 0..bytes.len() {
            let res = ConnectRequest::from_bytes(&bytes[..n]);
            if c.read_only.is_some() && n == bytes.len() - 1 {
                // Dropping the optional trailing byte is exactly an old (<= 3.3) client.
                prop_assert_eq!(res, Ok(ConnectRequest { read_only: None, ..c.clone() }));
            } else {
                prop_assert!(res.is_err(), "prefix {} gave {:?}", n, res);
            }
        }
    }

    #[test]
    fn connect_response_prefixes_are_errors_except_the_old_server_form(c in connect_response()) {
        let bytes = c.to_bytes();
        for n in 0..bytes.len() {
            let res = ConnectResponse::from_bytes(&bytes[..n]);
            if c.read_only.is_some() && n == bytes.len() - 1 {
                prop_assert_eq!(res, Ok(ConnectResponse { read_only: None, ..c.clone() }));
            } else {
                prop_assert!(res.is_err(), "prefix {} gave {:?}", n, res);
            }
        }
    }
}

fn check_prefixes<T: Jute + Debug>(x: &T) -> Result<(), TestCaseError> {
    let bytes = x.to_bytes();
    for n in 0..bytes.len() {
        let res = T::from_bytes(&bytes[..n]);
        let is_error = matches!(res, Err(ref e) if *e != DecodeError::Incomplete);
        prop_assert!(is_error, "prefix {} of {:?} gave {:?}", n, x, res);
    }
    Ok(())
}

macro_rules! record_prefixes_are_errors {
    ($($name:ident: $strategy:expr;)*) => {
        proptest! {
            $(
                #[test]
                fn $name(x in $strategy) {
                    check_prefixes(&x)?;
                }
            )*
        }
    };
}

record_prefixes_are_errors! {
    id_prefixes_are_errors: id();
    acl_vector_prefixes_are_errors: acls();
    stat_prefixes_are_errors: stat();
    request_header_prefixes_are_errors: request_header();
    reply_header_prefixes_are_errors: reply_header();
    create_request_prefixes_are_errors: create_request();
    create_ttl_request_prefixes_are_errors: create_ttl_request();
    get_data_response_prefixes_are_errors: get_data_response();
    get_children2_response_prefixes_are_errors: get_children2_response();
    set_watches2_prefixes_are_errors: set_watches2();
    reconfig_request_prefixes_are_errors: reconfig_request();
    watcher_event_prefixes_are_errors: watcher_event();
    multi_header_prefixes_are_errors: multi_header();
    txn_header_prefixes_are_errors: txn_header();
    create_txn_prefixes_are_errors: create_txn();
    close_session_txn_prefixes_are_errors: close_session_txn();
}

// ---- hostile lengths ---------------------------------------------------------------------

const HUGE: [u8; 4] = [0x7f, 0xff, 0xff, 0xff];

fn bytes_of(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn assert_bad_length<T: Debug>(res: Result<T, DecodeError>, len: i64) {
    match res {
        Err(DecodeError::BadLength { len: l, .. }) => assert_eq!(l, len),
        other => panic!("expected BadLength({len}), got {other:?}"),
    }
}

#[test]
fn frame_prefix_above_the_maximum_is_rejected_before_the_body_arrives() {
    assert_bad_length(frame_len(&HUGE, DEFAULT_MAX_BUFFER), 0x7fff_ffff);
    let over = (DEFAULT_MAX_BUFFER as i32 + 1).to_be_bytes();
    assert_bad_length(
        frame_len(&over, DEFAULT_MAX_BUFFER),
        DEFAULT_MAX_BUFFER as i64 + 1,
    );
    let at_max = (DEFAULT_MAX_BUFFER as i32).to_be_bytes();
    assert_eq!(
        frame_len(&at_max, DEFAULT_MAX_BUFFER),
        Err(DecodeError::Incomplete)
    );
    assert_bad_length(frame_len(&[0xff, 0xff, 0xff, 0xfe], DEFAULT_MAX_BUFFER), -2);
    // -1 is not "null" for a frame: it is just negative.
    assert_bad_length(frame_len(&[0xff; 4], DEFAULT_MAX_BUFFER), -1);
}

#[test]
fn field_length_above_the_reader_maximum_is_bad_length_even_if_bytes_are_present() {
    let mut body = 17i32.to_be_bytes().to_vec();
    body.extend([b'x'; 17]);
    assert_bad_length(Reader::with_max_len(&body, 16).buffer("data"), 17);
    assert_bad_length(Reader::with_max_len(&body, 16).ustring("path"), 17);
    assert_eq!(
        Reader::with_max_len(&body, 17).buffer("data").unwrap(),
        Some(vec![b'x'; 17])
    );
    // The default reader allows jute.maxbuffer + extrasize (2 x 0xFFFFF).
    let over = (2 * DEFAULT_MAX_BUFFER as i32 + 1).to_be_bytes();
    assert_bad_length(
        Reader::new(&over).buffer("data"),
        2 * DEFAULT_MAX_BUFFER as i64 + 1,
    );
}

/// Hostile inputs that must fail fast with BadLength and without a large allocation.
fn hostile_requests() -> Vec<(&'static str, i32, Vec<u8>)> {
    let path = bytes_of(&[&[0, 0, 0, 2], b"/a"]);
    vec![
        ("create path length", 1, bytes_of(&[&HUGE, b"/a"])),
        ("create data length", 1, bytes_of(&[&path, &HUGE, &[0; 8]])),
        (
            "create acl count",
            1,
            bytes_of(&[&path, &[0, 0, 0, 0], &HUGE, &[0; 8]]),
        ),
        (
            "setWatches data count",
            101,
            bytes_of(&[&[0; 8], &HUGE, &[0; 8]]),
        ),
        (
            "setWatches2 recursive count",
            105,
            bytes_of(&[&[0; 8], &[0; 16], &HUGE]),
        ),
        ("auth buffer", 100, bytes_of(&[&[0; 4], &[0; 4], &HUGE])),
        ("sasl token", 102, HUGE.to_vec()),
        (
            "create inside multi",
            14,
            bytes_of(&[
                &[0, 0, 0, 1, 0, 0xff, 0xff, 0xff, 0xff],
                &path,
                &[0; 4],
                &HUGE,
            ]),
        ),
    ]
}

#[test]
fn huge_length_or_count_in_a_request_is_bad_length_without_allocating() {
    for (what, op, body) in hostile_requests() {
        let (res, largest) = largest_allocation(|| Request::decode(op, &body));
        assert!(
            matches!(
                res,
                Err(RequestError::Decode(DecodeError::BadLength {
                    len: 0x7fff_ffff,
                    ..
                }))
            ),
            "{what}: {res:?}"
        );
        assert!(largest < 1024, "{what}: allocated {largest} bytes");
    }
}

#[test]
fn huge_count_in_a_response_is_bad_length_without_allocating() {
    let cases: Vec<(OpCode, Vec<u8>)> = vec![
        (OpCode::GetChildren, bytes_of(&[&HUGE, &[0; 4]])),
        (OpCode::GetChildren2, bytes_of(&[&HUGE, &[0; 68]])),
        (OpCode::GetAcl, bytes_of(&[&HUGE, &[0; 68]])),
        (OpCode::GetEphemerals, HUGE.to_vec()),
        (OpCode::WhoAmI, bytes_of(&[&HUGE, &[0; 8]])),
        (OpCode::GetData, bytes_of(&[&HUGE, &[0; 68]])),
        (OpCode::Create, HUGE.to_vec()),
        (
            OpCode::MultiRead,
            bytes_of(&[&[0, 0, 0, 8, 0, 0, 0, 0, 0], &HUGE]),
        ),
    ];
    for (op, body) in cases {
        let (res, largest) = largest_allocation(|| Response::decode(op, &body));
        assert_bad_length(res, 0x7fff_ffff);
        assert!(largest < 1024, "{op:?}: allocated {largest} bytes");
    }
}

#[test]
fn huge_count_in_a_txn_is_bad_length_without_allocating() {
    let cases: Vec<(i32, Vec<u8>)> = vec![
        (14, bytes_of(&[&HUGE, &[0; 8]])),
        (-11, bytes_of(&[&HUGE, &[0; 8]])),
        (1, bytes_of(&[&[0, 0, 0, 0], &[0, 0, 0, 0], &HUGE, &[0; 5]])),
        // A multi whose one sub-txn claims a huge body.
        (14, bytes_of(&[&[0, 0, 0, 1], &[0, 0, 0, 2], &HUGE])),
    ];
    for (ty, body) in cases {
        let (res, largest) = largest_allocation(|| Txn::decode(ty, &body));
        assert_bad_length(res, 0x7fff_ffff);
        assert!(largest < 1024, "type {ty}: allocated {largest} bytes");
    }
}

#[test]
fn count_that_the_remaining_bytes_cannot_hold_is_rejected() {
    // 3 ACLs need at least 36 bytes; only 35 follow.
    let mut body = 3i32.to_be_bytes().to_vec();
    body.extend([0u8; 35]);
    assert!(matches!(
        Vec::<Acl>::from_bytes(&body),
        Err(DecodeError::BadLength { len: 3, .. })
    ));
    // With 36 zero bytes they decode (three ACLs with perms 0 and empty ids).
    body.push(0);
    assert_eq!(Vec::<Acl>::from_bytes(&body).unwrap().len(), 3);
}

// ---- malformed structure -----------------------------------------------------------------

fn multi_body(ops: &[(i32, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (op, body) in ops {
        MultiHeader {
            op: *op,
            done: false,
            err: -1,
        }
        .write(&mut out);
        out.extend(body);
    }
    MULTI_END.write(&mut out);
    out
}

#[test]
fn multi_rejects_reads_nested_multis_and_session_ops() {
    let get = PathWatchRequest {
        path: "/a".into(),
        watch: false,
    }
    .to_bytes();
    for op in [4, 8, 3, 12, 14, 22, 11, 100, -11, 0, -1, 999] {
        let body = multi_body(&[(op, get.clone())]);
        assert_eq!(
            Request::decode(OpCode::Multi as i32, &body),
            Err(RequestError::BadMulti(op)),
            "op {op} inside multi"
        );
    }
}

#[test]
fn multi_read_rejects_writes() {
    let del = DeleteRequest {
        path: "/a".into(),
        version: -1,
    }
    .to_bytes();
    for op in [1, 2, 5, 13, 15, 19, 21, 14, 22, 3] {
        let body = multi_body(&[(op, del.clone())]);
        assert_eq!(
            Request::decode(OpCode::MultiRead as i32, &body),
            Err(RequestError::BadMulti(op)),
            "op {op} inside multiRead"
        );
    }
}

#[test]
fn empty_multi_is_valid() {
    let body = multi_body(&[]);
    assert_eq!(Request::decode(14, &body), Ok(Request::Multi(vec![])));
    assert_eq!(Request::decode(22, &body), Ok(Request::MultiRead(vec![])));
    assert_eq!(
        Response::decode(OpCode::Multi, &body),
        Ok(Response::Multi(vec![]))
    );
}

#[test]
fn unknown_multi_result_type_is_invalid_value() {
    let mut body = MultiHeader {
        op: 7,
        done: false,
        err: 0,
    }
    .to_bytes();
    MULTI_END.write(&mut body);
    assert!(matches!(
        Response::decode(OpCode::Multi, &body),
        Err(DecodeError::InvalidValue { value: 7, .. })
    ));
}

#[test]
fn nested_multi_txn_is_rejected() {
    let inner = Txn::Multi(vec![Txn::Error(0)]);
    let outer = Txn::Multi(vec![inner]);
    assert!(matches!(
        Txn::decode(14, &outer.body_bytes()),
        Err(DecodeError::InvalidValue { value: 14, .. })
    ));
}

#[test]
fn txn_with_trailing_bytes_is_rejected() {
    let mut body = Txn::Delete(DeleteTxn { path: "/a".into() }).body_bytes();
    body.push(0);
    assert!(matches!(
        Txn::decode(2, &body),
        Err(DecodeError::TrailingBytes { extra: 1, .. })
    ));
    // Also inside a multi, where each sub-txn is its own buffer.
    let mut multi = 1i32.to_be_bytes().to_vec();
    multi.extend(2i32.to_be_bytes());
    multi.extend((body.len() as i32).to_be_bytes());
    multi.extend(&body);
    assert!(matches!(
        Txn::decode(14, &multi),
        Err(DecodeError::TrailingBytes { extra: 1, .. })
    ));
}

#[test]
fn opcodes_a_client_may_not_send_are_unknown() {
    for op in [0, -1, -10, 10, 23, 99, 108, i32::MIN, i32::MAX] {
        assert_eq!(
            Request::decode(op, &[]),
            Err(RequestError::UnknownOp(op)),
            "op {op}"
        );
    }
}

#[test]
fn invalid_utf8_in_a_path_is_an_error() {
    let body = [0, 0, 0, 2, b'/', 0xff, 0];
    assert_eq!(
        Request::decode(OpCode::Exists as i32, &body),
        Err(RequestError::Decode(DecodeError::InvalidUtf8 {
            what: "ustring"
        }))
    );
}
