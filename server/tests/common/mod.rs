//! A minimal raw-protocol client for socket-level tests: it speaks frames, so tests can
//! also send bytes no real client would.
#![allow(dead_code)]

use corral_proto::frame::{begin_frame, end_frame, frame_len};
use corral_proto::{
    ConnectRequest, ConnectResponse, DecodeError, Jute, ReplyHeader, Request, RequestHeader,
    WatcherEvent,
};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bound on every network wait in these tests.
pub const WAIT: Duration = Duration::from_secs(10);

/// A connected raw session.
pub struct Raw {
    pub stream: TcpStream,
    buf: Vec<u8>,
    pub session: ConnectResponse,
    next_xid: i32,
    /// Notifications received while waiting for replies.
    pub events: Vec<WatcherEvent>,
}

/// Encodes one frame.
pub fn frame(payload: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut v = Vec::new();
    let at = begin_frame(&mut v);
    payload(&mut v);
    end_frame(&mut v, at);
    v
}

/// Reads one frame's payload from `stream`, or `None` at EOF.
pub async fn read_frame(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    loop {
        match frame_len(buf, 16 << 20) {
            Ok(len) => {
                let payload = buf[4..4 + len].to_vec();
                buf.drain(..4 + len);
                return Some(payload);
            }
            Err(DecodeError::Incomplete) => {
                let mut chunk = [0u8; 8192];
                let n = tokio::time::timeout(WAIT, stream.read(&mut chunk))
                    .await
                    .expect("server answered in time")
                    .ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            Err(e) => panic!("server sent a bad frame: {e}"),
        }
    }
}

/// Whether the server closed the connection (EOF or reset) within the wait bound, reading
/// and discarding anything it still sent.
pub async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut chunk = [0u8; 4096];
    loop {
        match tokio::time::timeout(WAIT, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

impl Raw {
    /// Opens a new session.
    pub async fn connect(addr: SocketAddr) -> Raw {
        Self::connect_with(
            addr,
            ConnectRequest {
                timeout_ms: 30_000,
                passwd: vec![0; 16],
                read_only: Some(false),
                ..Default::default()
            },
        )
        .await
        .expect("session established")
    }

    /// Sends `req` as the ConnectRequest; `None` if the server closed without answering.
    pub async fn connect_with(addr: SocketAddr, req: ConnectRequest) -> Option<Raw> {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(&frame(|v| req.write(v)))
            .await
            .expect("send");
        let mut buf = Vec::new();
        let payload = read_frame(&mut stream, &mut buf).await?;
        let session = ConnectResponse::from_bytes(&payload).expect("ConnectResponse");
        Some(Raw {
            stream,
            buf,
            session,
            next_xid: 1,
            events: Vec::new(),
        })
    }

    /// Sends a request without waiting; returns its xid.
    pub async fn send(&mut self, req: &Request) -> i32 {
        let xid = self.next_xid;
        self.next_xid += 1;
        let bytes = frame(|v| {
            RequestHeader {
                xid,
                op: req.op() as i32,
            }
            .write(v);
            req.write_body(v);
        });
        self.stream.write_all(&bytes).await.expect("send");
        xid
    }

    /// Reads the next reply (collecting notifications on the way); `None` at EOF.
    pub async fn reply(&mut self) -> Option<(ReplyHeader, Vec<u8>)> {
        loop {
            let payload = read_frame(&mut self.stream, &mut self.buf).await?;
            let mut r = corral_proto::Reader::new(&payload);
            let hdr = ReplyHeader::read(&mut r).expect("reply header");
            if hdr.xid == -1 {
                self.events.push(WatcherEvent::read(&mut r).expect("event"));
                continue;
            }
            return Some((hdr, r.rest().to_vec()));
        }
    }

    /// Reads frames until the next notification arrives; `None` at EOF. Waits at most the
    /// test bound per frame.
    pub async fn next_event(&mut self) -> Option<WatcherEvent> {
        loop {
            let payload = read_frame(&mut self.stream, &mut self.buf).await?;
            let mut r = corral_proto::Reader::new(&payload);
            let hdr = ReplyHeader::read(&mut r).expect("reply header");
            if hdr.xid == -1 {
                let ev = WatcherEvent::read(&mut r).expect("event");
                self.events.push(ev.clone());
                return Some(ev);
            }
        }
    }

    /// Sends `req` and waits for its reply.
    pub async fn call(&mut self, req: &Request) -> (ReplyHeader, Vec<u8>) {
        let xid = self.send(req).await;
        let (hdr, body) = self.reply().await.expect("reply before close");
        assert_eq!(hdr.xid, xid, "replies come in request order");
        (hdr, body)
    }

    /// A ping round trip; true if the session answered.
    pub async fn ping(&mut self) -> bool {
        let xid = -2;
        let bytes = frame(|v| RequestHeader { xid, op: 11 }.write(v));
        if self.stream.write_all(&bytes).await.is_err() {
            return false;
        }
        matches!(self.reply().await, Some((h, _)) if h.xid == -2 && h.err == 0)
    }
}

/// Sends a four-letter word and returns the whole answer.
pub async fn four_letter(addr: SocketAddr, word: &str) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(word.as_bytes()).await.expect("send");
    let mut out = String::new();
    tokio::time::timeout(WAIT, s.read_to_string(&mut out))
        .await
        .expect("answer in time")
        .expect("read");
    out
}
