//! Splits arbitrary bytes into frames the way a connection's read loop does and decodes each
//! one every way the server or client could: ConnectRequest (first frame), RequestHeader +
//! Request, and the reply body a client would expect for that opcode. Whatever decodes must
//! re-encode to something that decodes to the same value.
#![no_main]

use corral_proto::frame::{begin_frame, end_frame, frame_len};
use corral_proto::{
    ConnectRequest, ConnectResponse, DecodeError, Jute, OpCode, Reader, ReplyHeader, Request,
    RequestHeader, Response, DEFAULT_MAX_BUFFER,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    let mut first = true;
    loop {
        let n = match frame_len(rest, DEFAULT_MAX_BUFFER) {
            Ok(n) => n,
            // Need more bytes: a real connection would wait; the input is over.
            Err(DecodeError::Incomplete) => {
                assert!(rest.len() < 4 || frame_prefix(rest) as usize > rest.len() - 4);
                break;
            }
            // A bad length closes the connection.
            Err(DecodeError::BadLength { len, .. }) => {
                assert!(len < 0 || len as usize > DEFAULT_MAX_BUFFER);
                break;
            }
            Err(e) => panic!("frame_len returned {e:?}"),
        };
        assert!(n <= DEFAULT_MAX_BUFFER && 4 + n <= rest.len());
        let payload = &rest[4..4 + n];
        if first {
            connect(payload);
            first = false;
        }
        request(payload);
        reply(payload);
        rest = &rest[4 + n..];
    }
});

fn frame_prefix(buf: &[u8]) -> i32 {
    i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]])
}

fn connect(payload: &[u8]) {
    if let Ok(c) = ConnectRequest::from_bytes(payload) {
        assert_eq!(ConnectRequest::from_bytes(&c.to_bytes()), Ok(c));
    }
    if let Ok(c) = ConnectResponse::from_bytes(payload) {
        assert_eq!(ConnectResponse::from_bytes(&c.to_bytes()), Ok(c));
    }
}

/// RequestHeader + Request, then the whole frame re-encoded and decoded again.
fn request(payload: &[u8]) {
    let mut r = Reader::new(payload);
    let Ok(h) = RequestHeader::read(&mut r) else {
        return;
    };
    let Ok(req) = Request::decode(h.op, r.rest()) else {
        return;
    };
    assert_eq!(req.op() as i32, h.op);

    let mut frame = Vec::new();
    let at = begin_frame(&mut frame);
    h.write(&mut frame);
    req.write_body(&mut frame);
    end_frame(&mut frame, at);

    let n = frame_len(&frame, usize::MAX).expect("re-encoded frame is complete");
    assert_eq!(n + 4, frame.len());
    let mut r = Reader::new(&frame[4..]);
    let h2 = RequestHeader::read(&mut r).expect("re-encoded header");
    assert_eq!(h2, h);
    assert_eq!(Request::decode(h2.op, r.rest()), Ok(req));
}

/// The same payload seen by a client: ReplyHeader + the body for the opcode it carries in
/// its first bytes (an arbitrary but deterministic choice that reaches every decoder).
fn reply(payload: &[u8]) {
    let mut r = Reader::new(payload);
    let Ok(h) = ReplyHeader::read(&mut r) else {
        return;
    };
    let Some(op) = OpCode::from_i32(h.xid) else {
        return;
    };
    if let Ok(resp) = Response::decode(op, r.rest()) {
        let mut body = Vec::new();
        resp.write(&mut body);
        assert_eq!(Response::decode(op, &body), Ok(resp));
    }
}
