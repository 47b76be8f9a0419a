//! The machinery every queue variant shares: dirs, puts, claims, waits.
//!
//! ```text
//!   put ─► (bounded: wait while ≥ max items) ─► create <path>/<prefix>[prio]<seq>
//!
//!   take ─► list + watch children ─► order (priority, creation) ─► for each item:
//!             plain:     getData ─► delete(version) ─► ours (another consumer: next item)
//!             lock-safe: create <lock_path>/<item> (ephemeral) ─► getData ─► [handler]
//!                        ─► delete the item ─► delete the lock
//!           nothing claimed ─► wait for the children watch
//! ```

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use corral_client::{Client, CreateMode, CreateOptions, Error, OneshotWatcher};
use tokio::time::Instant;
use uuid::Uuid;

use super::format::{order_items, priority_tag, ItemNode, QueueFormat};
use crate::barrier::{ensure_containers, recover, Recovered};
use crate::lock::common::{join, parent, reconnect_bound, until, PendingNode, Target};
use crate::RecipeError;

/// How many times a write is tried again after its parent vanished.
const ATTEMPTS_MAX: u32 = 16;

/// Items claimed by a handle but not yet returned (the rest of a multi-item node, or the
/// item of a take that was cancelled after its claim).
type Buffer = Arc<StdMutex<VecDeque<Vec<u8>>>>;

/// One queue handle's configuration and local buffer.
#[derive(Debug)]
pub(crate) struct QueueCore {
    pub(crate) client: Client,
    pub(crate) path: String,
    pub(crate) format: QueueFormat,
    pub(crate) priorities: bool,
    pub(crate) lock_path: Option<String>,
    pub(crate) max_items: Option<usize>,
    buffer: Buffer,
}

fn recovered(r: Recovered) -> Result<bool, RecipeError> {
    match r {
        Recovered::Connected => Ok(true),
        Recovered::TimedOut => Ok(false),
        Recovered::Gone(e) => Err(e.into()),
    }
}

impl QueueCore {
    pub(crate) fn new(client: Client, path: String, priorities: bool) -> Self {
        QueueCore {
            client,
            path,
            format: QueueFormat::Curator,
            priorities,
            lock_path: None,
            max_items: None,
            buffer: Buffer::default(),
        }
    }

    fn pop_buffered(&self) -> Option<Vec<u8>> {
        self.buffer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
    }

    /// The item base name for `priority`.
    fn base(&self, priority: Option<i32>) -> String {
        match priority {
            Some(p) if self.priorities => format!("{}{}", self.format.prefix(), priority_tag(p)),
            _ => self.format.prefix().to_owned(),
        }
    }

