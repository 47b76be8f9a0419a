//! Requests and responses as typed enums, decoded from and encoded to frame bodies by opcode.

use crate::codec::{DecodeError, Jute, Reader};
use crate::records::*;
use crate::OpCode;

/// A client request body, typed by its opcode.
///
/// ```
/// use corral_proto::{OpCode, PathWatchRequest, Request};
/// let req = Request::GetData(PathWatchRequest { path: "/a".into(), watch: true });
/// let body = req.body_bytes();
/// assert_eq!(Request::decode(OpCode::GetData as i32, &body).unwrap(), req);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Request {
    Create(CreateRequest),
    Create2(CreateRequest),
    CreateContainer(CreateRequest),
    CreateTtl(CreateTtlRequest),
    Delete(DeleteRequest),
    Exists(PathWatchRequest),
    GetData(PathWatchRequest),
    SetData(SetDataRequest),
    GetAcl(PathRequest),
    SetAcl(SetAclRequest),
    GetChildren(PathWatchRequest),
    GetChildren2(PathWatchRequest),
    Sync(PathRequest),
    Ping,
    Check(CheckVersionRequest),
    /// Atomic writes; every element is a create, delete, setData or check.
    Multi(Vec<Request>),
    /// Independent reads; every element is a getData or getChildren.
    MultiRead(Vec<Request>),
    Reconfig(ReconfigRequest),
    CheckWatches(WatchesRequest),
    RemoveWatches(WatchesRequest),
    DeleteContainer(PathRequest),
    Auth(AuthPacket),
    SetWatches(SetWatches),
    SetWatches2(SetWatches2),
    Sasl(SaslToken),
    GetEphemerals(PathRequest),
    GetAllChildrenNumber(PathRequest),
    AddWatch(AddWatchRequest),
    WhoAmI,
    CloseSession,
}

/// Why a request body could not be turned into a [`Request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// The opcode is not one a client may send (answer UNIMPLEMENTED).
    UnknownOp(i32),
    /// The body is malformed (answer MARSHALLINGERROR or close).
    Decode(DecodeError),
    /// A multi contains an operation not allowed there, or mixes reads and writes.
    BadMulti(i32),
}

impl From<DecodeError> for RequestError {
    fn from(e: DecodeError) -> Self {
        RequestError::Decode(e)
    }
}

impl Request {
    /// The opcode of this request.
    pub fn op(&self) -> OpCode {
        use Request::*;
        match self {
            Create(_) => OpCode::Create,
            Create2(_) => OpCode::Create2,
            CreateContainer(_) => OpCode::CreateContainer,
            CreateTtl(_) => OpCode::CreateTtl,
            Delete(_) => OpCode::Delete,
            Exists(_) => OpCode::Exists,
            GetData(_) => OpCode::GetData,
            SetData(_) => OpCode::SetData,
            GetAcl(_) => OpCode::GetAcl,
            SetAcl(_) => OpCode::SetAcl,
            GetChildren(_) => OpCode::GetChildren,
            GetChildren2(_) => OpCode::GetChildren2,
            Sync(_) => OpCode::Sync,
            Ping => OpCode::Ping,
            Check(_) => OpCode::Check,
            Multi(_) => OpCode::Multi,
            MultiRead(_) => OpCode::MultiRead,
            Reconfig(_) => OpCode::Reconfig,
            CheckWatches(_) => OpCode::CheckWatches,
            RemoveWatches(_) => OpCode::RemoveWatches,
            DeleteContainer(_) => OpCode::DeleteContainer,
            Auth(_) => OpCode::Auth,
            SetWatches(_) => OpCode::SetWatches,
            SetWatches2(_) => OpCode::SetWatches2,
            Sasl(_) => OpCode::Sasl,
            GetEphemerals(_) => OpCode::GetEphemerals,
            GetAllChildrenNumber(_) => OpCode::GetAllChildrenNumber,
            AddWatch(_) => OpCode::AddWatch,
            WhoAmI => OpCode::WhoAmI,
            CloseSession => OpCode::CloseSession,
        }
    }

