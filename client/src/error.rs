//! The one error type of the client.

use corral_proto::ErrorCode;
use thiserror::Error;

use crate::multi::OpResult;

/// Everything a client operation can fail with.
///
/// One variant per ZooKeeper error code (`KeeperException.Code`), plus the conditions the
/// client itself detects: [`Error::ConnectionLoss`], [`Error::SessionExpired`],
/// [`Error::Timeout`], [`Error::ClientClosed`] and [`Error::BadArguments`].
///
/// Errors are `Clone + PartialEq`, so tests can compare them:
///
/// ```
/// use corral_client::Error;
/// use corral_proto::ErrorCode;
/// assert_eq!(Error::from_code(-101), Error::NoNode);
/// assert_eq!(Error::NoNode.code(), Some(ErrorCode::NoNode));
/// assert!(Error::ConnectionLoss.is_retryable());
/// assert!(Error::SessionExpired.is_terminal());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// The node does not exist (for a create: its parent does not).
    #[error("no node: the node (or, for a create, its parent) does not exist")]
    NoNode,
    /// The node already exists.
    #[error("node exists: a node with this path already exists")]
    NodeExists,
    /// The expected version did not match the node's current version.
    #[error("bad version: the node's version differs from the expected one")]
    BadVersion,
    /// The node has children and cannot be deleted.
    #[error("not empty: the node has children")]
    NotEmpty,
    /// Ephemeral nodes cannot have children.
    #[error("no children for ephemerals: an ephemeral node cannot have children")]
    NoChildrenForEphemerals,
    /// The caller's identities lack a permission the node's ACL requires.
    #[error("no auth: the ACL does not grant this permission to the client's identities")]
    NoAuth,
    /// The ACL is empty or names an unknown scheme or a malformed id.
    #[error("invalid ACL: empty, unknown scheme or malformed id")]
    InvalidAcl,
    /// Authentication failed; the server closed the connection.
    #[error("authentication failed")]
    AuthFailed,
    /// The session is expired (or closed): its ephemerals and watches are gone.
    #[error("session expired: create a new client to start a new session")]
    SessionExpired,
    /// The session moved to another server.
    #[error("session moved to another server")]
    SessionMoved,
    /// A write was sent to a read-only server.
    #[error("not read-only: the server is read-only and the operation writes")]
    NotReadOnly,
    /// An ephemeral was created on a local session that cannot be upgraded.
    #[error("ephemeral on local session")]
    EphemeralOnLocalSession,
    /// No watch of the named type exists on the path.
    #[error("no watcher: no watch of this type is set on the path")]
    NoWatcher,
    /// The server rejected a reconfig because reconfiguration is disabled.
    #[error("reconfig disabled")]
    ReconfigDisabled,
    /// The session was closed because the client did not authenticate with SASL.
    #[error("session closed: SASL authentication is required")]
    SessionClosedRequireSaslAuth,
    /// A quota was exceeded.
    #[error("quota exceeded")]
    QuotaExceeded,
    /// The server shed this request under load; retry with back-off.
    #[error("throttled: the server dropped the request under load")]
    ThrottledOp,
    /// A multi operation was not executed because an earlier one failed.
    #[error("runtime inconsistency")]
    RuntimeInconsistency,
    /// The server detected inconsistent data.
    #[error("data inconsistency")]
    DataInconsistency,
    /// The server could not decode the request.
    #[error("marshalling error: the server could not decode the request")]
    MarshallingError,
    /// The server does not implement the operation (or it is disabled, e.g. TTL nodes
    /// without `extendedTypesEnabled`).
    #[error("unimplemented: the server does not support this operation (or it is disabled)")]
    Unimplemented,
    /// The operation timed out on the server.
    #[error("operation timeout")]
    OperationTimeout,
    /// Invalid arguments: rejected by the server, or by the client before sending.
    #[error("bad arguments: {0}")]
    BadArguments(String),
    /// The server does not know the session.
    #[error("unknown session")]
    UnknownSession,
    /// A reconfig would leave no quorum.
    #[error("new config has no quorum")]
    NewConfigNoQuorum,
    /// Another reconfig is in progress.
    #[error("reconfig in progress")]
    ReconfigInProgress,
    /// Generic system error (code -1).
    #[error("system error")]
    SystemError,
    /// Generic API error (code -100).
    #[error("API error")]
    ApiError,
    /// Invalid callback (code -113).
    #[error("invalid callback")]
    InvalidCallback,
    /// The request timed out (code -122).
    #[error("request timeout")]
    RequestTimeout,
    /// A code this client does not know.
    #[error("unknown error code {0}")]
    Unknown(i32),

    /// The connection broke (or could not be made) before the reply arrived.
    ///
    /// A write may or may not have taken effect. The session usually survives: the client
    /// reconnects on its own.
    #[error("connection loss: the reply did not arrive; a write may or may not have applied")]
    ConnectionLoss,
    /// The client gave up waiting (for example, `connect` found no server in time).
    #[error("timeout: no answer in time")]
    Timeout,
    /// The client was closed; no further operations are possible.
    #[error("client closed")]
    ClientClosed,
    /// A multi operation failed: nothing was applied.
    #[error("multi failed at operation {index}: {source}")]
    MultiFailed {
        /// Index of the first failing operation.
        index: usize,
        /// Its error.
        source: Box<Error>,
        /// One result per operation: [`OpResult::Error`] for the failing one,
        /// [`OpResult::Aborted`] for the others.
        results: Vec<OpResult>,
    },
    /// A persistent watcher's consumer fell too far behind; the watcher was closed and
    /// events were lost. Read the state again and set a new watch.
    #[error("watcher lagged: its event queue overflowed and it was closed")]
    WatcherLagged,
}

