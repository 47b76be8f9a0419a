//! Distributed locks: a fair reentrant [`Mutex`], a [`RwLock`], a counting [`Semaphore`],
//! and a [`SimpleLock`] for contrast.
//!
//! All of them use Curator's node layouts (`InterProcessMutex`,
//! `InterProcessReadWriteLock`, `InterProcessSemaphoreV2`), so Rust and Java (Curator 5)
//! processes can share a lock, and all of them share the same machinery:
//!
//! * **Protected creates**: each node name carries a fresh UUID (`_c_<uuid>-…`); after a
//!   connection loss during the create, the recipe finds its node by that prefix instead
//!   of creating a second one.
//! * **No herd**: each waiter watches exactly one node (except [`SimpleLock`]).
//! * **Guards**: an acquisition returns a guard. Dropping it releases the lock (the delete
//!   completes in the background and is retried across connection loss); cancelling an
//!   acquire (dropping its future) or timing out deletes its node, so nothing is left
//!   behind.
//! * **Loss is reported**: a guard's [`LockState`] becomes `Suspended` when the connection
//!   drops and `Lost` when the session expires or its node is deleted
//!   (`is_held()`, `not_held()`, `state_watcher()`); it never silently keeps believing it
//!   holds the lock.
//! * **Fencing tokens**: `fencing_token()` is the `czxid` of the lock node, strictly
//!   increasing across acquisitions of one lock, to hand to the resource the lock
//!   protects.
//!
//! ```no_run
//! use corral_client::Client;
//! use corral_recipes::lock::{Mutex, RwLock, Semaphore};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::connect("127.0.0.1:2181").await?;
//! let guard = Mutex::new(client.clone(), "/app/locks/job").acquire().await?;
//! let read = RwLock::new(client.clone(), "/app/locks/config").read().await?;
//! let lease = Semaphore::new(client.clone(), "/app/slots", 3).acquire().await?;
//! drop((guard, read, lease));
//! # Ok(()) }
//! ```

pub(crate) mod common;
mod hold;
mod mutex;
mod rw_lock;
mod semaphore;
mod sequential;
mod simple;

pub use hold::LockState;
pub use mutex::{Mutex, MutexGuard};
pub use rw_lock::{DowngradeError, ReadGuard, RwLock, WriteGuard};
pub use semaphore::{Lease, Semaphore};
pub use simple::{SimpleGuard, SimpleLock};