    /// The path the request names, if any.
    pub fn path(&self) -> Option<&str> {
        use Request::*;
        Some(match self {
            Create(r) | Create2(r) | CreateContainer(r) => &r.path,
            CreateTtl(r) => &r.path,
            Delete(r) => &r.path,
            Exists(r) | GetData(r) | GetChildren(r) | GetChildren2(r) => &r.path,
            SetData(r) => &r.path,
            GetAcl(r)
            | Sync(r)
            | DeleteContainer(r)
            | GetEphemerals(r)
            | GetAllChildrenNumber(r) => &r.path,
            SetAcl(r) => &r.path,
            Check(r) => &r.path,
            CheckWatches(r) | RemoveWatches(r) => &r.path,
            AddWatch(r) => &r.path,
            _ => return None,
        })
    }

    /// Decodes a request body for the opcode `op`. The body must be consumed exactly,
    /// except that trailing bytes are tolerated as the Java server does.
    pub fn decode(op: i32, body: &[u8]) -> Result<Request, RequestError> {
        let mut r = Reader::new(body);
        Self::read_op(op, &mut r)
    }

    fn read_op(op: i32, r: &mut Reader<'_>) -> Result<Request, RequestError> {
        use Request::*;
        let code = OpCode::from_i32(op).ok_or(RequestError::UnknownOp(op))?;
        Ok(match code {
            OpCode::Create => Create(Jute::read(r)?),
            OpCode::Create2 => Create2(Jute::read(r)?),
            OpCode::CreateContainer => CreateContainer(Jute::read(r)?),
            OpCode::CreateTtl => CreateTtl(Jute::read(r)?),
            OpCode::Delete => Delete(Jute::read(r)?),
            OpCode::Exists => Exists(Jute::read(r)?),
            OpCode::GetData => GetData(Jute::read(r)?),
            OpCode::SetData => SetData(Jute::read(r)?),
            OpCode::GetAcl => GetAcl(Jute::read(r)?),
            OpCode::SetAcl => SetAcl(Jute::read(r)?),
            OpCode::GetChildren => GetChildren(Jute::read(r)?),
            OpCode::GetChildren2 => GetChildren2(Jute::read(r)?),
            OpCode::Sync => Sync(Jute::read(r)?),
            OpCode::Ping => Ping,
            OpCode::Check => Check(Jute::read(r)?),
            OpCode::Multi => Multi(read_multi(r, false)?),
            OpCode::MultiRead => MultiRead(read_multi(r, true)?),
            OpCode::Reconfig => Reconfig(Jute::read(r)?),
            OpCode::CheckWatches => CheckWatches(Jute::read(r)?),
            OpCode::RemoveWatches => RemoveWatches(Jute::read(r)?),
            OpCode::DeleteContainer => DeleteContainer(Jute::read(r)?),
            OpCode::Auth => Auth(Jute::read(r)?),
            OpCode::SetWatches => SetWatches(Jute::read(r)?),
            OpCode::SetWatches2 => SetWatches2(Jute::read(r)?),
            OpCode::Sasl => Sasl(Jute::read(r)?),
            OpCode::GetEphemerals => GetEphemerals(Jute::read(r)?),
            OpCode::GetAllChildrenNumber => GetAllChildrenNumber(Jute::read(r)?),
            OpCode::AddWatch => AddWatch(Jute::read(r)?),
            OpCode::WhoAmI => WhoAmI,
            OpCode::CloseSession => CloseSession,
            OpCode::Notification | OpCode::CreateSession | OpCode::Error => {
                return Err(RequestError::UnknownOp(op))
            }
        })
    }

