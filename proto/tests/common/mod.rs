//! Shared proptest strategies for every record, request, response and transaction of
//! corral-proto, plus small helpers used by several test files.
#![allow(dead_code)]

use corral_proto::*;
use proptest::collection::vec;
use proptest::prelude::*;

/// Arbitrary UTF-8 text, short, including the empty string and non-ASCII characters.
pub fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => Just(String::new()),
        4 => "\\PC{0,12}",
        2 => "/[a-z0-9/._-]{0,10}",
    ]
}

/// A `buffer`: null, empty, or arbitrary bytes, kept apart.
pub fn buffer() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(Vec::new())),
        4 => vec(any::<u8>(), 0..40).prop_map(Some),
    ]
}

/// A short list of strings (possibly empty).
pub fn strings() -> impl Strategy<Value = Vec<String>> {
    vec(text(), 0..5)
}

pub fn id() -> impl Strategy<Value = Id> {
    (text(), text()).prop_map(|(scheme, id)| Id { scheme, id })
}

pub fn acl() -> impl Strategy<Value = Acl> {
    (any::<i32>(), id()).prop_map(|(perms, id)| Acl { perms, id })
}

pub fn acls() -> impl Strategy<Value = Vec<Acl>> {
    vec(acl(), 0..4)
}

pub fn client_info() -> impl Strategy<Value = ClientInfo> {
    (text(), text()).prop_map(|(auth_scheme, user)| ClientInfo { auth_scheme, user })
}

prop_compose! {
    pub fn stat()(
        czxid in any::<i64>(), mzxid in any::<i64>(), ctime in any::<i64>(),
        mtime in any::<i64>(), version in any::<i32>(), cversion in any::<i32>(),
        aversion in any::<i32>(), ephemeral_owner in any::<i64>(),
        data_length in any::<i32>(), num_children in any::<i32>(), pzxid in any::<i64>(),
    ) -> Stat {
        Stat {
            czxid, mzxid, ctime, mtime, version, cversion, aversion, ephemeral_owner,
            data_length, num_children, pzxid,
        }
    }
}

prop_compose! {
    pub fn connect_request()(
        protocol_version in any::<i32>(), last_zxid_seen in any::<i64>(),
        timeout_ms in any::<i32>(), session_id in any::<i64>(),
        passwd in vec(any::<u8>(), 0..24), read_only in proptest::option::of(any::<bool>()),
    ) -> ConnectRequest {
        ConnectRequest { protocol_version, last_zxid_seen, timeout_ms, session_id, passwd, read_only }
    }
}

prop_compose! {
    pub fn connect_response()(
        protocol_version in any::<i32>(), timeout_ms in any::<i32>(),
        session_id in any::<i64>(), passwd in vec(any::<u8>(), 0..24),
        read_only in proptest::option::of(any::<bool>()),
    ) -> ConnectResponse {
        ConnectResponse { protocol_version, timeout_ms, session_id, passwd, read_only }
    }
}

pub fn request_header() -> impl Strategy<Value = RequestHeader> {
    (any::<i32>(), any::<i32>()).prop_map(|(xid, op)| RequestHeader { xid, op })
}

pub fn reply_header() -> impl Strategy<Value = ReplyHeader> {
    (any::<i32>(), any::<i64>(), any::<i32>()).prop_map(|(xid, zxid, err)| ReplyHeader {
        xid,
        zxid,
        err,
    })
}

pub fn create_request() -> impl Strategy<Value = CreateRequest> {
    (text(), buffer(), acls(), any::<i32>()).prop_map(|(path, data, acl, flags)| CreateRequest {
        path,
        data,
        acl,
        flags,
    })
}

pub fn create_ttl_request() -> impl Strategy<Value = CreateTtlRequest> {
    (text(), buffer(), acls(), any::<i32>(), any::<i64>()).prop_map(
        |(path, data, acl, flags, ttl)| CreateTtlRequest {
            path,
            data,
            acl,
            flags,
            ttl,
        },
    )
}

