//! The session: pure bookkeeping ([`state`]) and the task that owns the socket ([`task`]).
//!
//! ```text
//!  Client ──Command (unbounded, in call order)──► task ──frames──► server
//!    ▲                                              │
//!    └──────── oneshot reply per request ◄──────────┤ replies matched by xid (FIFO)
//!  OneshotWatcher / PersistentWatcher ◄── events ───┘ notifications (xid -1)
//! ```

pub(crate) mod state;
pub(crate) mod task;

use corral_proto::frame::{begin_frame, end_frame};
use corral_proto::{Jute, OpCode, Request, RequestHeader, Response, WatcherType};
use tokio::sync::oneshot;
use tracing::Span;

use crate::watcher::{OneshotTx, PersistentTx};
use crate::Error;

/// Where the reply to a request goes.
pub(crate) type ReplyTx = oneshot::Sender<Result<Response, Error>>;

/// A message from a [`crate::Client`] handle to the session task.
///
/// The channel that carries commands is **unbounded on purpose**, a reasoned departure
/// from STYLE §6.5: an operation must be queued when it is *called* (STYLE §6.2, so that
/// requests follow call order), and a call cannot wait for capacity. Every queued command
/// belongs to a future the caller created, so the caller's own concurrency bounds the
/// queue. The task applies back-pressure towards the server instead: it takes commands
/// only while fewer than [`task::WRITE_HIGH_WATER`] bytes wait to be written, and while
/// disconnected it answers them at once with `ConnectionLoss`.
#[derive(Debug)]
pub(crate) enum Command {
    /// A request to send.
    Request(Operation),
    /// An auth packet (xid -4) to send; remembered for reconnects once accepted.
    Auth {
        scheme: String,
        auth: Vec<u8>,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    /// Close the session (closeSession), then stop.
    Close { reply: oneshot::Sender<()> },
}

/// An encoded request on its way to the server.
#[derive(Debug)]
pub(crate) struct Operation {
    pub(crate) op: OpCode,
    /// The whole frame; bytes 4..8 (the xid) are filled in when it is written.
    pub(crate) frame: Vec<u8>,
    /// `None` for requests whose reply nobody waits for.
    pub(crate) reply: Option<ReplyTx>,
    /// What to do with the client's watch tables when the reply arrives.
    pub(crate) watch: Option<WatchAction>,
    /// The caller's `req` span; the task records the xid in it.
    pub(crate) span: Span,
}

impl Operation {
    /// Encodes `request` into a frame with a placeholder xid.
    pub(crate) fn new(request: &Request, reply: Option<ReplyTx>, span: Span) -> Operation {
        Operation {
            op: request.op(),
            frame: encode(request),
            reply,
            watch: None,
            span,
        }
    }
}

/// Encodes a request frame with xid 0 (the task patches it).
pub(crate) fn encode(request: &Request) -> Vec<u8> {
    let mut frame = Vec::with_capacity(64);
    let at = begin_frame(&mut frame);
    RequestHeader {
        xid: 0,
        op: request.op() as i32,
    }
    .write(&mut frame);
    request.write_body(&mut frame);
    end_frame(&mut frame, at);
    frame
}

/// Sets the xid of an encoded frame.
pub(crate) fn patch_xid(frame: &mut [u8], xid: i32) {
    frame[4..8].copy_from_slice(&xid.to_be_bytes());
}

/// The watch-table change a request makes once its reply arrives. Paths are server paths.
#[derive(Debug)]
pub(crate) enum WatchAction {
    /// getData(watch): a data watch, on success.
    Data { path: String, tx: OneshotTx },
    /// exists(watch): a data watch on success, an exists watch on NoNode.
    Exists { path: String, tx: OneshotTx },
    /// getChildren(watch): a child watch, on success.
    Child { path: String, tx: OneshotTx },
    /// addWatch: a persistent (recursive) watch, on success.
    Persistent {
        path: String,
        recursive: bool,
        tx: PersistentTx,
    },
    /// removeWatches: drop the local watches of that type, on success.
    Remove { path: String, kind: WatcherType },
}
