//! A counting semaphore with Curator's `InterProcessSemaphoreV2` layout.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use corral_client::{Client, Zxid};
use tokio::time::Instant;
use uuid::Uuid;

use super::common::{
    join, protected_create, protected_prefix, reconnect_bound, until, PendingNode, Target,
};
use super::hold::{guard_accessors, Hold, HoldRef};
use super::mutex::Mutex;
use crate::RecipeError;

/// Curator's `LOCK_PARENT`: the mutex that serializes lease takers.
const LOCK_PARENT: &str = "locks";
/// Curator's `LEASE_PARENT`: one ephemeral-sequential node per lease.
const LEASE_PARENT: &str = "leases";
/// Curator's `LEASE_BASE_NAME`: lease nodes are `leases/_c_<uuid>-lease-<seq>`.
const LEASE_BASE_NAME: &str = "lease-";

/// A distributed counting semaphore: at most `max_leases` leases are out at a time
/// (Curator's `InterProcessSemaphoreV2` with a fixed count).
///
/// # How it works
///
/// Curator's layout and algorithm, so Java and Rust processes share one semaphore:
/// a taker acquires the fair [`Mutex`] at `<path>/locks`, creates its lease node
/// `<path>/leases/_c_<uuid>-lease-<seq>` (ephemeral-sequential, protected), and, still holding
/// the mutex, waits until `<path>/leases` has at most `max_leases` children, watching that
/// directory. Then it releases the mutex. Only the mutex holder watches the leases, so a
/// returned lease wakes one taker (no herd), and takers are served in arrival order.
///
/// Every child of `<path>/leases` counts as a lease, as in Curator.
///
/// Leases are not reentrant: each [`Semaphore::acquire`] takes one more lease, and
/// concurrent calls on one handle are independent takers.
///
/// # Example
///
/// ```no_run
/// use corral_client::Client;
/// use corral_recipes::lock::Semaphore;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let client = Client::connect("127.0.0.1:2181").await?;
/// let slots = Semaphore::new(client.clone(), "/semaphores/db-connections", 10);
/// let lease = slots.acquire().await?;
/// // ... use one of the 10 slots ...
/// drop(lease); // returns it
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Semaphore {
    client: Client,
    path: String,
    max_leases: u32,
    data: Vec<u8>,
    wakeups: AtomicU64,
}

impl Semaphore {
    /// A handle on the semaphore at `path` with `max_leases` leases. Every participant
    /// must use the same count.
    pub fn new(client: Client, path: impl Into<String>, max_leases: u32) -> Self {
        Semaphore {
            client,
            path: path.into(),
            max_leases,
            data: Vec::new(),
            wakeups: AtomicU64::new(0),
        }
    }

    /// Sets the data stored in this handle's lease nodes (default empty).
    pub fn with_node_data(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.data = data.into();
        self
    }

    /// The semaphore's directory.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The number of leases.
    pub fn max_leases(&self) -> u32 {
        self.max_leases
    }

    /// Takes a lease, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// [`RecipeError::BadArguments`] for a semaphore of zero leases; client errors;
    /// [`RecipeError::NodeDeleted`] when our lease node vanishes while we wait.
    ///
    /// # Cancellation safety
    ///
    /// Dropping the future gives up: its lease node and its mutex node are deleted in the
    /// background.
    pub async fn acquire(&self) -> Result<Lease, RecipeError> {
        let lease = self.acquire_until(None).await?;
        Ok(lease.expect("no deadline"))
    }

    /// Takes a lease, waiting at most `timeout`; `Ok(None)` when it passes.
    ///
    /// # Errors
    ///
    /// As [`Semaphore::acquire`].
    ///
    /// # Cancellation safety
    ///
    /// As [`Semaphore::acquire`].
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<Option<Lease>, RecipeError> {
        self.acquire_until(Some(Instant::now() + timeout)).await
    }

