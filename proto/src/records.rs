//! Data and client-protocol records (`org.apache.zookeeper.data` and `.proto` in the Jute
//! schema), each encoded as its fields in declaration order.

use crate::codec::{DecodeError, Jute, Reader};
use crate::jute_record;

jute_record! {
    /// An identity: a scheme and an id within it (`world:anyone`, `digest:bob:hash`, ...).
    ///
    /// ```
    /// use corral_proto::{Id, Jute};
    /// let id = Id::new("world", "anyone");
    /// assert_eq!(Id::from_bytes(&id.to_bytes()).unwrap(), id);
    /// ```
    pub struct Id {
        /// Authentication scheme.
        pub scheme: String,
        /// Identity within the scheme.
        pub id: String,
    }
}

impl Id {
    /// Builds an id.
    pub fn new(scheme: impl Into<String>, id: impl Into<String>) -> Self {
        Id {
            scheme: scheme.into(),
            id: id.into(),
        }
    }
}

jute_record! {
    /// One ACL entry: permission bits granted to an identity.
    pub struct Acl {
        /// Permission bits (see [`crate::perms`]).
        pub perms: i32,
        /// Who is granted them.
        pub id: Id,
    }
}

impl Acl {
    /// Builds an ACL entry.
    pub fn new(perms: i32, scheme: &str, id: &str) -> Self {
        Acl {
            perms,
            id: Id::new(scheme, id),
        }
    }
    /// `[(ALL, world, anyone)]`: anyone may do anything.
    pub fn open_unsafe() -> Vec<Acl> {
        vec![Acl::new(crate::perms::ALL, "world", "anyone")]
    }
    /// `[(READ, world, anyone)]`.
    pub fn read_unsafe() -> Vec<Acl> {
        vec![Acl::new(crate::perms::READ, "world", "anyone")]
    }
    /// `[(ALL, auth, "")]`: everything for the creator's authenticated ids.
    pub fn creator_all() -> Vec<Acl> {
        vec![Acl::new(crate::perms::ALL, "auth", "")]
    }
}

jute_record! {
    /// An authenticated identity as reported by whoAmI.
    pub struct ClientInfo {
        /// Scheme of the identity.
        pub auth_scheme: String,
        /// User part of the identity.
        pub user: String,
    }
}

jute_record! {
    /// A znode's metadata (68 bytes on the wire).
    pub struct Stat {
        /// Zxid of the create.
        pub czxid: i64,
        /// Zxid of the last data change.
        pub mzxid: i64,
        /// Creation time, ms since the epoch.
        pub ctime: i64,
        /// Last data change time, ms since the epoch.
        pub mtime: i64,
        /// Data version.
        pub version: i32,
        /// Child version: bumped by each child create and delete.
        pub cversion: i32,
        /// ACL version.
        pub aversion: i32,
        /// Owning session of an ephemeral; container / TTL markers otherwise.
        pub ephemeral_owner: i64,
        /// Length of the data.
        pub data_length: i32,
        /// Number of children.
        pub num_children: i32,
        /// Zxid of the last child create or delete.
        pub pzxid: i64,
    }
}

/// `ConnectRequest`: the first frame of a session, without a request header.
///
/// `read_only` is `None` when the client omitted the trailing byte (clients before 3.4).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectRequest {
    /// Always 0.
    pub protocol_version: i32,
    /// Highest zxid the client has seen.
    pub last_zxid_seen: i64,
    /// Requested session timeout in ms.
    pub timeout_ms: i32,
    /// 0 for a new session, else the session to resume.
    pub session_id: i64,
    /// Session password (16 bytes for a resume).
    pub passwd: Vec<u8>,
    /// Whether a read-only server is acceptable; `None` if the byte was absent.
    pub read_only: Option<bool>,
}