    /// Appends the body (without request header) to `out`.
    pub fn write_body(&self, out: &mut Vec<u8>) {
        use Request::*;
        match self {
            Create(x) | Create2(x) | CreateContainer(x) => x.write(out),
            CreateTtl(x) => x.write(out),
            Delete(x) => x.write(out),
            Exists(x) | GetData(x) | GetChildren(x) | GetChildren2(x) => x.write(out),
            SetData(x) => x.write(out),
            GetAcl(x)
            | Sync(x)
            | DeleteContainer(x)
            | GetEphemerals(x)
            | GetAllChildrenNumber(x) => x.write(out),
            SetAcl(x) => x.write(out),
            Check(x) => x.write(out),
            Multi(ops) | MultiRead(ops) => {
                for op in ops {
                    MultiHeader {
                        op: op.op() as i32,
                        done: false,
                        err: -1,
                    }
                    .write(out);
                    op.write_body(out);
                }
                MULTI_END.write(out);
            }
            Reconfig(x) => x.write(out),
            CheckWatches(x) | RemoveWatches(x) => x.write(out),
            Auth(x) => x.write(out),
            SetWatches(x) => x.write(out),
            SetWatches2(x) => x.write(out),
            Sasl(x) => x.write(out),
            AddWatch(x) => x.write(out),
            Ping | WhoAmI | CloseSession => {}
        }
    }

    /// The body as a fresh vector.
    pub fn body_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.write_body(&mut v);
        v
    }
}

/// The terminator of a multi request or response.
pub const MULTI_END: MultiHeader = MultiHeader {
    op: -1,
    done: true,
    err: -1,
};

fn read_multi(r: &mut Reader<'_>, reads: bool) -> Result<Vec<Request>, RequestError> {
    let mut ops = Vec::new();
    loop {
        let h = MultiHeader::read(r)?;
        if h.done {
            return Ok(ops);
        }
        let allowed = if reads {
            matches!(h.op, 4 | 8)
        } else {
            matches!(h.op, 1 | 2 | 5 | 13 | 15 | 19 | 21)
        };
        if !allowed {
            return Err(RequestError::BadMulti(h.op));
        }
        // Each op takes at least one byte, so the loop is bounded by the body length.
        ops.push(Request::read_op(h.op, r)?);
    }
}

/// One result inside a multi / multiRead response.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum MultiResult {
    /// Result of a create (op 1): the path.
    Create(String),
    /// Result of create2 / createContainer / createTTL (type 15 on the wire).
    Create2(Create2Response),
    Delete,
    SetData(Stat),
    Check,
    GetData(GetDataResponse),
    GetChildren(Vec<String>),
    /// An error result with its code (0 for ops before the failing one).
    Error(i32),
}

impl MultiResult {
    fn write(&self, out: &mut Vec<u8>) {
        let (op, err) = match self {
            MultiResult::Create(_) => (1, 0),
            MultiResult::Create2(_) => (15, 0),
            MultiResult::Delete => (2, 0),
            MultiResult::SetData(_) => (5, 0),
            MultiResult::Check => (13, 0),
            MultiResult::GetData(_) => (4, 0),
            MultiResult::GetChildren(_) => (8, 0),
            MultiResult::Error(e) => (-1, *e),
        };
        MultiHeader {
            op,
            done: false,
            err,
        }
        .write(out);
        match self {
            MultiResult::Create(p) => p.write(out),
            MultiResult::Create2(c) => c.write(out),
            MultiResult::SetData(s) => s.write(out),
            MultiResult::GetData(g) => g.write(out),
            MultiResult::GetChildren(c) => c.write(out),
            MultiResult::Error(e) => e.write(out),
            MultiResult::Delete | MultiResult::Check => {}
        }
    }