pub fn create_response() -> impl Strategy<Value = CreateResponse> {
    text().prop_map(|path| CreateResponse { path })
}

pub fn create2_response() -> impl Strategy<Value = Create2Response> {
    (text(), stat()).prop_map(|(path, stat)| Create2Response { path, stat })
}

pub fn delete_request() -> impl Strategy<Value = DeleteRequest> {
    (text(), any::<i32>()).prop_map(|(path, version)| DeleteRequest { path, version })
}

pub fn path_watch_request() -> impl Strategy<Value = PathWatchRequest> {
    (text(), any::<bool>()).prop_map(|(path, watch)| PathWatchRequest { path, watch })
}

pub fn get_data_response() -> impl Strategy<Value = GetDataResponse> {
    (buffer(), stat()).prop_map(|(data, stat)| GetDataResponse { data, stat })
}

pub fn set_data_request() -> impl Strategy<Value = SetDataRequest> {
    (text(), buffer(), any::<i32>()).prop_map(|(path, data, version)| SetDataRequest {
        path,
        data,
        version,
    })
}

pub fn path_request() -> impl Strategy<Value = PathRequest> {
    text().prop_map(|path| PathRequest { path })
}

pub fn get_acl_response() -> impl Strategy<Value = GetAclResponse> {
    (acls(), stat()).prop_map(|(acl, stat)| GetAclResponse { acl, stat })
}

pub fn set_acl_request() -> impl Strategy<Value = SetAclRequest> {
    (text(), acls(), any::<i32>()).prop_map(|(path, acl, version)| SetAclRequest {
        path,
        acl,
        version,
    })
}

pub fn get_children_response() -> impl Strategy<Value = GetChildrenResponse> {
    strings().prop_map(|children| GetChildrenResponse { children })
}

pub fn get_children2_response() -> impl Strategy<Value = GetChildren2Response> {
    (strings(), stat()).prop_map(|(children, stat)| GetChildren2Response { children, stat })
}

pub fn check_version_request() -> impl Strategy<Value = CheckVersionRequest> {
    (text(), any::<i32>()).prop_map(|(path, version)| CheckVersionRequest { path, version })
}

pub fn auth_packet() -> impl Strategy<Value = AuthPacket> {
    (any::<i32>(), text(), buffer()).prop_map(|(auth_type, scheme, auth)| AuthPacket {
        auth_type,
        scheme,
        auth,
    })
}

pub fn set_watches() -> impl Strategy<Value = SetWatches> {
    (any::<i64>(), strings(), strings(), strings()).prop_map(
        |(relative_zxid, data_watches, exist_watches, child_watches)| SetWatches {
            relative_zxid,
            data_watches,
            exist_watches,
            child_watches,
        },
    )
}

pub fn set_watches2() -> impl Strategy<Value = SetWatches2> {
    (
        any::<i64>(),
        strings(),
        strings(),
        strings(),
        strings(),
        strings(),
    )
        .prop_map(
            |(relative_zxid, data_watches, exist_watches, child_watches, persistent, recursive)| {
                SetWatches2 {
                    relative_zxid,
                    data_watches,
                    exist_watches,
                    child_watches,
                    persistent_watches: persistent,
                    persistent_recursive_watches: recursive,
                }
            },
        )
}

pub fn add_watch_request() -> impl Strategy<Value = AddWatchRequest> {
    (text(), any::<i32>()).prop_map(|(path, mode)| AddWatchRequest { path, mode })
}

pub fn watches_request() -> impl Strategy<Value = WatchesRequest> {
    (text(), any::<i32>()).prop_map(|(path, watcher_type)| WatchesRequest { path, watcher_type })
}

pub fn reconfig_request() -> impl Strategy<Value = ReconfigRequest> {
    (text(), text(), text(), any::<i64>()).prop_map(
        |(joining_servers, leaving_servers, new_members, cur_config_id)| ReconfigRequest {
            joining_servers,
            leaving_servers,
            new_members,
            cur_config_id,
        },
    )
}

