//! A barrier on one node: set it, remove it, wait while it is set (Curator's
//! `DistributedBarrier`).

use std::time::Duration;

use corral_client::{Client, CreateOptions, Error};
use tokio::time::Instant;

use super::{ensure_containers, recover, Recovered};
use crate::lock::common::{parent, until};
use crate::RecipeError;

/// A barrier: processes [`Barrier::wait`] while the barrier node exists, and all go on
/// when it is removed (Curator's `DistributedBarrier`; the recipe "Barriers" of the
/// ZooKeeper documentation).
///
/// The barrier node is persistent (its parents are containers, as with Curator's
/// `creatingParentContainersIfNeeded`). Waiters set one watch each on the node and are
/// all released by its deletion; they read the node again after every event and every
/// reconnect, so neither a connection loss nor a spurious event lets one through while
/// the barrier is set.
///
/// # Example
///
/// ```no_run
/// use corral_client::Client;
/// use corral_recipes::barrier::Barrier;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let client = Client::connect("127.0.0.1:2181").await?;
/// let barrier = Barrier::new(client.clone(), "/app/barriers/deploy");
/// barrier.set().await?;
/// // elsewhere: Barrier::new(other_client, "/app/barriers/deploy").wait().await?;
/// barrier.remove().await?; // releases every waiter
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Barrier {
    client: Client,
    path: String,
}

impl Barrier {
    /// A handle on the barrier node at `path`.
    pub fn new(client: Client, path: impl Into<String>) -> Self {
        Barrier {
            client,
            path: path.into(),
        }
    }

    /// The barrier node's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Sets the barrier (creates its node; already set is fine).
    ///
    /// # Errors
    ///
    /// Client errors (`ConnectionLoss` when the connection does not come back within the
    /// session timeout).
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe, but the create may or may not have been applied.
    pub async fn set(&self) -> Result<(), RecipeError> {
        let client = &self.client;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            match client
                .create(&self.path, b"", &CreateOptions::persistent())
                .await
            {
                Ok(_) | Err(Error::NodeExists) => return Ok(()),
                Err(Error::NoNode) if attempts < 16 => {
                    ensure_containers(client, parent(&self.path)).await?
                }
                Err(e) if e.is_retryable() && attempts < 16 => {
                    if let Recovered::Gone(e) = recover(client, None).await {
                        return Err(e.into());
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Removes the barrier (deletes its node; already removed is fine), releasing every
    /// waiter.
    ///
    /// # Errors
    ///
    /// Client errors (`NotEmpty` if someone created children under the barrier node).
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe, but the delete may or may not have been applied.
    pub async fn remove(&self) -> Result<(), RecipeError> {
        let client = &self.client;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            match client.delete(&self.path, None).await {
                Ok(()) | Err(Error::NoNode) => return Ok(()),
                Err(e) if e.is_retryable() && attempts < 16 => {
                    if let Recovered::Gone(e) = recover(client, None).await {
                        return Err(e.into());
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Whether the barrier is set now.
    ///
    /// # Errors
    ///
    /// Client errors.
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe.
    pub async fn is_set(&self) -> Result<bool, RecipeError> {
        Ok(self.client.exists(&self.path).await?.is_some())
    }

    /// Waits until the barrier is not set (at once if it is not).
    ///
    /// # Errors
    ///
    /// Client errors; the session's terminal error if it ends while waiting.
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe.
    pub async fn wait(&self) -> Result<(), RecipeError> {
        self.wait_until(None).await.map(|_| ())
    }

    /// Waits at most `timeout` until the barrier is not set; `Ok(false)` when it passes
    /// with the barrier still set.
    ///
    /// # Errors
    ///
    /// As [`Barrier::wait`].
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe.
    pub async fn wait_timeout(&self, timeout: Duration) -> Result<bool, RecipeError> {
        self.wait_until(Some(Instant::now() + timeout)).await
    }

    async fn wait_until(&self, deadline: Option<Instant>) -> Result<bool, RecipeError> {
        let client = &self.client;
        loop {
            let Some(read) = until(deadline, client.exists_and_watch(&self.path)).await else {
                return Ok(false);
            };
            let watcher = match read {
                Ok((None, _)) => return Ok(true),
                Ok((Some(_), watcher)) => watcher,
                Err(e) if e.is_retryable() => match recover(client, deadline).await {
                    Recovered::Connected => continue,
                    Recovered::TimedOut => return Ok(false),
                    Recovered::Gone(e) => return Err(e.into()),
                },
                Err(e) => return Err(e.into()),
            };
            match until(deadline, watcher).await {
                None => return Ok(false),
                // Whatever happened, read again: only a missing node releases us.
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
            }
        }
    }
}
