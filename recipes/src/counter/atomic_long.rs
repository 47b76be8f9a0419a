//! A distributed 64-bit counter updated by compare-and-set (Curator's
//! `DistributedAtomicLong`).

use std::sync::Mutex as StdMutex;
use std::time::Duration;

use corral_client::{Client, CreateOptions, Error, RetryPolicy};

use crate::barrier::{ensure_containers, recover, Recovered};
use crate::lock::common::parent;
use crate::RecipeError;

/// Curator's `DistributedAtomicLong` encoding: an 8-byte big-endian `long` (an empty node
/// reads as 0).
pub(crate) fn encode_long(value: i64) -> [u8; 8] {
    value.to_be_bytes()
}

/// The inverse of [`encode_long`].
pub(crate) fn decode_long(data: &[u8]) -> Result<i64, RecipeError> {
    if data.is_empty() {
        return Ok(0);
    }
    let bytes: [u8; 8] = data.try_into().map_err(|_| {
        RecipeError::InvalidData(format!(
            "an atomic long is 8 bytes (big-endian long), found {}",
            data.len()
        ))
    })?;
    Ok(i64::from_be_bytes(bytes))
}

/// The outcome of an atomic operation (Curator's `AtomicValue`): whether it was applied,
/// and the value before and after.
///
/// An operation that was not applied (a compare-and-set whose expected value did not
/// match, or an update that lost the race more often than the retry policy allows) has
/// `pre_value() == post_value()`, the value last read.
///
/// ```
/// use corral_recipes::counter::AtomicValue;
/// let v = AtomicValue::new(true, 41i64, 42);
/// assert!(v.succeeded());
/// assert_eq!((v.pre_value(), v.post_value()), (41, 42));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AtomicValue<T> {
    succeeded: bool,
    pre: T,
    post: T,
}

impl<T: Copy> AtomicValue<T> {
    /// An outcome (for tests and comparisons).
    pub fn new(succeeded: bool, pre: T, post: T) -> Self {
        AtomicValue {
            succeeded,
            pre,
            post,
        }
    }

    /// Whether the operation was applied.
    pub fn succeeded(&self) -> bool {
        self.succeeded
    }

    /// The value before the operation.
    pub fn pre_value(&self) -> T {
        self.pre
    }

    /// The value after the operation (the new value if it succeeded).
    pub fn post_value(&self) -> T {
        self.post
    }
}

/// A distributed 64-bit counter (Curator's `DistributedAtomicLong`).
///
/// # How it works
///
/// The value is the data of one persistent node (parents as containers), encoded as
/// Curator does (8 bytes, big-endian), so Java and Rust processes share a counter. Each
/// update reads the value and its version, computes the new value and writes it with
/// `setData(version)` (or creates the node if it does not exist yet): if another client
/// wrote in between, the write fails with `BadVersion` and the update starts again after
/// a delay from the [`RetryPolicy`]. Updates are therefore atomic: concurrent increments
/// from many clients always add up.
///
/// A write whose reply was lost is never repeated blindly: the counter reads the node
/// again and retries only if the version shows it was not applied; otherwise the
/// operation fails with `ConnectionLoss` (it may have been applied).
///
/// # Example
///
/// ```no_run
/// use corral_client::Client;
/// use corral_recipes::counter::DistributedAtomicLong;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let client = Client::connect("127.0.0.1:2181").await?;
/// let hits = DistributedAtomicLong::new(client, "/app/counters/hits");
/// let v = hits.increment().await?;
/// assert!(v.succeeded());
/// println!("{} -> {}", v.pre_value(), v.post_value());
/// let cas = hits.compare_and_set(v.post_value(), 0).await?;
/// println!("reset: {}", cas.succeeded());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DistributedAtomicLong {
    client: Client,
    path: String,
    policy: RetryPolicy,
}

/// The result of one optimistic attempt.
enum Attempt {
    /// Applied, or decided (a compare-and-set mismatch).
    Done(AtomicValue<i64>),
    /// Lost the race; try again. Carries the value read.
    Contention(i64),
}

/// The error the retry policy sees for a lost race: any retryable error drives the
/// policy's back-off; the real outcome is kept aside.
const CONTENTION: Error = Error::ThrottledOp;

impl DistributedAtomicLong {
    /// A handle on the counter at `path` (created on the first update). Updates that lose
    /// the race are retried for up to 30 s, from 5 ms doubling to 500 ms.
    pub fn new(client: Client, path: impl Into<String>) -> Self {
        DistributedAtomicLong {
            client,
            path: path.into(),
            policy: RetryPolicy::exponential(Duration::from_millis(5), Duration::from_millis(500))
                .with_max_elapsed(Duration::from_secs(30)),
        }
    }

