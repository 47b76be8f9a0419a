//! The FIFO queue and the priority queue.

use std::future::Future;
use std::time::Duration;

use corral_client::Client;
use tokio::time::Instant;

use super::format::QueueFormat;
use super::shared::QueueCore;
use crate::RecipeError;

/// A distributed FIFO queue (Curator's `DistributedQueue` layout; the "Queues" recipe of
/// the ZooKeeper documentation).
///
/// # How it works
///
/// A put creates a persistent-sequential node `<path>/queue-<seq>` (with
/// [`QueueFormat::Simple`]: `<path>/qn-<seq>`, Curator's `SimpleDistributedQueue`). A take
/// lists the children, orders them by sequence *number* (robust to the signed 32-bit
/// wrap and to foreign children) and claims the first it can:
///
/// * **plain** (default): read the node, then delete it *with the version read*; only one
///   consumer's delete succeeds, so each item is consumed by exactly one consumer, and
///   the others move on to the next item. The item is gone before it is processed: a
///   consumer that crashes then loses it (at most once).
/// * **lock-safe** ([`DistributedQueue::with_lock_safety`], Curator's `lockPath`): the
///   consumer first creates an ephemeral lock node `<lock_path>/<item>`; with
///   [`DistributedQueue::take_with`], the item is deleted only after the handler
///   succeeded. A consumer that crashes, is cancelled or loses its session leaves the
///   item in the queue (its lock goes with it), so no item is lost (at least once).
///
/// Items of one producer are consumed in the order that producer put them (each put
/// completes before the next starts); a consumer receives them in that order, and with
/// several consumers each one's share stays in order. An empty queue is waited on with a
/// watch on the children.
///
/// A bounded queue ([`DistributedQueue::with_max_items`]) makes puts wait while the queue
/// holds that many items. Like Curator's `maxItems` the bound is approximate: producers
/// that check at the same moment may each add one.
///
/// The data format is Curator's: nodes written by Java `DistributedQueue` producers (also
/// several items in one node, `putMulti`) are read here and the other way round.
///
/// # Example
///
/// ```no_run
/// use corral_client::Client;
/// use corral_recipes::queue::DistributedQueue;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let client = Client::connect("127.0.0.1:2181").await?;
/// let queue = DistributedQueue::new(client.clone(), "/app/jobs").with_lock_safety("/app/jobs-locks");
/// queue.put(b"job 1").await?;
/// // No item is lost if this consumer dies while handling it:
/// let outcome = queue
///     .take_with(|job| async move {
///         println!("processing {}", String::from_utf8_lossy(&job));
///         Ok::<(), std::io::Error>(())
///     })
///     .await?;
/// outcome?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DistributedQueue {
    core: QueueCore,
}

impl DistributedQueue {
    /// A handle on the queue at `path` (created on first use), in Curator's format,
    /// unbounded, without lock safety.
    pub fn new(client: Client, path: impl Into<String>) -> Self {
        DistributedQueue {
            core: QueueCore::new(client, path.into(), false),
        }
    }

    /// Sets the node format (default [`QueueFormat::Curator`]). Every producer and
    /// consumer of a queue must use the same.
    pub fn with_format(mut self, format: QueueFormat) -> Self {
        self.core.format = format;
        self
    }

    /// Enables lock safety with lock nodes under `lock_path` (Curator's
    /// `QueueBuilder.lockPath`; every consumer of the queue must use the same).
    pub fn with_lock_safety(mut self, lock_path: impl Into<String>) -> Self {
        self.core.lock_path = Some(lock_path.into());
        self
    }

    /// Bounds the queue: puts wait while it holds `max_items` items or more.
    pub fn with_max_items(mut self, max_items: usize) -> Self {
        self.core.max_items = Some(max_items.max(1));
        self
    }

    /// The queue directory.
    pub fn path(&self) -> &str {
        &self.core.path
    }

    /// Adds an item at the tail and returns its node's path. On a bounded queue, waits
    /// while the queue is full.
    ///
    /// # Errors
    ///
    /// Client errors. `ConnectionLoss` means the put may or may not have been applied (a
    /// sequential create cannot be identified afterwards, so it is never repeated).
    ///
    /// # Cancellation safety
    ///
    /// Dropping the future while it waits for room puts nothing; once the create is sent,
    /// it may be applied.
    pub async fn put(&self, item: &[u8]) -> Result<String, RecipeError> {
        let put = self.core.put(&[item], None, None).await?;
        Ok(put.expect("no deadline"))
    }

    /// As [`DistributedQueue::put`], waiting at most `timeout` for room in a bounded
    /// queue; `Ok(None)` when it passes (nothing was put).
    ///
    /// # Errors
    ///
    /// As [`DistributedQueue::put`].
    ///
    /// # Cancellation safety
    ///
    /// As [`DistributedQueue::put`].
    pub async fn put_timeout(
        &self,
        item: &[u8],
        timeout: Duration,
    ) -> Result<Option<String>, RecipeError> {
        self.core
            .put(&[item], None, Some(Instant::now() + timeout))
            .await
    }