    async fn acquire_until(&self, deadline: Option<Instant>) -> Result<Option<Lease>, RecipeError> {
        if self.max_leases == 0 {
            return Err(RecipeError::BadArguments(
                "a semaphore needs at least one lease".into(),
            ));
        }
        let client = &self.client;
        // A fresh mutex handle per taker: the mutex is reentrant per handle, and two
        // takers sharing one hold would both count leases at once.
        let mutex = Mutex::new(client.clone(), join(&self.path, LOCK_PARENT));
        let Some(lock) = mutex.acquire_until(deadline).await? else {
            return Ok(None);
        };
        let leases = join(&self.path, LEASE_PARENT);
        let prefix = protected_prefix(&Uuid::new_v4());
        let mut pending = PendingNode::new(
            client,
            Target::Protected {
                dir: leases.clone(),
                prefix: prefix.clone(),
            },
        );
        let cleanup_bound = reconnect_bound(client).min(Duration::from_secs(10));
        let created = protected_create(
            client,
            &leases,
            &prefix,
            LEASE_BASE_NAME,
            &self.data,
            deadline,
            &mut pending,
        )
        .await?;
        let Some(created) = created else {
            pending.abandon(cleanup_bound).await;
            let _ = lock.release().await;
            return Ok(None);
        };
        loop {
            let Some(listed) = until(deadline, client.get_and_watch_children(&leases)).await else {
                pending.abandon(cleanup_bound).await;
                let _ = lock.release().await;
                return Ok(None);
            };
            let (children, watcher) = listed?;
            if !children.contains(&created.name) {
                return Err(RecipeError::NodeDeleted(created.path));
            }
            if children.len() <= self.max_leases as usize {
                break;
            }
            tracing::debug!(
                leases = children.len(),
                max = self.max_leases,
                "waiting for a lease"
            );
            match until(deadline, watcher).await {
                None => {
                    pending.abandon(cleanup_bound).await;
                    let _ = lock.release().await;
                    return Ok(None);
                }
                Some(event) => {
                    event?;
                    self.wakeups.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let (stat, own_watch) = client.exists_and_watch(&created.path).await?;
        if stat.map(|s| s.czxid) != Some(created.stat.czxid) {
            return Err(RecipeError::NodeDeleted(created.path));
        }
        pending.keep();
        let token = Zxid(created.stat.czxid);
        let (hold, state) = Hold::start(
            client,
            created.path.clone(),
            Target::Path(created.path.clone()),
            token,
            own_watch,
        );
        // The lease is ours whether or not the mutex's delete succeeds now; a failed
        // delete is retried in the background.
        let _ = lock.release().await;
        tracing::debug!(path = %created.path, "lease taken");
        Ok(Some(Lease {
            hold: HoldRef::new(hold, state, created.path, token),
        }))
    }

    /// The names of the lease nodes (the leases out, plus the one a taker may be waiting
    /// with), in no particular order (Curator's `getParticipantNodes`).
    ///
    /// # Errors
    ///
    /// Client errors.
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe.
    pub async fn participants(&self) -> Result<Vec<String>, RecipeError> {
        match self
            .client
            .get_children(&join(&self.path, LEASE_PARENT))
            .await
        {
            Err(corral_client::Error::NoNode) => Ok(Vec::new()),
            other => Ok(other?),
        }
    }

    /// How many watch events have woken this handle's takers so far (diagnostics).
    pub fn wakeups(&self) -> u64 {
        self.wakeups.load(Ordering::Relaxed)
    }
}

/// One lease of a [`Semaphore`], returned when dropped (in the background) or released.
/// Reports loss like [`super::MutexGuard`].
///
/// # Example
///
/// ```no_run
/// # async fn run(slots: corral_recipes::lock::Semaphore) -> Result<(), corral_recipes::RecipeError> {
/// let lease = slots.acquire().await?;
/// assert!(lease.is_held());
/// lease.release().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "the lease is returned when dropped"]
pub struct Lease {
    hold: HoldRef,
}

impl Lease {
    guard_accessors!("lease");
}