    /// The items now, in consumption order, and (if `watch`) a watch on the children.
    async fn items(
        &self,
        watch: bool,
        deadline: Option<Instant>,
    ) -> Result<Option<(Vec<ItemNode>, Option<OneshotWatcher>)>, RecipeError> {
        let client = &self.client;
        loop {
            let listed = if watch {
                until(deadline, client.get_and_watch_children(&self.path))
                    .await
                    .map(|r| r.map(|(c, w)| (c, Some(w))))
            } else {
                until(deadline, client.get_children(&self.path))
                    .await
                    .map(|r| r.map(|c| (c, None)))
            };
            let Some(listed) = listed else {
                return Ok(None);
            };
            match listed {
                Ok((children, watcher)) => {
                    let items = order_items(&children, self.format.prefix(), self.priorities);
                    return Ok(Some((items, watcher)));
                }
                Err(Error::NoNode) if watch => {
                    // No queue yet: wait for it to be created.
                    let Some(r) = until(deadline, client.exists_and_watch(&self.path)).await else {
                        return Ok(None);
                    };
                    match r {
                        Ok((Some(_), _)) => continue,
                        Ok((None, w)) => return Ok(Some((Vec::new(), Some(w)))),
                        Err(e) if e.is_retryable() => {
                            if !recovered(recover(client, deadline).await)? {
                                return Ok(None);
                            }
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(Error::NoNode) => return Ok(Some((Vec::new(), None))),
                Err(e) if e.is_retryable() => {
                    if !recovered(recover(client, deadline).await)? {
                        return Ok(None);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Waits until a bounded queue has room; `false` when `deadline` passed.
    async fn wait_for_room(
        &self,
        max: usize,
        deadline: Option<Instant>,
    ) -> Result<bool, RecipeError> {
        loop {
            let Some((items, watcher)) = self.items(true, deadline).await? else {
                return Ok(false);
            };
            if items.len() < max {
                return Ok(true);
            }
            let Some(watcher) = watcher else {
                continue;
            };
            if until(deadline, watcher).await.is_none() {
                return Ok(false);
            }
        }
    }

    /// Puts one node holding `items`; `None` when `deadline` passed first (bounded queue).
    pub(crate) async fn put(
        &self,
        items: &[&[u8]],
        priority: Option<i32>,
        deadline: Option<Instant>,
    ) -> Result<Option<String>, RecipeError> {
        let data = self.format.encode(items)?;
        if let Some(max) = self.max_items {
            if !self.wait_for_room(max, deadline).await? {
                return Ok(None);
            }
        }
        let client = &self.client;
        let path = join(&self.path, &self.base(priority));
        let options = CreateOptions::new(CreateMode::PersistentSequential);
        let mut attempts = 0;
        loop {
            attempts += 1;
            match client.create(&path, &data, &options).await {
                Ok((created, _)) => return Ok(Some(created)),
                Err(Error::NoNode) if attempts < ATTEMPTS_MAX => {
                    DirMaker {
                        client: client.clone(),
                    }
                    .ensure(&self.path)
                    .await?
                }
                // A lost reply may hide an applied create: never create twice.
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The first item without removing it.
    pub(crate) async fn peek(&self) -> Result<Option<Vec<u8>>, RecipeError> {
        let (items, _) = self.items(false, None).await?.expect("no deadline");
        for item in items {
            match self.client.get_data(&join(&self.path, &item.name)).await {
                Ok((data, _)) => return Ok(self.format.decode(&data)?.into_iter().next()),
                Err(Error::NoNode) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }

    /// The number of item nodes.
    pub(crate) async fn len(&self) -> Result<usize, RecipeError> {
        let (items, _) = self.items(false, None).await?.expect("no deadline");
        Ok(items.len())
    }

    /// Takes the first item, waiting while the queue is empty (unless `wait` is false);
    /// `None` when `deadline` passed (or the queue was empty without `wait`).
    pub(crate) async fn take(
        &self,
        wait: bool,
        deadline: Option<Instant>,
    ) -> Result<Option<Vec<u8>>, RecipeError> {
        loop {
            if let Some(item) = self.pop_buffered() {
                return Ok(Some(item));
            }
            let Some((items, watcher)) = self.items(wait, deadline).await? else {
                return Ok(None);
            };
            let mut claimed = false;
            for item in &items {
                let Some(found) = until(deadline, self.claim(item)).await else {
                    return Ok(None);
                };
                if found? {
                    claimed = true;
                    break;
                }
            }
            if claimed {
                continue;
            }
            let Some(watcher) = watcher else {
                return Ok(None);
            };
            if until(deadline, watcher).await.is_none() {
                return Ok(None);
            }
        }
    }

    /// Claims `item` for `take`, putting its contents into the buffer; `false` if another
    /// consumer had it.
    ///
    /// The claim runs in a task of its own: a take cancelled mid-claim still buffers the
    /// item, and the handle's next take returns it.
    async fn claim(&self, item: &ItemNode) -> Result<bool, RecipeError> {
        let client = self.client.clone();
        let item_path = join(&self.path, &item.name);
        let lock = self.lock_path.as_ref().map(|l| join(l, &item.name));
        let buffer = self.buffer.clone();
        let format = self.format;
        let lock_dir = self.lock_path.clone();
        let core_dirs = DirMaker {
            client: client.clone(),
        };
        let task = tokio::spawn(async move {
            let guard = match (&lock, &lock_dir) {
                (Some(lock), Some(dir)) => match lock_item(&client, &core_dirs, dir, lock).await? {
                    Some(guard) => Some(guard),
                    None => return Ok(false),
                },
                _ => None,
            };
            let (data, stat) = match client.get_data(&item_path).await {
                Ok(r) => r,
                Err(Error::NoNode) => return Ok(false),
                Err(e) => return Err(RecipeError::from(e)),
            };
            let version = guard.is_none().then_some(stat.version);
            if !delete_item(&client, &item_path, version, guard.is_some()).await? {
                return Ok(false);
            }
            if let Some(guard) = guard {
                guard.abandon(Duration::ZERO).await;
            }
            let items = format.decode(&data)?;
            buffer
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(items);
            Ok(true)
        });
        match task.await {
            Ok(r) => r,
            // The runtime is shutting down (or the claim panicked, a bug).
            Err(e) => {
                tracing::warn!(error = %e, "queue claim task did not finish");
                Err(RecipeError::Closed)
            }
        }
    }

    /// Lock-safe processing: runs `handler` on each item of the first node we can lock,
    /// and removes the node only after every call succeeded. A failing handler requeues
    /// the node at the tail and returns its error; a cancelled one leaves it in place.
    pub(crate) async fn take_with<F, Fut, E>(
        &self,
        mut handler: F,
        deadline: Option<Instant>,
    ) -> Result<Option<Result<(), E>>, RecipeError>
    where
        F: FnMut(Vec<u8>) -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        let Some(lock_dir) = self.lock_path.clone() else {
            // Without lock safety: remove first, then handle (Curator's plain mode).
            let Some(item) = self.take(true, deadline).await? else {
                return Ok(None);
            };
            return Ok(Some(handler(item).await));
        };
        let client = &self.client;
        let dirs = DirMaker {
            client: client.clone(),
        };
        loop {
            let Some((items, watcher)) = self.items(true, deadline).await? else {
                return Ok(None);
            };
            for item in &items {
                let lock = join(&lock_dir, &item.name);
                let Some(guard) = until(deadline, lock_item(client, &dirs, &lock_dir, &lock)).await
                else {
                    return Ok(None);
                };
                let Some(guard) = guard? else {
                    continue;
                };
                let item_path = join(&self.path, &item.name);
                let data = match client.get_data(&item_path).await {
                    Ok((data, _)) => data,
                    // Processed by someone else meanwhile.
                    Err(Error::NoNode) => continue,
                    Err(e) => return Err(e.into()),
                };
                let contents = match self.format.decode(&data) {
                    Ok(c) => c,
                    Err(e) => {
                        // Nobody can ever process it; drop it rather than block the queue
                        // (as Curator does), and say so.
                        tracing::warn!(path = %item_path, error = %e, "dropping a corrupt queue item");
                        delete_item(client, &item_path, None, true).await?;
                        return Err(e);
                    }
                };
                let mut failed = None;
                for one in contents {
                    if let Err(e) = handler(one).await {
                        failed = Some(e);
                        break;
                    }
                }
                if let Some(e) = failed {
                    self.requeue(&item_path, item, &data).await?;
                    guard.abandon(reconnect_bound(client)).await;
                    return Ok(Some(Err(e)));
                }
                delete_item(client, &item_path, None, true).await?;
                guard.abandon(reconnect_bound(client)).await;
                return Ok(Some(Ok(())));
            }
            let Some(watcher) = watcher else {
                continue;
            };
            if until(deadline, watcher).await.is_none() {
                return Ok(None);
            }
        }
    }

    /// Moves a node to the tail of the queue (atomically: delete + create).
    async fn requeue(
        &self,
        item_path: &str,
        item: &ItemNode,
        data: &[u8],
    ) -> Result<(), RecipeError> {
        let priority = self.priorities.then_some(item.priority);
        let tail = join(&self.path, &self.base(priority));
        let result = self
            .client
            .multi()
            .delete(item_path, None)
            .create(
                &tail,
                data,
                &CreateOptions::new(CreateMode::PersistentSequential),
            )
            .commit()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(Error::MultiFailed { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Creates the queue and lock directories on demand as *persistent* nodes (parents as
/// containers), as Curator's queue does: a container would be reaped when empty, and a
/// Curator consumer does not create it again.
#[derive(Debug, Clone)]
struct DirMaker {
    client: Client,
}

impl DirMaker {
    async fn ensure(&self, dir: &str) -> Result<(), RecipeError> {
        let client = &self.client;
        let mut attempts = 0;
        loop {
            attempts += 1;
            match client.create(dir, b"", &CreateOptions::persistent()).await {
                Ok(_) | Err(Error::NodeExists) => return Ok(()),
                Err(Error::NoNode) if attempts < ATTEMPTS_MAX => {
                    ensure_containers(client, parent(dir)).await?
                }
                Err(e) if e.is_retryable() && attempts < ATTEMPTS_MAX => {
                    recovered(recover(client, None).await)?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Takes the lock node of an item (Curator's lock-safe layout: `<lock_path>/<item>`,
/// ephemeral). `None` when another consumer holds it. The returned guard deletes the lock
/// when dropped, and only if it is still ours (its data is our marker).
async fn lock_item(
    client: &Client,
    dirs: &DirMaker,
    lock_dir: &str,
    lock: &str,
) -> Result<Option<PendingNode>, RecipeError> {
    let marker = Uuid::new_v4().to_string().into_bytes();
    let guard = PendingNode::new(
        client,
        Target::Marked {
            path: lock.to_owned(),
            id: marker.clone(),
        },
    );
    let options = CreateOptions::new(CreateMode::Ephemeral);
    let mut attempts = 0;
    loop {
        attempts += 1;
        match client.create(lock, &marker, &options).await {
            Ok(_) => return Ok(Some(guard)),
            Err(Error::NodeExists) => {
                // Someone else's lock (a reply we lost would carry our marker).
                return match client.get_data(lock).await {
                    Ok((data, _)) if data == marker => Ok(Some(guard)),
                    Ok(_) | Err(Error::NoNode) => {
                        guard.keep();
                        Ok(None)
                    }
                    Err(e) => Err(e.into()),
                };
            }
            Err(Error::NoNode) if attempts < ATTEMPTS_MAX => dirs.ensure(lock_dir).await?,
            Err(e) if e.is_retryable() && attempts < ATTEMPTS_MAX => {
                recovered(recover(client, None).await)?;
                match client.get_data(lock).await {
                    Ok((data, _)) if data == marker => return Ok(Some(guard)),
                    Ok(_) => {
                        guard.keep();
                        return Ok(None);
                    }
                    Err(Error::NoNode) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Deletes an item we claimed: `true` if we removed it.
///
/// With its lock held (`locked`), nobody else removes the item, so a delete whose reply
/// was lost and an item gone afterwards mean it was ours. Without a lock, the delete is
/// conditional on the `version` we read; when its reply is lost and the item is gone, we
/// cannot tell who removed it and leave it to the other consumer (at most once).
async fn delete_item(
    client: &Client,
    path: &str,
    version: Option<i32>,
    locked: bool,
) -> Result<bool, RecipeError> {
    loop {
        match client.delete(path, version).await {
            Ok(()) => return Ok(true),
            Err(Error::NoNode) | Err(Error::BadVersion) if !locked => return Ok(false),
            Err(Error::NoNode) => return Ok(true),
            Err(e) if e.is_retryable() => {
                recovered(recover(client, None).await)?;
                match client.exists(path).await {
                    Ok(Some(stat)) if version.is_none_or(|v| v == stat.version) => continue,
                    Ok(Some(_)) => return Ok(false),
                    Ok(None) if locked => return Ok(true),
                    Ok(None) => {
                        tracing::warn!(%path, "delete reply lost and the item is gone; assuming another consumer took it");
                        return Ok(false);
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}