    /// Adds several items in one node (Curator's `putMulti`): they are consumed together,
    /// in order, by one consumer.
    ///
    /// # Errors
    ///
    /// As [`DistributedQueue::put`]; [`RecipeError::BadArguments`] with
    /// [`QueueFormat::Simple`], which holds one item per node.
    ///
    /// # Cancellation safety
    ///
    /// As [`DistributedQueue::put`].
    pub async fn put_multi(&self, items: &[&[u8]]) -> Result<String, RecipeError> {
        let put = self.core.put(items, None, None).await?;
        Ok(put.expect("no deadline"))
    }

    /// Removes and returns the head item, waiting while the queue is empty.
    ///
    /// With lock safety the item is claimed through its lock node first (so it respects
    /// Curator's lock-safe consumers) and removed before it is returned; to remove it only
    /// after processing, use [`DistributedQueue::take_with`].
    ///
    /// # Errors
    ///
    /// Client errors; [`RecipeError::InvalidData`] for an item whose data is not in the
    /// queue's format (it is removed).
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe while this handle lives: an item claimed by a take that is then
    /// dropped is kept by the handle and returned by its next take.
    pub async fn take(&self) -> Result<Vec<u8>, RecipeError> {
        let item = self.core.take(true, None).await?;
        Ok(item.expect("no deadline"))
    }

    /// As [`DistributedQueue::take`], waiting at most `timeout`; `Ok(None)` when it
    /// passes.
    ///
    /// # Errors
    ///
    /// As [`DistributedQueue::take`].
    ///
    /// # Cancellation safety
    ///
    /// As [`DistributedQueue::take`].
    pub async fn take_timeout(&self, timeout: Duration) -> Result<Option<Vec<u8>>, RecipeError> {
        self.core.take(true, Some(Instant::now() + timeout)).await
    }

    /// Removes and returns the head item if there is one, without waiting.
    ///
    /// # Errors
    ///
    /// As [`DistributedQueue::take`].
    ///
    /// # Cancellation safety
    ///
    /// As [`DistributedQueue::take`].
    pub async fn try_take(&self) -> Result<Option<Vec<u8>>, RecipeError> {
        self.core.take(false, None).await
    }

    /// Takes the head item and runs `handler` on it (on each of its items, for a
    /// multi-item node), waiting while the queue is empty. Returns the handler's outcome.
    ///
    /// With lock safety, the item is removed only after the handler succeeded; if it
    /// fails, the item is moved to the tail (Curator's `ErrorMode.REQUEUE`) and its error
    /// returned; if this consumer dies or the future is dropped meanwhile, the item stays
    /// where it is for another consumer. Without lock safety the item is removed before
    /// the handler runs.
    ///
    /// # Errors
    ///
    /// Client errors (the handler's own error is the inner `Err`);
    /// [`RecipeError::InvalidData`] for an item not in the queue's format (removed, as
    /// Curator does, since nobody could process it).
    ///
    /// # Cancellation safety
    ///
    /// With lock safety: dropping the future releases the item's lock and leaves the item
    /// in the queue (unless its delete was already sent).
    pub async fn take_with<F, Fut, E>(&self, handler: F) -> Result<Result<(), E>, RecipeError>
    where
        F: FnMut(Vec<u8>) -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        let outcome = self.core.take_with(handler, None).await?;
        Ok(outcome.expect("no deadline"))
    }

    /// As [`DistributedQueue::take_with`], waiting at most `timeout` for an item;
    /// `Ok(None)` when it passes (the handler did not run).
    ///
    /// # Errors
    ///
    /// As [`DistributedQueue::take_with`].
    ///
    /// # Cancellation safety
    ///
    /// As [`DistributedQueue::take_with`].
    pub async fn take_with_timeout<F, Fut, E>(
        &self,
        handler: F,
        timeout: Duration,
    ) -> Result<Option<Result<(), E>>, RecipeError>
    where
        F: FnMut(Vec<u8>) -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        self.core
            .take_with(handler, Some(Instant::now() + timeout))
            .await
    }

    /// The head item, without removing it.
    ///
    /// # Errors
    ///
    /// Client errors; [`RecipeError::InvalidData`].
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe.
    pub async fn peek(&self) -> Result<Option<Vec<u8>>, RecipeError> {
        self.core.peek().await
    }

    /// The number of item nodes in the queue.
    ///
    /// # Errors
    ///
    /// Client errors.
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe.
    pub async fn len(&self) -> Result<usize, RecipeError> {
        self.core.len().await
    }

    /// Whether the queue has no items.
    ///
    /// # Errors
    ///
    /// Client errors.
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe.
    pub async fn is_empty(&self) -> Result<bool, RecipeError> {
        Ok(self.core.len().await? == 0)
    }
}