impl Jute for ConnectRequest {
    const MIN_BYTES: usize = 28;
    fn write(&self, out: &mut Vec<u8>) {
        self.protocol_version.write(out);
        self.last_zxid_seen.write(out);
        self.timeout_ms.write(out);
        self.session_id.write(out);
        crate::codec::write_buffer(out, Some(&self.passwd));
        if let Some(ro) = self.read_only {
            ro.write(out);
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let protocol_version = r.i32("protocolVersion")?;
        let last_zxid_seen = r.i64("lastZxidSeen")?;
        let timeout_ms = r.i32("timeOut")?;
        let session_id = r.i64("sessionId")?;
        let passwd = r.buffer("passwd")?.unwrap_or_default();
        let read_only = if r.remaining() > 0 {
            Some(r.bool("readOnly")?)
        } else {
            None
        };
        Ok(ConnectRequest {
            protocol_version,
            last_zxid_seen,
            timeout_ms,
            session_id,
            passwd,
            read_only,
        })
    }
}

/// `ConnectResponse`: the server's answer to a [`ConnectRequest`].
///
/// `read_only` is present iff the client sent it. A timeout of 0 means the session is invalid.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectResponse {
    /// Always 0.
    pub protocol_version: i32,
    /// Negotiated timeout in ms; 0 when the session is expired or invalid.
    pub timeout_ms: i32,
    /// The session id (0 when invalid).
    pub session_id: i64,
    /// The session password.
    pub passwd: Vec<u8>,
    /// Whether the server is read-only; `None` to omit the byte.
    pub read_only: Option<bool>,
}

