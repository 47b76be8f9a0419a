//! corral-proto: Apache ZooKeeper's wire protocol as Rust types.
//!
//! The Jute binary codec, every client-protocol record, the transaction records the server
//! logs, opcodes, error codes, framing and path rules. Pure: no IO, no async, no clocks.
//! Shared by the server and the client.
//!
//! ```text
//!   bytes ──frame_len──► payload ──RequestHeader + Request::decode──► typed request
//!   typed reply ──ReplyHeader + Response::write──► payload ──begin/end_frame──► bytes
//! ```
//!
//! Decoding is total: any input yields a value, [`DecodeError::Incomplete`] (framing only)
//! or another [`DecodeError`]; lengths are checked before anything is allocated.
//!
//! ```
//! use corral_proto::{Jute, OpCode, ReplyHeader, RequestHeader, Request, PathWatchRequest};
//! let mut frame = Vec::new();
//! let at = corral_proto::frame::begin_frame(&mut frame);
//! RequestHeader { xid: 4, op: OpCode::Exists as i32 }.write(&mut frame);
//! Request::Exists(PathWatchRequest { path: "/nope".into(), watch: true }).write_body(&mut frame);
//! corral_proto::frame::end_frame(&mut frame, at);
//! // ZK-WIRE golden vector V8.
//! assert_eq!(frame, [0,0,0,0x12, 0,0,0,4, 0,0,0,3, 0,0,0,5, b'/',b'n',b'o',b'p',b'e', 1]);
//! ```

pub mod codec;
pub mod error_code;
pub mod frame;
pub mod ids;
pub mod opcode;
pub mod path;
pub mod records;
pub mod request;
pub mod txn;

pub use codec::{DecodeError, Jute, Reader, DEFAULT_MAX_BUFFER};
pub use error_code::ErrorCode;
pub use ids::*;
pub use opcode::OpCode;
pub use records::*;
pub use request::{MultiResult, Request, RequestError, Response, MULTI_END};
pub use txn::*;

/// xid of watch notifications.
pub const XID_NOTIFICATION: i32 = -1;
/// xid of pings.
pub const XID_PING: i32 = -2;
/// xid of auth packets.
pub const XID_AUTH: i32 = -4;
/// xid of setWatches as sent by the C client.
pub const XID_SET_WATCHES: i32 = -8;