pub fn watcher_event() -> impl Strategy<Value = WatcherEvent> {
    (any::<i32>(), any::<i32>(), text()).prop_map(|(event_type, state, path)| WatcherEvent {
        event_type,
        state,
        path,
    })
}

pub fn multi_header() -> impl Strategy<Value = MultiHeader> {
    (any::<i32>(), any::<bool>(), any::<i32>()).prop_map(|(op, done, err)| MultiHeader {
        op,
        done,
        err,
    })
}

pub fn sasl_token() -> impl Strategy<Value = SaslToken> {
    buffer().prop_map(|token| SaslToken { token })
}

// ---- transaction records ----------------------------------------------------------------

pub fn txn_header() -> impl Strategy<Value = TxnHeader> {
    (
        any::<i64>(),
        any::<i32>(),
        any::<i64>(),
        any::<i64>(),
        any::<i32>(),
    )
        .prop_map(|(client_id, cxid, zxid, time, txn_type)| TxnHeader {
            client_id,
            cxid,
            zxid,
            time,
            txn_type,
        })
}

pub fn create_txn() -> impl Strategy<Value = CreateTxn> {
    (text(), buffer(), acls(), any::<bool>(), any::<i32>()).prop_map(
        |(path, data, acl, ephemeral, parent_cversion)| CreateTxn {
            path,
            data,
            acl,
            ephemeral,
            parent_cversion,
        },
    )
}

pub fn create_container_txn() -> impl Strategy<Value = CreateContainerTxn> {
    (text(), buffer(), acls(), any::<i32>()).prop_map(|(path, data, acl, parent_cversion)| {
        CreateContainerTxn {
            path,
            data,
            acl,
            parent_cversion,
        }
    })
}

pub fn create_ttl_txn() -> impl Strategy<Value = CreateTtlTxn> {
    (text(), buffer(), acls(), any::<i32>(), any::<i64>()).prop_map(
        |(path, data, acl, parent_cversion, ttl)| CreateTtlTxn {
            path,
            data,
            acl,
            parent_cversion,
            ttl,
        },
    )
}

pub fn delete_txn() -> impl Strategy<Value = DeleteTxn> {
    text().prop_map(|path| DeleteTxn { path })
}

pub fn set_data_txn() -> impl Strategy<Value = SetDataTxn> {
    (text(), buffer(), any::<i32>()).prop_map(|(path, data, version)| SetDataTxn {
        path,
        data,
        version,
    })
}

pub fn set_acl_txn() -> impl Strategy<Value = SetAclTxn> {
    (text(), acls(), any::<i32>()).prop_map(|(path, acl, version)| SetAclTxn { path, acl, version })
}

pub fn check_version_txn() -> impl Strategy<Value = CheckVersionTxn> {
    (text(), any::<i32>()).prop_map(|(path, version)| CheckVersionTxn { path, version })
}

pub fn create_session_txn() -> impl Strategy<Value = CreateSessionTxn> {
    any::<i32>().prop_map(|timeout_ms| CreateSessionTxn { timeout_ms })
}

pub fn close_session_txn() -> impl Strategy<Value = CloseSessionTxn> {
    strings().prop_map(|paths_to_delete| CloseSessionTxn { paths_to_delete })
}

/// Every transaction variant except `Multi`.
pub fn single_txn() -> impl Strategy<Value = Txn> {
    prop_oneof![
        create_txn().prop_map(Txn::Create),
        create_container_txn().prop_map(Txn::CreateContainer),
        create_ttl_txn().prop_map(Txn::CreateTtl),
        delete_txn().prop_map(Txn::Delete),
        delete_txn().prop_map(Txn::DeleteContainer),
        set_data_txn().prop_map(Txn::SetData),
        set_acl_txn().prop_map(Txn::SetAcl),
        check_version_txn().prop_map(Txn::Check),
        create_session_txn().prop_map(Txn::CreateSession),
        close_session_txn().prop_map(Txn::CloseSession),
        any::<i32>().prop_map(Txn::Error),
    ]
}

