//! What servers say to each other beyond the protocol itself: requests a learner forwards to
//! the leader (writes, session creation, sync, session touches) and the leader's answers, and
//! the encoding of a logged transaction as a ZAB entry.

use corral_proto::codec::{write_buffer, DecodeError, Jute, Reader};
use corral_proto::{Id, Txn, TxnHeader};

/// A learner's message to the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToLeader {
    /// A client request to run through the leader: opcode and Jute body as received.
    Request {
        /// The client's session.
        session: i64,
        /// The request's xid.
        cxid: i32,
        /// Opcode.
        op: i32,
        /// Request body.
        body: Vec<u8>,
        /// The client connection's identities (for ACL checks).
        ids: Vec<Id>,
    },
    /// A new session created on the learner, to be committed.
    CreateSession {
        /// The id the learner allocated.
        session: i64,
        /// Negotiated timeout.
        timeout_ms: i32,
    },
    /// A session's close requested by its client.
    CloseSession {
        /// The session.
        session: i64,
        /// The request's xid.
        cxid: i32,
    },
    /// A client's sync: answer once everything proposed so far is committed.
    Sync {
        /// The session.
        session: i64,
        /// The request's xid.
        cxid: i32,
    },
    /// Sessions active on the learner since its last report.
    Touch(Vec<i64>),
}

/// The leader's answer to a learner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromLeader {
    /// A sync is done: everything up to `zxid` is committed (and already sent before this).
    SyncDone {
        /// The session.
        session: i64,
        /// The request's xid.
        cxid: i32,
        /// The commit point the sync waited for.
        zxid: i64,
    },
}

impl ToLeader {
    /// Encodes the message.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            ToLeader::Request {
                session,
                cxid,
                op,
                body,
                ids,
            } => {
                out.push(1);
                session.write(&mut out);
                cxid.write(&mut out);
                op.write(&mut out);
                write_buffer(&mut out, Some(body));
                ids.write(&mut out);
            }
            ToLeader::CreateSession {
                session,
                timeout_ms,
            } => {
                out.push(2);
                session.write(&mut out);
                timeout_ms.write(&mut out);
            }
            ToLeader::CloseSession { session, cxid } => {
                out.push(3);
                session.write(&mut out);
                cxid.write(&mut out);
            }
            ToLeader::Sync { session, cxid } => {
                out.push(4);
                session.write(&mut out);
                cxid.write(&mut out);
            }
            ToLeader::Touch(ids) => {
                out.push(5);
                ids.write(&mut out);
            }
        }
        out
    }

    /// Decodes a message.
    ///
    /// # Errors
    /// Malformed input.
    pub fn decode(b: &[u8]) -> Result<ToLeader, DecodeError> {
        let mut r = Reader::new(b);
        let tag = r.take(1, "tag")?[0];
        let m = match tag {
            1 => ToLeader::Request {
                session: r.i64("session")?,
                cxid: r.i32("cxid")?,
                op: r.i32("op")?,
                body: r.buffer("body")?.unwrap_or_default(),
                ids: Jute::read(&mut r)?,
            },
            2 => ToLeader::CreateSession {
                session: r.i64("session")?,
                timeout_ms: r.i32("timeout")?,
            },
            3 => ToLeader::CloseSession {
                session: r.i64("session")?,
                cxid: r.i32("cxid")?,
            },
            4 => ToLeader::Sync {
                session: r.i64("session")?,
                cxid: r.i32("cxid")?,
            },
            5 => ToLeader::Touch(Jute::read(&mut r)?),
            v => {
                return Err(DecodeError::InvalidValue {
                    what: "forward tag",
                    value: v.into(),
                })
            }
        };
        r.finish("forwarded message")?;
        Ok(m)
    }
}

impl FromLeader {
    /// Encodes the message.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            FromLeader::SyncDone {
                session,
                cxid,
                zxid,
            } => {
                out.push(1);
                session.write(&mut out);
                cxid.write(&mut out);
                zxid.write(&mut out);
            }
        }
        out
    }

    /// Decodes a message.
    ///
    /// # Errors
    /// Malformed input.
    pub fn decode(b: &[u8]) -> Result<FromLeader, DecodeError> {
        let mut r = Reader::new(b);
        let tag = r.take(1, "tag")?[0];
        let m = match tag {
            1 => FromLeader::SyncDone {
                session: r.i64("session")?,
                cxid: r.i32("cxid")?,
                zxid: r.i64("zxid")?,
            },
            v => {
                return Err(DecodeError::InvalidValue {
                    what: "reply tag",
                    value: v.into(),
                })
            }
        };
        r.finish("leader reply")?;
        Ok(m)
    }
}

/// A logged transaction as a ZAB entry's bytes: header then body.
pub fn encode_txn(hdr: &TxnHeader, txn: &Txn) -> Vec<u8> {
    let mut out = Vec::new();
    hdr.write(&mut out);
    txn.write_body(&mut out);
    out
}

/// The transaction in a ZAB entry.
///
/// # Errors
/// Malformed input.
pub fn decode_txn(b: &[u8]) -> Result<(TxnHeader, Txn), DecodeError> {
    let mut r = Reader::new(b);
    let hdr = TxnHeader::read(&mut r)?;
    let txn = Txn::decode(hdr.txn_type, r.rest())?;
    Ok((hdr, txn))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_messages_round_trip() {
        let all = [
            ToLeader::Request {
                session: 5,
                cxid: 7,
                op: 1,
                body: vec![1, 2],
                ids: vec![Id::new("ip", "127.0.0.1")],
            },
            ToLeader::CreateSession {
                session: 9,
                timeout_ms: 4000,
            },
            ToLeader::CloseSession {
                session: 9,
                cxid: 3,
            },
            ToLeader::Sync {
                session: 9,
                cxid: 4,
            },
            ToLeader::Touch(vec![1, 2, 3]),
        ];
        for m in all {
            assert_eq!(ToLeader::decode(&m.encode()).unwrap(), m);
        }
        let r = FromLeader::SyncDone {
            session: 1,
            cxid: 2,
            zxid: 3,
        };
        assert_eq!(FromLeader::decode(&r.encode()).unwrap(), r);
        assert!(ToLeader::decode(&[42]).is_err());
    }

    #[test]
    fn txn_entries_round_trip() {
        let hdr = TxnHeader {
            client_id: 1,
            cxid: 2,
            zxid: 3,
            time: 4,
            txn_type: -1,
        };
        let txn = Txn::Error(-101);
        assert_eq!(decode_txn(&encode_txn(&hdr, &txn)).unwrap(), (hdr, txn));
    }
}