impl Error {
    /// The error for a wire error code (`ReplyHeader.err`).
    pub fn from_code(code: i32) -> Error {
        use ErrorCode as C;
        let Some(c) = ErrorCode::from_i32(code) else {
            return Error::Unknown(code);
        };
        match c {
            C::Ok => Error::Unknown(0),
            C::SystemError => Error::SystemError,
            C::RuntimeInconsistency => Error::RuntimeInconsistency,
            C::DataInconsistency => Error::DataInconsistency,
            C::ConnectionLoss => Error::ConnectionLoss,
            C::MarshallingError => Error::MarshallingError,
            C::Unimplemented => Error::Unimplemented,
            C::OperationTimeout => Error::OperationTimeout,
            C::BadArguments => Error::BadArguments("rejected by the server".into()),
            C::UnknownSession => Error::UnknownSession,
            C::NewConfigNoQuorum => Error::NewConfigNoQuorum,
            C::ReconfigInProgress => Error::ReconfigInProgress,
            C::ApiError => Error::ApiError,
            C::NoNode => Error::NoNode,
            C::NoAuth => Error::NoAuth,
            C::BadVersion => Error::BadVersion,
            C::NoChildrenForEphemerals => Error::NoChildrenForEphemerals,
            C::NodeExists => Error::NodeExists,
            C::NotEmpty => Error::NotEmpty,
            C::SessionExpired => Error::SessionExpired,
            C::InvalidCallback => Error::InvalidCallback,
            C::InvalidAcl => Error::InvalidAcl,
            C::AuthFailed => Error::AuthFailed,
            C::SessionMoved => Error::SessionMoved,
            C::NotReadOnly => Error::NotReadOnly,
            C::EphemeralOnLocalSession => Error::EphemeralOnLocalSession,
            C::NoWatcher => Error::NoWatcher,
            C::RequestTimeout => Error::RequestTimeout,
            C::ReconfigDisabled => Error::ReconfigDisabled,
            C::SessionClosedRequireSaslAuth => Error::SessionClosedRequireSaslAuth,
            C::QuotaExceeded => Error::QuotaExceeded,
            C::ThrottledOp => Error::ThrottledOp,
            _ => Error::Unknown(code),
        }
    }

