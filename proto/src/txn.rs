//! Transaction records: what a write *means* after validation, as the log stores it and
//! every server applies it.

use crate::codec::{write_buffer, DecodeError, Jute, Reader};
use crate::jute_record;
use crate::records::Acl;

jute_record! {
    /// Header of a logged transaction.
    pub struct TxnHeader {
        /// Session that issued it (0 for server-internal transactions).
        pub client_id: i64,
        /// The request's xid.
        pub cxid: i32,
        /// The transaction's zxid.
        pub zxid: i64,
        /// Leader wall-clock time in ms, the only time the tree ever uses.
        pub time: i64,
        /// Transaction type (an opcode).
        pub txn_type: i32,
    }
}

jute_record! {
    /// Create of a persistent, ephemeral or sequential node.
    pub struct CreateTxn {
        /// Final path, with any sequence suffix.
        pub path: String,
        /// Data.
        pub data: Option<Vec<u8>>,
        /// ACL after fix-up.
        pub acl: Vec<Acl>,
        /// Whether the node is ephemeral (owned by the header's session).
        pub ephemeral: bool,
        /// The parent's cversion after this create.
        pub parent_cversion: i32,
    }
}

jute_record! {
    /// Create of a container node.
    pub struct CreateContainerTxn {
        /// Final path.
        pub path: String,
        /// Data.
        pub data: Option<Vec<u8>>,
        /// ACL after fix-up.
        pub acl: Vec<Acl>,
        /// The parent's cversion after this create.
        pub parent_cversion: i32,
    }
}

jute_record! {
    /// Create of a TTL node.
    pub struct CreateTtlTxn {
        /// Final path.
        pub path: String,
        /// Data.
        pub data: Option<Vec<u8>>,
        /// ACL after fix-up.
        pub acl: Vec<Acl>,
        /// The parent's cversion after this create.
        pub parent_cversion: i32,
        /// TTL in ms.
        pub ttl: i64,
    }
}

jute_record! {
    /// Delete of a node.
    pub struct DeleteTxn {
        /// Path.
        pub path: String,
    }
}

jute_record! {
    /// Data change.
    pub struct SetDataTxn {
        /// Path.
        pub path: String,
        /// New data.
        pub data: Option<Vec<u8>>,
        /// The node's version after the change.
        pub version: i32,
    }
}

jute_record! {
    /// ACL change.
    pub struct SetAclTxn {
        /// Path.
        pub path: String,
        /// New ACL after fix-up.
        pub acl: Vec<Acl>,
        /// The node's aversion after the change.
        pub version: i32,
    }
}

jute_record! {
    /// A version check inside multi.
    pub struct CheckVersionTxn {
        /// Path.
        pub path: String,
        /// The version checked.
        pub version: i32,
    }
}

jute_record! {
    /// Creation of a session.
    pub struct CreateSessionTxn {
        /// Negotiated timeout in ms.
        pub timeout_ms: i32,
    }
}

jute_record! {
    /// End of a session (close or expiry).
    pub struct CloseSessionTxn {
        /// The session's ephemerals, deleted by this transaction.
        pub paths_to_delete: Vec<String>,
    }
}

/// A transaction body, typed by `TxnHeader.txn_type`.
///
/// ```
/// use corral_proto::{DeleteTxn, Txn};
/// let t = Txn::Delete(DeleteTxn { path: "/a".into() });
/// assert_eq!(Txn::decode(t.txn_type(), &t.body_bytes()).unwrap(), t);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Txn {
    Create(CreateTxn),
    CreateContainer(CreateContainerTxn),
    CreateTtl(CreateTtlTxn),
    Delete(DeleteTxn),
    /// A container or expired TTL node removed by the server's sweep.
    DeleteContainer(DeleteTxn),
    SetData(SetDataTxn),
    SetAcl(SetAclTxn),
    Check(CheckVersionTxn),
    CreateSession(CreateSessionTxn),
    CloseSession(CloseSessionTxn),
    /// A failed write: consumes a zxid and changes nothing.
    Error(i32),
    /// All-or-nothing group of transactions sharing one zxid.
    Multi(Vec<Txn>),
}

impl Txn {
    /// The type written in the transaction header.
    pub fn txn_type(&self) -> i32 {
        match self {
            Txn::Create(_) => 1,
            Txn::CreateContainer(_) => 19,
            Txn::CreateTtl(_) => 21,
            Txn::Delete(_) => 2,
            Txn::DeleteContainer(_) => 20,
            Txn::SetData(_) => 5,
            Txn::SetAcl(_) => 7,
            Txn::Check(_) => 13,
            Txn::CreateSession(_) => -10,
            Txn::CloseSession(_) => -11,
            Txn::Error(_) => -1,
            Txn::Multi(_) => 14,
        }
    }

    /// Appends the body to `out`.
    pub fn write_body(&self, out: &mut Vec<u8>) {
        match self {
            Txn::Create(t) => t.write(out),
            Txn::CreateContainer(t) => t.write(out),
            Txn::CreateTtl(t) => t.write(out),
            Txn::Delete(t) | Txn::DeleteContainer(t) => t.write(out),
            Txn::SetData(t) => t.write(out),
            Txn::SetAcl(t) => t.write(out),
            Txn::Check(t) => t.write(out),
            Txn::CreateSession(t) => t.write(out),
            Txn::CloseSession(t) => t.write(out),
            Txn::Error(e) => e.write(out),
            Txn::Multi(txns) => {
                (txns.len() as i32).write(out);
                for t in txns {
                    t.txn_type().write(out);
                    let body = t.body_bytes();
                    write_buffer(out, Some(&body));
                }
            }
        }
    }

    /// The body as a fresh vector.
    pub fn body_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.write_body(&mut v);
        v
    }

    /// Decodes a body of type `txn_type` spanning all of `body`.
    pub fn decode(txn_type: i32, body: &[u8]) -> Result<Txn, DecodeError> {
        let mut r = Reader::new(body);
        let t = Self::read(txn_type, &mut r, 0)?;
        r.finish("txn")?;
        Ok(t)
    }

    fn read(txn_type: i32, r: &mut Reader<'_>, depth: u8) -> Result<Txn, DecodeError> {
        Ok(match txn_type {
            1 | 15 => Txn::Create(Jute::read(r)?),
            19 => Txn::CreateContainer(Jute::read(r)?),
            21 => Txn::CreateTtl(Jute::read(r)?),
            2 => Txn::Delete(Jute::read(r)?),
            20 => Txn::DeleteContainer(Jute::read(r)?),
            5 => Txn::SetData(Jute::read(r)?),
            7 => Txn::SetAcl(Jute::read(r)?),
            13 => Txn::Check(Jute::read(r)?),
            -10 => Txn::CreateSession(Jute::read(r)?),
            -11 => Txn::CloseSession(Jute::read(r)?),
            -1 => Txn::Error(r.i32("err")?),
            14 if depth == 0 => {
                let n = r.count("txns", 8)?.unwrap_or(0);
                let mut txns = Vec::with_capacity(n);
                for _ in 0..n {
                    let ty = r.i32("txn type")?;
                    let body = r.buffer("txn data")?.unwrap_or_default();
                    let mut sub = Reader::new(&body);
                    let t = Self::read(ty, &mut sub, depth + 1)?;
                    sub.finish("multi sub-txn")?;
                    txns.push(t);
                }
                Txn::Multi(txns)
            }
            other => {
                return Err(DecodeError::InvalidValue {
                    what: "txn type",
                    value: other.into(),
                })
            }
        })
    }
}
