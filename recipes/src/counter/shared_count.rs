//! A shared, versioned integer with change notifications (Curator's `SharedCount`).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use corral_client::{Client, CreateOptions, Error, Stat};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::VersionedValue;
use crate::barrier::{ensure_containers, recover, Recovered};
use crate::lock::common::{parent, terminal_error};
use crate::RecipeError;

/// Curator's `SharedCount` encoding: a 4-byte big-endian `int`.
pub(crate) fn encode_count(value: i32) -> [u8; 4] {
    value.to_be_bytes()
}

/// The inverse of [`encode_count`].
pub(crate) fn decode_count(data: &[u8]) -> Result<i32, RecipeError> {
    let bytes: [u8; 4] = data.try_into().map_err(|_| {
        RecipeError::InvalidData(format!(
            "a shared count is 4 bytes (big-endian int), found {}",
            data.len()
        ))
    })?;
    Ok(i32::from_be_bytes(bytes))
}

/// What the handle and its watch task share.
#[derive(Debug)]
struct Shared {
    tx: watch::Sender<VersionedValue<i32>>,
    /// The `mzxid` of the published value, so that a late read never replaces a newer
    /// value (versions restart if the node is deleted and created again; zxids do not).
    mzxid: AtomicI64,
}

impl Shared {
    fn publish(&self, value: i32, stat: &Stat) {
        self.tx.send_if_modified(|current| {
            if stat.mzxid <= self.mzxid.load(Ordering::Acquire) {
                return false;
            }
            self.mzxid.store(stat.mzxid, Ordering::Release);
            let next = VersionedValue::new(stat.version, value);
            let changed = *current != next;
            *current = next;
            changed
        });
    }
}

/// A shared integer every participant sees and can change, with a version for
/// optimistic updates and change notifications (Curator's `SharedCount`; the "version
/// for optimistic locking" of the ZooKeeper documentation).
///
/// The value is the data of one node, encoded as Curator does (a 4-byte big-endian
/// `int`), so Java `SharedCount`s and Rust handles share it. A background task keeps a
/// data watch on the node and publishes every change on a watch channel
/// ([`SharedCount::watcher`]); [`SharedCount::try_set_count`] updates only if nobody else
/// did since the value it was given (a `setData` with that version).
///
/// # Example
///
/// ```no_run
/// use corral_client::Client;
/// use corral_recipes::counter::SharedCount;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let client = Client::connect("127.0.0.1:2181").await?;
/// let count = SharedCount::start(client, "/app/generation", 0).await?;
/// loop {
///     let seen = count.versioned_value();
///     if count.try_set_count(seen, seen.value() + 1).await? {
///         break; // nobody changed it in between
///     }
/// }
/// let mut changes = count.watcher();
/// changes.changed().await?;
/// println!("now {}", changes.borrow().value());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct SharedCount {
    client: Client,
    path: String,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
}

impl SharedCount {
    /// Starts following the count at `path`, creating it with `seed` if it does not exist.
    ///
    /// # Errors
    ///
    /// Client errors; [`RecipeError::InvalidData`] if the node holds something else than
    /// 4 bytes.
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe (the node may have been created).
    pub async fn start(
        client: Client,
        path: impl Into<String>,
        seed: i32,
    ) -> Result<SharedCount, RecipeError> {
        let path = path.into();
        let (data, stat) = read_or_create(&client, &path, seed).await?;
        let value = decode_count(&data)?;
        let (tx, _) = watch::channel(VersionedValue::new(stat.version, value));
        let shared = Arc::new(Shared {
            tx,
            mzxid: AtomicI64::new(stat.mzxid),
        });
        let shutdown = CancellationToken::new();
        tokio::spawn(follow(
            client.clone(),
            path.clone(),
            shared.clone(),
            shutdown.clone(),
        ));
        Ok(SharedCount {
            client,
            path,
            shared,
            shutdown,
        })
    }

    /// The node's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The latest value seen.
    pub fn count(&self) -> i32 {
        self.shared.tx.borrow().value()
    }

    /// The latest value seen, with its version (to pass to
    /// [`SharedCount::try_set_count`]).
    pub fn versioned_value(&self) -> VersionedValue<i32> {
        *self.shared.tx.borrow()
    }