    /// The ZooKeeper error code this error corresponds to, if any.
    ///
    /// Client-side conditions map to ZooKeeper's client codes where one exists
    /// (`ConnectionLoss`, `OperationTimeout` for [`Error::Timeout`]); [`Error::ClientClosed`]
    /// and [`Error::WatcherLagged`] have none. [`Error::MultiFailed`] reports the failing
    /// operation's code.
    pub fn code(&self) -> Option<ErrorCode> {
        use ErrorCode as C;
        Some(match self {
            Error::NoNode => C::NoNode,
            Error::NodeExists => C::NodeExists,
            Error::BadVersion => C::BadVersion,
            Error::NotEmpty => C::NotEmpty,
            Error::NoChildrenForEphemerals => C::NoChildrenForEphemerals,
            Error::NoAuth => C::NoAuth,
            Error::InvalidAcl => C::InvalidAcl,
            Error::AuthFailed => C::AuthFailed,
            Error::SessionExpired => C::SessionExpired,
            Error::SessionMoved => C::SessionMoved,
            Error::NotReadOnly => C::NotReadOnly,
            Error::EphemeralOnLocalSession => C::EphemeralOnLocalSession,
            Error::NoWatcher => C::NoWatcher,
            Error::ReconfigDisabled => C::ReconfigDisabled,
            Error::SessionClosedRequireSaslAuth => C::SessionClosedRequireSaslAuth,
            Error::QuotaExceeded => C::QuotaExceeded,
            Error::ThrottledOp => C::ThrottledOp,
            Error::RuntimeInconsistency => C::RuntimeInconsistency,
            Error::DataInconsistency => C::DataInconsistency,
            Error::MarshallingError => C::MarshallingError,
            Error::Unimplemented => C::Unimplemented,
            Error::OperationTimeout | Error::Timeout => C::OperationTimeout,
            Error::BadArguments(_) => C::BadArguments,
            Error::UnknownSession => C::UnknownSession,
            Error::NewConfigNoQuorum => C::NewConfigNoQuorum,
            Error::ReconfigInProgress => C::ReconfigInProgress,
            Error::SystemError => C::SystemError,
            Error::ApiError => C::ApiError,
            Error::InvalidCallback => C::InvalidCallback,
            Error::RequestTimeout => C::RequestTimeout,
            Error::ConnectionLoss => C::ConnectionLoss,
            Error::MultiFailed { source, .. } => return source.code(),
            Error::Unknown(_) | Error::ClientClosed | Error::WatcherLagged => return None,
        })
    }

    /// Whether trying the same operation again later may succeed: the connection broke,
    /// the server shed load, or something timed out. The session is still usable.
    ///
    /// Retrying a *write* after [`Error::ConnectionLoss`] may apply it twice; the client
    /// only retries idempotent operations on its own (see [`crate::RetryPolicy`]).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::ConnectionLoss
                | Error::OperationTimeout
                | Error::RequestTimeout
                | Error::ThrottledOp
                | Error::Timeout
        )
    }

    /// Whether the client can no longer be used: the session expired, authentication
    /// failed, or the client was closed. Every later operation fails the same way.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Error::SessionExpired
                | Error::AuthFailed
                | Error::ClientClosed
                | Error::SessionClosedRequireSaslAuth
        )
    }

    pub(crate) fn bad_arguments(msg: impl Into<String>) -> Error {
        Error::BadArguments(msg.into())
    }
}

impl From<corral_proto::path::PathError> for Error {
    fn from(e: corral_proto::path::PathError) -> Self {
        Error::BadArguments(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_code_round_trips() {
        for code in [
            -1, -2, -3, -4, -5, -6, -7, -8, -12, -13, -14, -100, -101, -102, -103, -108, -110,
            -111, -112, -113, -114, -115, -118, -119, -120, -121, -122, -123, -124, -125, -127,
        ] {
            let e = Error::from_code(code);
            assert_eq!(e.code().map(|c| c.code()), Some(code), "{e:?}");
        }
    }

    #[test]
    fn unknown_codes_are_kept() {
        assert_eq!(Error::from_code(-126), Error::Unknown(-126));
        assert_eq!(Error::Unknown(-126).code(), None);
    }

    #[test]
    fn messages_explain_the_condition() {
        assert!(Error::NoNode.to_string().contains("does not exist"));
        let e = Error::MultiFailed {
            index: 1,
            source: Box::new(Error::BadVersion),
            results: vec![],
        };
        assert!(e.to_string().contains("operation 1"), "{e}");
        assert_eq!(e.code(), Some(ErrorCode::BadVersion));
    }
}