/// Every transaction variant, `Multi` holding non-multi transactions (as the log allows).
pub fn txn() -> impl Strategy<Value = Txn> {
    prop_oneof![
        6 => single_txn(),
        1 => vec(single_txn(), 0..5).prop_map(Txn::Multi),
    ]
}

/// Fails to compile when a `Txn` variant is added, so the strategies above get updated.
pub fn txn_variant(t: &Txn) -> &'static str {
    match t {
        Txn::Create(_) => "Create",
        Txn::CreateContainer(_) => "CreateContainer",
        Txn::CreateTtl(_) => "CreateTtl",
        Txn::Delete(_) => "Delete",
        Txn::DeleteContainer(_) => "DeleteContainer",
        Txn::SetData(_) => "SetData",
        Txn::SetAcl(_) => "SetAcl",
        Txn::Check(_) => "Check",
        Txn::CreateSession(_) => "CreateSession",
        Txn::CloseSession(_) => "CloseSession",
        Txn::Error(_) => "Error",
        Txn::Multi(_) => "Multi",
    }
}

// ---- requests ----------------------------------------------------------------------------

/// An operation allowed inside multi (op 14): create, create2, createContainer, createTTL,
/// delete, setData, check.
pub fn multi_op() -> impl Strategy<Value = Request> {
    prop_oneof![
        create_request().prop_map(Request::Create),
        create_request().prop_map(Request::Create2),
        create_request().prop_map(Request::CreateContainer),
        create_ttl_request().prop_map(Request::CreateTtl),
        delete_request().prop_map(Request::Delete),
        set_data_request().prop_map(Request::SetData),
        check_version_request().prop_map(Request::Check),
    ]
}

/// An operation allowed inside multiRead (op 22): getData, getChildren.
pub fn multi_read_op() -> impl Strategy<Value = Request> {
    prop_oneof![
        path_watch_request().prop_map(Request::GetData),
        path_watch_request().prop_map(Request::GetChildren),
    ]
}

/// Every request variant.
pub fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        create_request().prop_map(Request::Create),
        create_request().prop_map(Request::Create2),
        create_request().prop_map(Request::CreateContainer),
        create_ttl_request().prop_map(Request::CreateTtl),
        delete_request().prop_map(Request::Delete),
        path_watch_request().prop_map(Request::Exists),
        path_watch_request().prop_map(Request::GetData),
        set_data_request().prop_map(Request::SetData),
        path_request().prop_map(Request::GetAcl),
        set_acl_request().prop_map(Request::SetAcl),
        path_watch_request().prop_map(Request::GetChildren),
        path_watch_request().prop_map(Request::GetChildren2),
        path_request().prop_map(Request::Sync),
        Just(Request::Ping),
        check_version_request().prop_map(Request::Check),
        vec(multi_op(), 0..5).prop_map(Request::Multi),
        vec(multi_read_op(), 0..5).prop_map(Request::MultiRead),
        reconfig_request().prop_map(Request::Reconfig),
        watches_request().prop_map(Request::CheckWatches),
        watches_request().prop_map(Request::RemoveWatches),
        path_request().prop_map(Request::DeleteContainer),
        auth_packet().prop_map(Request::Auth),
        set_watches().prop_map(Request::SetWatches),
        set_watches2().prop_map(Request::SetWatches2),
        sasl_token().prop_map(Request::Sasl),
        path_request().prop_map(Request::GetEphemerals),
        path_request().prop_map(Request::GetAllChildrenNumber),
        add_watch_request().prop_map(Request::AddWatch),
        Just(Request::WhoAmI),
        Just(Request::CloseSession),
    ]
}