impl Jute for ConnectResponse {
    const MIN_BYTES: usize = 20;
    fn write(&self, out: &mut Vec<u8>) {
        self.protocol_version.write(out);
        self.timeout_ms.write(out);
        self.session_id.write(out);
        crate::codec::write_buffer(out, Some(&self.passwd));
        if let Some(ro) = self.read_only {
            ro.write(out);
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let protocol_version = r.i32("protocolVersion")?;
        let timeout_ms = r.i32("timeOut")?;
        let session_id = r.i64("sessionId")?;
        let passwd = r.buffer("passwd")?.unwrap_or_default();
        let read_only = if r.remaining() > 0 {
            Some(r.bool("readOnly")?)
        } else {
            None
        };
        Ok(ConnectResponse {
            protocol_version,
            timeout_ms,
            session_id,
            passwd,
            read_only,
        })
    }
}

jute_record! {
    /// Header of every request after the handshake.
    pub struct RequestHeader {
        /// Request id, echoed in the reply.
        pub xid: i32,
        /// Opcode.
        pub op: i32,
    }
}

jute_record! {
    /// Header of every reply and notification.
    pub struct ReplyHeader {
        /// The request's xid (-1 notification, -2 ping, -4 auth).
        pub xid: i32,
        /// Zxid of the write, or the server's last processed zxid.
        pub zxid: i64,
        /// Error code; the body follows only when 0.
        pub err: i32,
    }
}

jute_record! {
    /// create / create2 / createContainer.
    pub struct CreateRequest {
        /// Path (a prefix, for sequential modes).
        pub path: String,
        /// Data; `None` keeps the null distinction.
        pub data: Option<Vec<u8>>,
        /// ACL of the new node.
        pub acl: Vec<Acl>,
        /// [`crate::CreateMode`] flags.
        pub flags: i32,
    }
}

jute_record! {
    /// createTTL.
    pub struct CreateTtlRequest {
        /// Path.
        pub path: String,
        /// Data.
        pub data: Option<Vec<u8>>,
        /// ACL.
        pub acl: Vec<Acl>,
        /// Create mode flags (5 or 6).
        pub flags: i32,
        /// TTL in ms.
        pub ttl: i64,
    }
}

jute_record! {
    /// Reply to create (op 1).
    pub struct CreateResponse {
        /// Actual path, with any sequence suffix.
        pub path: String,
    }
}

jute_record! {
    /// Reply to create2 / createContainer / createTTL.
    pub struct Create2Response {
        /// Actual path.
        pub path: String,
        /// Stat of the new node.
        pub stat: Stat,
    }
}

jute_record! {
    /// delete.
    pub struct DeleteRequest {
        /// Path.
        pub path: String,
        /// Expected version, -1 for any.
        pub version: i32,
    }
}

jute_record! {
    /// exists / getData / getChildren / getChildren2: a path and a watch flag.
    pub struct PathWatchRequest {
        /// Path.
        pub path: String,
        /// Whether to leave a one-shot watch.
        pub watch: bool,
    }
}

jute_record! {
    /// Reply to getData (and reconfig).
    pub struct GetDataResponse {
        /// The data.
        pub data: Option<Vec<u8>>,
        /// The node's Stat.
        pub stat: Stat,
    }
}

jute_record! {
    /// setData.
    pub struct SetDataRequest {
        /// Path.
        pub path: String,
        /// New data.
        pub data: Option<Vec<u8>>,
        /// Expected version, -1 for any.
        pub version: i32,
    }
}

jute_record! {
    /// A request that carries only a path (getACL, sync, getEphemerals,
    /// getAllChildrenNumber, deleteContainer).
    pub struct PathRequest {
        /// Path (a prefix, for getEphemerals).
        pub path: String,
    }
}

jute_record! {
    /// Reply to getACL.
    pub struct GetAclResponse {
        /// The ACL.
        pub acl: Vec<Acl>,
        /// The node's Stat.
        pub stat: Stat,
    }
}

jute_record! {
    /// setACL.
    pub struct SetAclRequest {
        /// Path.
        pub path: String,
        /// New ACL.
        pub acl: Vec<Acl>,
        /// Expected ACL version, -1 for any.
        pub version: i32,
    }
}

jute_record! {
    /// Reply to getChildren.
    pub struct GetChildrenResponse {
        /// Child names (unordered).
        pub children: Vec<String>,
    }
}

jute_record! {
    /// Reply to getChildren2.
    pub struct GetChildren2Response {
        /// Child names.
        pub children: Vec<String>,
        /// The parent's Stat.
        pub stat: Stat,
    }
}

jute_record! {
    /// check (in multi): a version condition on a path.
    pub struct CheckVersionRequest {
        /// Path.
        pub path: String,
        /// Required version.
        pub version: i32,
    }
}

jute_record! {
    /// auth (xid -4).
    pub struct AuthPacket {
        /// Always 0.
        pub auth_type: i32,
        /// Scheme, e.g. `digest`.
        pub scheme: String,
        /// Credentials, e.g. `user:password`.
        pub auth: Option<Vec<u8>>,
    }
}

jute_record! {
    /// setWatches (op 101): watches to re-arm after a reconnect.
    pub struct SetWatches {
        /// The client's last seen zxid.
        pub relative_zxid: i64,
        /// Data watches.
        pub data_watches: Vec<String>,
        /// Exists watches.
        pub exist_watches: Vec<String>,
        /// Child watches.
        pub child_watches: Vec<String>,
    }
}

jute_record! {
    /// setWatches2 (op 105): setWatches plus persistent watches.
    pub struct SetWatches2 {
        /// The client's last seen zxid.
        pub relative_zxid: i64,
        /// Data watches.
        pub data_watches: Vec<String>,
        /// Exists watches.
        pub exist_watches: Vec<String>,
        /// Child watches.
        pub child_watches: Vec<String>,
        /// Persistent watches.
        pub persistent_watches: Vec<String>,
        /// Persistent recursive watches.
        pub persistent_recursive_watches: Vec<String>,
    }
}

jute_record! {
    /// addWatch (op 106).
    pub struct AddWatchRequest {
        /// Path.
        pub path: String,
        /// 0 persistent, 1 persistent recursive.
        pub mode: i32,
    }
}

jute_record! {
    /// checkWatches / removeWatches.
    pub struct WatchesRequest {
        /// Path.
        pub path: String,
        /// [`crate::WatcherType`] value.
        pub watcher_type: i32,
    }
}

jute_record! {
    /// reconfig (op 16).
    pub struct ReconfigRequest {
        /// Servers joining (incremental).
        pub joining_servers: String,
        /// Server ids leaving (incremental).
        pub leaving_servers: String,
        /// Full membership (non-incremental).
        pub new_members: String,
        /// Expected config version, -1 to skip the check.
        pub cur_config_id: i64,
    }
}

jute_record! {
    /// A watch notification (after a reply header with xid -1).
    pub struct WatcherEvent {
        /// [`crate::EventType`] value.
        pub event_type: i32,
        /// [`crate::KeeperState`] value (3 from servers).
        pub state: i32,
        /// The node's path.
        pub path: String,
    }
}

jute_record! {
    /// Header of each operation and result inside multi.
    pub struct MultiHeader {
        /// Opcode, or -1 for an error result / the terminator.
        pub op: i32,
        /// True only on the terminator.
        pub done: bool,
        /// Error code of a result; -1 in requests.
        pub err: i32,
    }
}

jute_record! {
    /// SASL token exchange (op 102), request and response.
    pub struct SaslToken {
        /// Opaque token.
        pub token: Option<Vec<u8>>,
    }
}