    fn read_all(r: &mut Reader<'_>) -> Result<Vec<MultiResult>, DecodeError> {
        let mut v = Vec::new();
        loop {
            let h = MultiHeader::read(r)?;
            if h.done {
                return Ok(v);
            }
            v.push(match h.op {
                1 => MultiResult::Create(Jute::read(r)?),
                15 | 19 | 21 => MultiResult::Create2(Jute::read(r)?),
                2 => MultiResult::Delete,
                5 => MultiResult::SetData(Jute::read(r)?),
                13 => MultiResult::Check,
                4 => MultiResult::GetData(Jute::read(r)?),
                8 => MultiResult::GetChildren(Jute::read(r)?),
                -1 => MultiResult::Error(r.i32("multi error")?),
                other => {
                    return Err(DecodeError::InvalidValue {
                        what: "multi result type",
                        value: other.into(),
                    })
                }
            });
        }
    }
}

/// A successful reply body, typed by the request it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Response {
    /// No body (delete, ping, check, setWatches, auth, removeWatches, closeSession, ...).
    Empty,
    Create(CreateResponse),
    Create2(Create2Response),
    /// exists, setData, setACL.
    Stat(Stat),
    /// getData, reconfig.
    GetData(GetDataResponse),
    GetAcl(GetAclResponse),
    GetChildren(GetChildrenResponse),
    GetChildren2(GetChildren2Response),
    /// sync: the path echoed.
    Sync(String),
    /// multi / multiRead.
    Multi(Vec<MultiResult>),
    Sasl(SaslToken),
    GetEphemerals(Vec<String>),
    AllChildrenNumber(i32),
    /// addWatch: a 4-byte `ErrorResponse{0}`.
    AddWatch,
    WhoAmI(Vec<ClientInfo>),
}

impl Response {
    /// Appends the body to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Response::Empty => {}
            Response::Create(x) => x.write(out),
            Response::Create2(x) => x.write(out),
            Response::Stat(x) => x.write(out),
            Response::GetData(x) => x.write(out),
            Response::GetAcl(x) => x.write(out),
            Response::GetChildren(x) => x.write(out),
            Response::GetChildren2(x) => x.write(out),
            Response::Sync(p) => p.write(out),
            Response::Multi(rs) => {
                for r in rs {
                    r.write(out);
                }
                MULTI_END.write(out);
            }
            Response::Sasl(x) => x.write(out),
            Response::GetEphemerals(x) => x.write(out),
            Response::AllChildrenNumber(n) => n.write(out),
            Response::AddWatch => 0i32.write(out),
            Response::WhoAmI(x) => x.write(out),
        }
    }

    /// Decodes the body of a successful reply to a request of opcode `op`.
    pub fn decode(op: OpCode, body: &[u8]) -> Result<Response, DecodeError> {
        let mut r = Reader::new(body);
        let r = &mut r;
        Ok(match op {
            OpCode::Create => Response::Create(Jute::read(r)?),
            OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl => {
                Response::Create2(Jute::read(r)?)
            }
            OpCode::Exists | OpCode::SetData | OpCode::SetAcl => Response::Stat(Jute::read(r)?),
            OpCode::GetData | OpCode::Reconfig => Response::GetData(Jute::read(r)?),
            OpCode::GetAcl => Response::GetAcl(Jute::read(r)?),
            OpCode::GetChildren => Response::GetChildren(Jute::read(r)?),
            OpCode::GetChildren2 => Response::GetChildren2(Jute::read(r)?),
            OpCode::Sync => Response::Sync(Jute::read(r)?),
            OpCode::Multi | OpCode::MultiRead => Response::Multi(MultiResult::read_all(r)?),
            OpCode::Sasl => Response::Sasl(Jute::read(r)?),
            OpCode::GetEphemerals => Response::GetEphemerals(Jute::read(r)?),
            OpCode::GetAllChildrenNumber => Response::AllChildrenNumber(r.i32("totalNumber")?),
            OpCode::AddWatch => {
                // The server sends `ErrorResponse{0}`; an absent body is tolerated, but a
                // partial one (1-3 bytes) is malformed.
                if r.remaining() > 0 {
                    r.i32("err")?;
                }
                Response::AddWatch
            }
            OpCode::WhoAmI => Response::WhoAmI(Jute::read(r)?),
            _ => Response::Empty,
        })
    }
}