/// Fails to compile when a `Request` variant is added, so `request()` gets updated.
pub fn request_variant(r: &Request) -> &'static str {
    use Request::*;
    match r {
        Create(_) => "Create",
        Create2(_) => "Create2",
        CreateContainer(_) => "CreateContainer",
        CreateTtl(_) => "CreateTtl",
        Delete(_) => "Delete",
        Exists(_) => "Exists",
        GetData(_) => "GetData",
        SetData(_) => "SetData",
        GetAcl(_) => "GetAcl",
        SetAcl(_) => "SetAcl",
        GetChildren(_) => "GetChildren",
        GetChildren2(_) => "GetChildren2",
        Sync(_) => "Sync",
        Ping => "Ping",
        Check(_) => "Check",
        Multi(_) => "Multi",
        MultiRead(_) => "MultiRead",
        Reconfig(_) => "Reconfig",
        CheckWatches(_) => "CheckWatches",
        RemoveWatches(_) => "RemoveWatches",
        DeleteContainer(_) => "DeleteContainer",
        Auth(_) => "Auth",
        SetWatches(_) => "SetWatches",
        SetWatches2(_) => "SetWatches2",
        Sasl(_) => "Sasl",
        GetEphemerals(_) => "GetEphemerals",
        GetAllChildrenNumber(_) => "GetAllChildrenNumber",
        AddWatch(_) => "AddWatch",
        WhoAmI => "WhoAmI",
        CloseSession => "CloseSession",
    }
}

// ---- responses ---------------------------------------------------------------------------

/// Every multi / multiRead result variant.
pub fn multi_result() -> impl Strategy<Value = MultiResult> {
    prop_oneof![
        text().prop_map(MultiResult::Create),
        create2_response().prop_map(MultiResult::Create2),
        Just(MultiResult::Delete),
        stat().prop_map(MultiResult::SetData),
        Just(MultiResult::Check),
        get_data_response().prop_map(MultiResult::GetData),
        strings().prop_map(MultiResult::GetChildren),
        any::<i32>().prop_map(MultiResult::Error),
    ]
}

/// Fails to compile when a `MultiResult` variant is added.
pub fn multi_result_variant(r: &MultiResult) -> &'static str {
    match r {
        MultiResult::Create(_) => "Create",
        MultiResult::Create2(_) => "Create2",
        MultiResult::Delete => "Delete",
        MultiResult::SetData(_) => "SetData",
        MultiResult::Check => "Check",
        MultiResult::GetData(_) => "GetData",
        MultiResult::GetChildren(_) => "GetChildren",
        MultiResult::Error(_) => "Error",
    }
}

/// The opcodes whose successful reply has no body.
pub const EMPTY_REPLY_OPS: &[OpCode] = &[
    OpCode::Delete,
    OpCode::Ping,
    OpCode::Check,
    OpCode::CheckWatches,
    OpCode::RemoveWatches,
    OpCode::DeleteContainer,
    OpCode::Auth,
    OpCode::SetWatches,
    OpCode::SetWatches2,
    OpCode::CloseSession,
];

/// A successful response together with an opcode whose reply it is.
pub fn op_and_response() -> impl Strategy<Value = (OpCode, Response)> {
    prop_oneof![
        proptest::sample::select(EMPTY_REPLY_OPS).prop_map(|op| (op, Response::Empty)),
        create_response().prop_map(|r| (OpCode::Create, Response::Create(r))),
        (
            proptest::sample::select(
                &[OpCode::Create2, OpCode::CreateContainer, OpCode::CreateTtl][..]
            ),
            create2_response()
        )
            .prop_map(|(op, r)| (op, Response::Create2(r))),
        (
            proptest::sample::select(&[OpCode::Exists, OpCode::SetData, OpCode::SetAcl][..]),
            stat()
        )
            .prop_map(|(op, s)| (op, Response::Stat(s))),
        (
            proptest::sample::select(&[OpCode::GetData, OpCode::Reconfig][..]),
            get_data_response()
        )
            .prop_map(|(op, r)| (op, Response::GetData(r))),
        get_acl_response().prop_map(|r| (OpCode::GetAcl, Response::GetAcl(r))),
        get_children_response().prop_map(|r| (OpCode::GetChildren, Response::GetChildren(r))),
        get_children2_response().prop_map(|r| (OpCode::GetChildren2, Response::GetChildren2(r))),
        text().prop_map(|p| (OpCode::Sync, Response::Sync(p))),
        (
            proptest::sample::select(&[OpCode::Multi, OpCode::MultiRead][..]),
            vec(multi_result(), 0..5)
        )
            .prop_map(|(op, rs)| (op, Response::Multi(rs))),
        sasl_token().prop_map(|t| (OpCode::Sasl, Response::Sasl(t))),
        strings().prop_map(|e| (OpCode::GetEphemerals, Response::GetEphemerals(e))),
        any::<i32>().prop_map(|n| (OpCode::GetAllChildrenNumber, Response::AllChildrenNumber(n))),
        Just((OpCode::AddWatch, Response::AddWatch)),
        vec(client_info(), 0..4).prop_map(|c| (OpCode::WhoAmI, Response::WhoAmI(c))),
    ]
}