    /// A watch channel of the value: `changed()` waits for the next change.
    pub fn watcher(&self) -> watch::Receiver<VersionedValue<i32>> {
        self.shared.tx.subscribe()
    }

    /// Sets the value whatever it is now.
    ///
    /// # Errors
    ///
    /// Client errors (`ConnectionLoss`: may or may not have been applied).
    ///
    /// # Cancellation safety
    ///
    /// The write is sent when called; dropping the future does not cancel it.
    pub async fn set_count(&self, value: i32) -> Result<(), RecipeError> {
        let stat = self
            .client
            .set_data(&self.path, &encode_count(value), None)
            .await?;
        self.shared.publish(value, &stat);
        Ok(())
    }

    /// Sets the value only if it has not changed since `previous` was read (Curator's
    /// `trySetCount`): `Ok(false)` if someone else changed it first (the handle then
    /// holds the newer value).
    ///
    /// # Errors
    ///
    /// Client errors (`ConnectionLoss`: may or may not have been applied).
    ///
    /// # Cancellation safety
    ///
    /// The write is sent when called; dropping the future does not cancel it.
    pub async fn try_set_count(
        &self,
        previous: VersionedValue<i32>,
        value: i32,
    ) -> Result<bool, RecipeError> {
        match self
            .client
            .set_data(&self.path, &encode_count(value), Some(previous.version()))
            .await
        {
            Ok(stat) => {
                self.shared.publish(value, &stat);
                Ok(true)
            }
            Err(Error::BadVersion) => {
                if let Ok((data, stat)) = self.client.get_data(&self.path).await {
                    if let Ok(v) = decode_count(&data) {
                        self.shared.publish(v, &stat);
                    }
                }
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Stops following the node (dropping the handle does the same).
    pub fn close(self) {}
}

impl Drop for SharedCount {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Reads the node, creating it (and its parents, as containers) with `seed` if missing.
async fn read_or_create(
    client: &Client,
    path: &str,
    seed: i32,
) -> Result<(Vec<u8>, Stat), RecipeError> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        match client.get_data(path).await {
            Ok(r) => return Ok(r),
            Err(Error::NoNode) if attempts < 16 => {}
            Err(e) => return Err(e.into()),
        }
        match client
            .create(path, &encode_count(seed), &CreateOptions::persistent())
            .await
        {
            Ok(_) | Err(Error::NodeExists) => {}
            Err(Error::NoNode) => ensure_containers(client, parent(path)).await?,
            Err(e) if e.is_retryable() => {
                if let Recovered::Gone(e) = recover(client, None).await {
                    return Err(e.into());
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Keeps a data watch on the node and publishes each change, until shut down or the
/// client is gone for good.
async fn follow(client: Client, path: String, shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut states = client.state_watcher();
    loop {
        let read = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            r = client.get_and_watch_data(&path) => r,
        };
        let watcher = match read {
            Ok((data, stat, watcher)) => {
                match decode_count(&data) {
                    Ok(v) => shared.publish(v, &stat),
                    Err(e) => {
                        tracing::warn!(%path, error = %e, "ignoring a malformed shared count")
                    }
                }
                watcher
            }
            Err(Error::NoNode) => {
                // Deleted: wait for it to come back.
                match client.exists_and_watch(&path).await {
                    Ok((Some(_), _)) => continue,
                    Ok((None, watcher)) => watcher,
                    Err(e) if e.is_retryable() => {
                        tokio::select! {
                            biased;
                            _ = shutdown.cancelled() => return,
                            _ = recover(&client, None) => {}
                        }
                        continue;
                    }
                    Err(e) => {
                        tracing::debug!(%path, error = %e, "shared count stops following");
                        return;
                    }
                }
            }
            Err(e) if e.is_retryable() => {
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => return,
                    _ = recover(&client, None) => {}
                }
                continue;
            }
            Err(e) if e.is_terminal() => {
                // With session renewal a new session follows; otherwise the client ended.
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => return,
                    changed = states.changed() => {
                        if changed.is_err() {
                            tracing::debug!(%path, error = %terminal_error(&client.status()), "shared count stops");
                            return;
                        }
                    }
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(%path, error = %e, "shared count stops following");
                return;
            }
        };
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            _ = watcher => {}
        }
    }
}