/// A distributed priority queue (Curator's `DistributedPriorityQueue` layout): items with
/// a lower priority number are taken first, and items of equal priority in FIFO order.
///
/// Nodes are `<path>/queue-<priority><seq>`, where `<priority>` is Curator's nine-character
/// tag (`1` and eight hex digits for priorities ≥ 0, `0` and the two's complement for
/// negative ones). Everything else (plain and lock-safe takes, bounds) is as for
/// [`DistributedQueue`].
///
/// # Example
///
/// ```no_run
/// use corral_client::Client;
/// use corral_recipes::queue::DistributedPriorityQueue;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let client = Client::connect("127.0.0.1:2181").await?;
/// let queue = DistributedPriorityQueue::new(client, "/app/tasks");
/// queue.put(b"later", 10).await?;
/// queue.put(b"urgent", -1).await?;
/// assert_eq!(queue.take().await?, b"urgent");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DistributedPriorityQueue {
    core: QueueCore,
}

impl DistributedPriorityQueue {
    /// A handle on the priority queue at `path`, unbounded, without lock safety.
    pub fn new(client: Client, path: impl Into<String>) -> Self {
        DistributedPriorityQueue {
            core: QueueCore::new(client, path.into(), true),
        }
    }

    /// Enables lock safety (see [`DistributedQueue::with_lock_safety`]).
    pub fn with_lock_safety(mut self, lock_path: impl Into<String>) -> Self {
        self.core.lock_path = Some(lock_path.into());
        self
    }

    /// Bounds the queue (see [`DistributedQueue::with_max_items`]).
    pub fn with_max_items(mut self, max_items: usize) -> Self {
        self.core.max_items = Some(max_items.max(1));
        self
    }

    /// The queue directory.
    pub fn path(&self) -> &str {
        &self.core.path
    }

    /// Adds an item with `priority` (lower is taken first).
    ///
    /// # Errors
    ///
    /// As [`DistributedQueue::put`].
    ///
    /// # Cancellation safety
    ///
    /// As [`DistributedQueue::put`].
    pub async fn put(&self, item: &[u8], priority: i32) -> Result<String, RecipeError> {
        let put = self.core.put(&[item], Some(priority), None).await?;
        Ok(put.expect("no deadline"))
    }

    /// As [`DistributedPriorityQueue::put`], waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// As [`DistributedQueue::put`].
    ///
    /// # Cancellation safety
    ///
    /// As [`DistributedQueue::put`].
    pub async fn put_timeout(
        &self,
        item: &[u8],
        priority: i32,
        timeout: Duration,
    ) -> Result<Option<String>, RecipeError> {
        self.core
            .put(&[item], Some(priority), Some(Instant::now() + timeout))
            .await
    }

    /// Removes and returns the item with the lowest priority number (the oldest among
    /// equals), waiting while the queue is empty.
    ///
    /// # Errors
    ///
    /// As [`DistributedQueue::take`].
    ///
    /// # Cancellation safety
    ///
    /// As [`DistributedQueue::take`].
    pub async fn take(&self) -> Result<Vec<u8>, RecipeError> {
        let item = self.core.take(true, None).await?;
        Ok(item.expect("no deadline"))
    }

    /// As [`DistributedPriorityQueue::take`], waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`DistributedQueue::take`].
    ///
    /// # Cancellation safety
    ///
    /// As [`DistributedQueue::take`].
    pub async fn take_timeout(&self, timeout: Duration) -> Result<Option<Vec<u8>>, RecipeError> {
        self.core.take(true, Some(Instant::now() + timeout)).await
    }

    /// Runs `handler` on the next item (see [`DistributedQueue::take_with`]).
    ///
    /// # Errors
    ///
    /// As [`DistributedQueue::take_with`].
    ///
    /// # Cancellation safety
    ///
    /// As [`DistributedQueue::take_with`].
    pub async fn take_with<F, Fut, E>(&self, handler: F) -> Result<Result<(), E>, RecipeError>
    where
        F: FnMut(Vec<u8>) -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        let outcome = self.core.take_with(handler, None).await?;
        Ok(outcome.expect("no deadline"))
    }

    /// The next item, without removing it.
    ///
    /// # Errors
    ///
    /// As [`DistributedQueue::peek`].
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe.
    pub async fn peek(&self) -> Result<Option<Vec<u8>>, RecipeError> {
        self.core.peek().await
    }

    /// The number of item nodes.
    ///
    /// # Errors
    ///
    /// Client errors.
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe.
    pub async fn len(&self) -> Result<usize, RecipeError> {
        self.core.len().await
    }

    /// Whether the queue has no items.
    ///
    /// # Errors
    ///
    /// Client errors.
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe.
    pub async fn is_empty(&self) -> Result<bool, RecipeError> {
        Ok(self.core.len().await? == 0)
    }
}
