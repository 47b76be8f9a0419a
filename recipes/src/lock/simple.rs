//! A simple, unfair lock: one ephemeral node that every waiter watches.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use corral_client::{Client, CreateOptions, Error, Zxid};
use tokio::time::Instant;
use uuid::Uuid;

use super::common::{
    ensure_parents, parent, reconnect_bound, until, wait_connected, watch_for_change, Change,
    PendingNode, Target,
};
use super::hold::{guard_accessors, Hold, HoldRef};
use crate::RecipeError;

/// How many times in a row a create may fail for want of a parent or a connection.
const ATTEMPTS_MAX: u32 = 16;

/// A simple lock: whoever creates the ephemeral node `<path>` holds it; everyone else
/// watches that node and races to create it when it goes.
///
/// **For contrast only.** It is *not fair* (a newcomer can overtake a waiter that has been
/// waiting for minutes) and it has the *herd effect*: every release wakes every waiter, who
/// all send a create, of which one wins, then all set a watch again. With N waiters each
/// release costs O(N) requests and notifications. Use [`super::Mutex`] instead.
///
/// The node's data is a UUID of the acquisition, which is how a create whose reply was
/// lost is recognised as ours, and how a release avoids deleting a successor's node.
/// Not reentrant: a second acquire through the same handle waits for the first guard.
///
/// # Example
///
/// ```no_run
/// use corral_client::Client;
/// use corral_recipes::lock::SimpleLock;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let client = Client::connect("127.0.0.1:2181").await?;
/// let lock = SimpleLock::new(client.clone(), "/locks/simple");
/// let guard = lock.acquire().await?;
/// println!("token {}", guard.fencing_token());
/// drop(guard);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct SimpleLock {
    client: Client,
    path: String,
    wakeups: AtomicU64,
}

impl SimpleLock {
    /// A handle on the lock node `path`.
    pub fn new(client: Client, path: impl Into<String>) -> Self {
        SimpleLock {
            client,
            path: path.into(),
            wakeups: AtomicU64::new(0),
        }
    }

    /// The lock node's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Acquires the lock, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// Client errors.
    ///
    /// # Cancellation safety
    ///
    /// Dropping the future deletes the node in the background if this attempt created it.
    pub async fn acquire(&self) -> Result<SimpleGuard, RecipeError> {
        let guard = self.acquire_until(None).await?;
        Ok(guard.expect("no deadline"))
    }

    /// Acquires the lock, waiting at most `timeout`; `Ok(None)` when it passes.
    ///
    /// # Errors
    ///
    /// As [`SimpleLock::acquire`].
    ///
    /// # Cancellation safety
    ///
    /// As [`SimpleLock::acquire`].
    pub async fn acquire_timeout(
        &self,
        timeout: Duration,
    ) -> Result<Option<SimpleGuard>, RecipeError> {
        self.acquire_until(Some(Instant::now() + timeout)).await
    }

    async fn acquire_until(
        &self,
        deadline: Option<Instant>,
    ) -> Result<Option<SimpleGuard>, RecipeError> {
        let client = &self.client;
        let id = Uuid::new_v4().to_string().into_bytes();
        let target = Target::Marked {
            path: self.path.clone(),
            id: id.clone(),
        };
        let pending = PendingNode::new(client, target.clone());
        let cleanup_bound = reconnect_bound(client).min(Duration::from_secs(10));
        let mut failures = 0;
        let timed_out = |pending: PendingNode| async move {
            pending.abandon(cleanup_bound).await;
            Ok(None)
        };
        loop {
            let Some(created) = until(
                deadline,
                client.create(&self.path, &id, &CreateOptions::ephemeral()),
            )
            .await
            else {
                return timed_out(pending).await;
            };
            let stat = match created {
                Ok((_, stat)) => stat,
                Err(Error::NodeExists) => {
                    failures = 0;
                    match watch_for_change(client, &self.path, deadline).await? {
                        Change::Gone => {}
                        Change::Fired => {
                            self.wakeups.fetch_add(1, Ordering::Relaxed);
                        }
                        Change::TimedOut => return timed_out(pending).await,
                    }
                    continue;
                }
                Err(Error::NoNode) if failures < ATTEMPTS_MAX => {
                    failures += 1;
                    ensure_parents(client, parent(&self.path)).await?;
                    continue;
                }
                Err(e) if e.is_retryable() && failures < ATTEMPTS_MAX => {
                    failures += 1;
                    wait_connected(client, reconnect_bound(client)).await?;
                    // Protected by our id: the create may have been applied.
                    match client.get_data(&self.path).await {
                        Ok((data, stat)) if data == id => stat,
                        Ok(_) | Err(Error::NoNode) => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(e) => return Err(e.into()),
            };
            let (now, own_watch) = client.exists_and_watch(&self.path).await?;
            if now.map(|s| s.czxid) != Some(stat.czxid) {
                return Err(RecipeError::NodeDeleted(self.path.clone()));
            }
            pending.keep();
            let token = Zxid(stat.czxid);
            let (hold, state) = Hold::start(client, self.path.clone(), target, token, own_watch);
            return Ok(Some(SimpleGuard {
                hold: HoldRef::new(hold, state, self.path.clone(), token),
            }));
        }
    }

    /// How many watch events have woken this handle's waits so far (diagnostics: with N
    /// waiters, every release wakes all N).
    pub fn wakeups(&self) -> u64 {
        self.wakeups.load(Ordering::Relaxed)
    }
}

/// A hold on a [`SimpleLock`]; released when dropped (in the background) or released.
/// Reports loss like [`super::MutexGuard`].
///
/// # Example
///
/// ```no_run
/// # async fn run(lock: corral_recipes::lock::SimpleLock) -> Result<(), corral_recipes::RecipeError> {
/// let guard = lock.acquire().await?;
/// guard.release().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "the lock is released when the guard is dropped"]
pub struct SimpleGuard {
    hold: HoldRef,
}

impl SimpleGuard {
    guard_accessors!("lock");
}