/// Fails to compile when a `Response` variant is added, so `op_and_response()` gets updated.
pub fn response_variant(r: &Response) -> &'static str {
    match r {
        Response::Empty => "Empty",
        Response::Create(_) => "Create",
        Response::Create2(_) => "Create2",
        Response::Stat(_) => "Stat",
        Response::GetData(_) => "GetData",
        Response::GetAcl(_) => "GetAcl",
        Response::GetChildren(_) => "GetChildren",
        Response::GetChildren2(_) => "GetChildren2",
        Response::Sync(_) => "Sync",
        Response::Multi(_) => "Multi",
        Response::Sasl(_) => "Sasl",
        Response::GetEphemerals(_) => "GetEphemerals",
        Response::AllChildrenNumber(_) => "AllChildrenNumber",
        Response::AddWatch => "AddWatch",
        Response::WhoAmI(_) => "WhoAmI",
    }
}

/// Every opcode the crate knows.
pub const ALL_OPS: &[OpCode] = &[
    OpCode::Notification,
    OpCode::Create,
    OpCode::Delete,
    OpCode::Exists,
    OpCode::GetData,
    OpCode::SetData,
    OpCode::GetAcl,
    OpCode::SetAcl,
    OpCode::GetChildren,
    OpCode::Sync,
    OpCode::Ping,
    OpCode::GetChildren2,
    OpCode::Check,
    OpCode::Multi,
    OpCode::Create2,
    OpCode::Reconfig,
    OpCode::CheckWatches,
    OpCode::RemoveWatches,
    OpCode::CreateContainer,
    OpCode::DeleteContainer,
    OpCode::CreateTtl,
    OpCode::MultiRead,
    OpCode::Auth,
    OpCode::SetWatches,
    OpCode::Sasl,
    OpCode::GetEphemerals,
    OpCode::GetAllChildrenNumber,
    OpCode::SetWatches2,
    OpCode::AddWatch,
    OpCode::WhoAmI,
    OpCode::CreateSession,
    OpCode::CloseSession,
    OpCode::Error,
];

/// Encodes a response body.
pub fn response_bytes(r: &Response) -> Vec<u8> {
    let mut v = Vec::new();
    r.write(&mut v);
    v
}

/// A complete request frame: length prefix, RequestHeader, body.
pub fn request_frame(xid: i32, req: &Request) -> Vec<u8> {
    let mut out = Vec::new();
    let at = frame::begin_frame(&mut out);
    RequestHeader {
        xid,
        op: req.op() as i32,
    }
    .write(&mut out);
    req.write_body(&mut out);
    frame::end_frame(&mut out, at);
    out
}

/// A complete reply frame: length prefix, ReplyHeader, body (if any).
pub fn reply_frame(header: &ReplyHeader, body: Option<&Response>) -> Vec<u8> {
    let mut out = Vec::new();
    let at = frame::begin_frame(&mut out);
    header.write(&mut out);
    if let Some(b) = body {
        b.write(&mut out);
    }
    frame::end_frame(&mut out, at);
    out
}