    /// Sets how updates that lost the race are retried (Curator takes a `RetryPolicy`
    /// too). With [`RetryPolicy::none`] an update is tried once.
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The node's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The current value (0 if the counter does not exist yet).
    ///
    /// # Errors
    ///
    /// Client errors; [`RecipeError::InvalidData`] if the node is not 0 or 8 bytes.
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe.
    pub async fn get(&self) -> Result<i64, RecipeError> {
        match self.client.get_data(&self.path).await {
            Ok((data, _)) => decode_long(&data),
            Err(Error::NoNode) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    /// Adds one.
    ///
    /// # Errors
    ///
    /// As [`DistributedAtomicLong::add`].
    ///
    /// # Cancellation safety
    ///
    /// As [`DistributedAtomicLong::add`].
    pub async fn increment(&self) -> Result<AtomicValue<i64>, RecipeError> {
        self.add(1).await
    }

    /// Subtracts one.
    ///
    /// # Errors
    ///
    /// As [`DistributedAtomicLong::add`].
    ///
    /// # Cancellation safety
    ///
    /// As [`DistributedAtomicLong::add`].
    pub async fn decrement(&self) -> Result<AtomicValue<i64>, RecipeError> {
        self.add(-1).await
    }

    /// Subtracts `delta`.
    ///
    /// # Errors
    ///
    /// As [`DistributedAtomicLong::add`].
    ///
    /// # Cancellation safety
    ///
    /// As [`DistributedAtomicLong::add`].
    pub async fn subtract(&self, delta: i64) -> Result<AtomicValue<i64>, RecipeError> {
        self.add(delta.wrapping_neg()).await
    }

    /// Adds `delta` (wrapping on overflow, as Java's `long` does). Not applied
    /// (`succeeded() == false`) only if the race was lost for longer than the retry policy
    /// allows.
    ///
    /// # Errors
    ///
    /// Client errors (`ConnectionLoss` when a write's reply was lost and it may have been
    /// applied); [`RecipeError::InvalidData`] for a node that is not 0 or 8 bytes.
    ///
    /// # Cancellation safety
    ///
    /// Not cancel-safe: a write already sent may be applied.
    pub async fn add(&self, delta: i64) -> Result<AtomicValue<i64>, RecipeError> {
        self.optimistic(move |v| Some(v.wrapping_add(delta))).await
    }

    /// Sets the value to `new` if it is `expected` now. A concurrent change that keeps the
    /// value at `expected` is retried under the retry policy; a different value fails the
    /// operation (`succeeded() == false`, with the value read).
    ///
    /// # Errors
    ///
    /// As [`DistributedAtomicLong::add`].
    ///
    /// # Cancellation safety
    ///
    /// As [`DistributedAtomicLong::add`].
    pub async fn compare_and_set(
        &self,
        expected: i64,
        new: i64,
    ) -> Result<AtomicValue<i64>, RecipeError> {
        self.optimistic(move |v| (v == expected).then_some(new))
            .await
    }

    /// Sets the value to `new` through the same optimistic loop (Curator's `trySet`), so
    /// that `pre_value()` is exactly the value replaced.
    ///
    /// # Errors
    ///
    /// As [`DistributedAtomicLong::add`].
    ///
    /// # Cancellation safety
    ///
    /// As [`DistributedAtomicLong::add`].
    pub async fn try_set(&self, new: i64) -> Result<AtomicValue<i64>, RecipeError> {
        self.optimistic(move |_| Some(new)).await
    }

    /// Sets the value to `new` unconditionally (Curator's `forceSet`).
    ///
    /// # Errors
    ///
    /// Client errors.
    ///
    /// # Cancellation safety
    ///
    /// Not cancel-safe: a write already sent may be applied.
    pub async fn force_set(&self, new: i64) -> Result<(), RecipeError> {
        let client = &self.client;
        loop {
            match client.set_data(&self.path, &encode_long(new), None).await {
                Ok(_) => return Ok(()),
                Err(Error::NoNode) => match self.create(new).await? {
                    Some(true) => return Ok(()),
                    _ => continue,
                },
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Creates the counter with `value` if it does not exist (Curator's `initialize`):
    /// `Ok(true)` if this call created it.
    ///
    /// # Errors
    ///
    /// Client errors (`ConnectionLoss` if the create's reply was lost).
    ///
    /// # Cancellation safety
    ///
    /// Not cancel-safe: a create already sent may be applied.
    pub async fn initialize(&self, value: i64) -> Result<bool, RecipeError> {
        loop {
            if let Some(created) = self.create(value).await? {
                return Ok(created);
            }
        }
    }

    /// Creates the node with `value`: `Some(true)` created, `Some(false)` it exists,
    /// `None` its parent was missing and has been created (try again).
    async fn create(&self, value: i64) -> Result<Option<bool>, RecipeError> {
        match self
            .client
            .create(
                &self.path,
                &encode_long(value),
                &CreateOptions::persistent(),
            )
            .await
        {
            Ok(_) => Ok(Some(true)),
            Err(Error::NodeExists) => Ok(Some(false)),
            Err(Error::NoNode) => {
                ensure_containers(&self.client, parent(&self.path)).await?;
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Runs read-compute-write attempts until one is decided or the policy gives up.
    async fn optimistic(
        &self,
        op: impl Fn(i64) -> Option<i64> + Copy,
    ) -> Result<AtomicValue<i64>, RecipeError> {
        let outcome: StdMutex<Option<Result<AtomicValue<i64>, RecipeError>>> = StdMutex::new(None);
        let last_read: StdMutex<Option<i64>> = StdMutex::new(None);
        let (outcome_ref, last_ref, this) = (&outcome, &last_read, self);
        let retried = self
            .policy
            .retry(move || async move {
                let attempt = this.attempt(op).await;
                let mut slot = outcome_ref.lock().unwrap_or_else(|e| e.into_inner());
                match attempt {
                    Ok(Attempt::Contention(seen)) => {
                        *last_ref.lock().unwrap_or_else(|e| e.into_inner()) = Some(seen);
                        Err(CONTENTION)
                    }
                    Ok(Attempt::Done(v)) => {
                        *slot = Some(Ok(v));
                        Ok(())
                    }
                    Err(e) => {
                        *slot = Some(Err(e));
                        Ok(())
                    }
                }
            })
            .await;
        if let Some(done) = outcome.into_inner().unwrap_or_else(|e| e.into_inner()) {
            return done;
        }
        match retried {
            // Lost every race the policy allowed.
            Err(_) => {
                let seen = last_read.into_inner().unwrap_or_else(|e| e.into_inner());
                let seen = seen.unwrap_or_default();
                Ok(AtomicValue::new(false, seen, seen))
            }
            Ok(()) => unreachable!("a decided attempt leaves its outcome"),
        }
    }

    /// One read-compute-write attempt.
    async fn attempt(&self, op: impl Fn(i64) -> Option<i64>) -> Result<Attempt, RecipeError> {
        let client = &self.client;
        let (current, version) = match client.get_data(&self.path).await {
            Ok((data, stat)) => (decode_long(&data)?, Some(stat.version)),
            Err(Error::NoNode) => (0, None),
            Err(e) => return Err(e.into()),
        };
        let Some(new) = op(current) else {
            return Ok(Attempt::Done(AtomicValue::new(false, current, current)));
        };
        let written = match version {
            None => match self.create(new).await {
                Ok(Some(true)) => Ok(()),
                Ok(_) => return Ok(Attempt::Contention(current)),
                Err(RecipeError::Client(e)) => Err(e),
                Err(e) => return Err(e),
            },
            Some(v) => client
                .set_data(&self.path, &encode_long(new), Some(v))
                .await
                .map(|_| ()),
        };
        match written {
            Ok(()) => Ok(Attempt::Done(AtomicValue::new(true, current, new))),
            Err(Error::BadVersion) | Err(Error::NoNode) | Err(Error::NodeExists) => {
                Ok(Attempt::Contention(current))
            }
            Err(e) if e.is_retryable() => {
                // Was it applied? Only an unchanged version proves it was not.
                if let Recovered::Gone(e) = recover(client, None).await {
                    return Err(e.into());
                }
                match (client.exists(&self.path).await?, version) {
                    (Some(stat), Some(v)) if stat.version == v => Ok(Attempt::Contention(current)),
                    (None, None) => Ok(Attempt::Contention(current)),
                    _ => Err(e.into()),
                }
            }
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_use_curators_big_endian_longs() {
        assert_eq!(encode_long(1), [0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(
            encode_long(-2),
            [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE]
        );
        assert_eq!(decode_long(&encode_long(i64::MIN)).unwrap(), i64::MIN);
        assert_eq!(decode_long(b"").unwrap(), 0);
        assert!(matches!(
            decode_long(&[1, 2, 3]),
            Err(RecipeError::InvalidData(_))
        ));
    }
}
