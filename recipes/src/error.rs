//! The one error type of the recipes.

use thiserror::Error;

use crate::lock::LockState;

/// Everything a recipe operation can fail with.
///
/// Client failures (connection loss, session expiry, ACLs, ...) are wrapped unchanged in
/// [`RecipeError::Client`]; the other variants are conditions the recipes detect
/// themselves. A timed-out acquire is not an error: the `*_timeout` methods return
/// `Ok(None)`.
///
/// Errors are `Clone + PartialEq`, so tests can compare them:
///
/// ```
/// use corral_recipes::RecipeError;
/// let e = RecipeError::from(corral_client::Error::SessionExpired);
/// assert_eq!(e, RecipeError::Client(corral_client::Error::SessionExpired));
/// assert!(e.is_terminal());
/// assert!(!RecipeError::UpgradeNotSupported.is_retryable());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RecipeError {
    /// A client operation failed.
    #[error(transparent)]
    Client(#[from] corral_client::Error),
    /// Our own lock or lease node disappeared while we were waiting: it was deleted by
    /// someone else, or the session that owned it expired.
    #[error("our node {0} was deleted while waiting (deleted by another client, or the session expired)")]
    NodeDeleted(String),
    /// The lock this handle already holds was suspended or lost; acquiring again through
    /// the same handle would queue behind our own stale node. Drop its guards first.
    #[error(
        "this handle's current hold is {0:?}, not held; drop its guards before acquiring again"
    )]
    HoldNotValid(LockState),
    /// A read lock holder asked for the write lock through the same handle, which would
    /// wait for itself forever (as in Curator, upgrading is not supported).
    #[error("a read lock holder cannot take the write lock (upgrade is not supported)")]
    UpgradeNotSupported,
    /// A write lock holder asked for the read lock, but another writer queued between our
    /// write node and our read node: keeping the read lock after releasing the write lock
    /// would let that writer in while we read. The write lock is still held.
    #[error("cannot take the read lock while writing: another writer is queued in between")]
    DowngradeBlocked,
    /// An argument was invalid (for example a semaphore with zero leases).
    #[error("bad arguments: {0}")]
    BadArguments(String),
    /// The recipe was closed (or its background task ended: the client was closed, or its
    /// session expired without renewal) before the operation could complete.
    #[error("the recipe was closed")]
    Closed,
    /// Node data could not be encoded or decoded (for example a service instance that is
    /// not valid JSON).
    #[error("invalid node data: {0}")]
    InvalidData(String),
    /// No service instance with this id is registered through this registry.
    #[error("no service instance with id {0:?} is registered here")]
    NotRegistered(String),
}

impl RecipeError {
    /// Whether the same operation may succeed if tried again later (see
    /// [`corral_client::Error::is_retryable`]).
    pub fn is_retryable(&self) -> bool {
        matches!(self, RecipeError::Client(e) if e.is_retryable())
    }

    /// Whether the client's session is over (expired, closed, auth failed): every later
    /// operation with the same client fails too.
    pub fn is_terminal(&self) -> bool {
        matches!(self, RecipeError::Client(e) if e.is_terminal())
    }
}
