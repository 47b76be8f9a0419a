//! A fair distributed read/write lock with Curator's `InterProcessReadWriteLock` layout.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use corral_client::Client;
use tokio::time::Instant;

use super::common::{node_name, until};
use super::hold::{guard_accessors, HoldRef, Reentrant};
use super::sequential::{self, Rule, Spec};
use crate::RecipeError;

/// Curator's read lock name: `<path>/_c_<uuid>-__READ__<seq>`.
pub(crate) const READ_NAME: &str = "__READ__";
/// Curator's write lock name: `<path>/_c_<uuid>-__WRIT__<seq>`.
pub(crate) const WRITE_NAME: &str = "__WRIT__";
/// The markers of the one queue, in the order of [`Contender::kind`](super::common::Contender).
const MARKERS: [&str; 2] = [READ_NAME, WRITE_NAME];
const WRITER_KIND: usize = 1;

/// A fair distributed read/write lock (Curator's `InterProcessReadWriteLock`).
///
/// Readers and writers queue in one directory as ephemeral-sequential nodes
/// (`_c_<uuid>-__READ__<seq>` / `_c_<uuid>-__WRIT__<seq>`, the layout Curator uses, so Java
/// and Rust processes share the lock), ordered by sequence number:
///
/// * a reader holds the lock unless a writer is ahead of it, and then watches only the
///   last writer ahead of it;
/// * a writer holds the lock when nothing is ahead of it, and otherwise watches only its
///   immediate predecessor.
///
/// So readers share, writers are exclusive, each waiter watches one node (no herd), and a
/// writer is never starved: readers that arrive after it queue behind it.
///
/// # Reentrancy and downgrade
///
/// The handle is the owner. A handle that holds the read (write) lock gets another guard
/// of the same hold from [`RwLock::read`] ([`RwLock::write`]). A handle that holds the
/// write lock may also take the read lock, and then release the write lock: a downgrade
/// ([`WriteGuard::downgrade`]), as Curator allows. A read holder cannot take the write
/// lock ([`RecipeError::UpgradeNotSupported`]: it would wait for itself).
///
/// Unlike Curator 5.4, a downgrade never lets another writer in while we read: if a writer
/// queued between our write node and our new read node, the read lock is refused with
/// [`RecipeError::DowngradeBlocked`] and the write lock kept.
///
/// # Example
///
/// ```no_run
/// use corral_client::Client;
/// use corral_recipes::lock::RwLock;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let client = Client::connect("127.0.0.1:2181").await?;
/// let config = RwLock::new(client.clone(), "/locks/config");
/// {
///     let read = config.read().await?;
///     // ... read, as many readers may at once ...
///     read.release().await?;
/// }
/// let write = config.write().await?;
/// // ... write, alone ...
/// let read = write.downgrade().await?; // keep reading what we wrote, nobody writes in between
/// drop(read);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RwLock {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: Client,
    path: String,
    data: Vec<u8>,
    serial: tokio::sync::Mutex<()>,
    reads: Reentrant,
    writes: Reentrant,
    wakeups: AtomicU64,
}

impl RwLock {
    /// A handle on the read/write lock at `path` (a directory, created on first use).
    pub fn new(client: Client, path: impl Into<String>) -> Self {
        Self::with_data(client, path.into(), Vec::new())
    }

    fn with_data(client: Client, path: String, data: Vec<u8>) -> Self {
        RwLock {
            inner: Arc::new(Inner {
                client,
                path,
                data,
                serial: tokio::sync::Mutex::new(()),
                reads: Reentrant::default(),
                writes: Reentrant::default(),
                wakeups: AtomicU64::new(0),
            }),
        }
    }

    /// Sets the data stored in this handle's lock nodes (default empty). Meant for a new
    /// handle: the result is a new owner, unrelated to guards this handle gave out.
    pub fn with_node_data(self, data: impl Into<Vec<u8>>) -> Self {
        let (client, path) = match Arc::try_unwrap(self.inner) {
            Ok(inner) => (inner.client, inner.path),
            Err(shared) => (shared.client.clone(), shared.path.clone()),
        };
        Self::with_data(client, path, data.into())
    }

    /// The lock's directory.
    pub fn path(&self) -> &str {
        &self.inner.path
    }

    /// Acquires the read lock, waiting as long as it takes.
    ///
    /// If this handle holds the write lock, the read lock is granted at once (see
    /// [`WriteGuard::downgrade`]).
    ///
    /// # Errors
    ///
    /// Client errors; [`RecipeError::NodeDeleted`]; [`RecipeError::HoldNotValid`];
    /// [`RecipeError::DowngradeBlocked`] when this handle holds the write lock and another
    /// writer queued behind it.
    ///
    /// # Cancellation safety
    ///
    /// Dropping the future gives up the attempt and deletes its node in the background.
    pub async fn read(&self) -> Result<ReadGuard, RecipeError> {
        let guard = self.inner.read_until(None).await?;
        Ok(guard.expect("no deadline"))
    }

    /// Acquires the read lock, waiting at most `timeout`; `Ok(None)` when it passes.
    ///
    /// # Errors
    ///
    /// As [`RwLock::read`].
    ///
    /// # Cancellation safety
    ///
    /// As [`RwLock::read`].
    pub async fn read_timeout(&self, timeout: Duration) -> Result<Option<ReadGuard>, RecipeError> {
        self.inner.read_until(Some(Instant::now() + timeout)).await
    }

    /// Acquires the write lock, waiting as long as it takes.
    ///
    /// # Errors
    ///
    /// Client errors; [`RecipeError::NodeDeleted`]; [`RecipeError::HoldNotValid`];
    /// [`RecipeError::UpgradeNotSupported`] when this handle holds only the read lock.
    ///
    /// # Cancellation safety
    ///
    /// Dropping the future gives up the attempt and deletes its node in the background.
    pub async fn write(&self) -> Result<WriteGuard, RecipeError> {
        let guard = self.inner.write_until(None).await?;
        Ok(guard.expect("no deadline"))
    }

    /// Acquires the write lock, waiting at most `timeout`; `Ok(None)` when it passes.
    ///
    /// # Errors
    ///
    /// As [`RwLock::write`].
    ///
    /// # Cancellation safety
    ///
    /// As [`RwLock::write`].
    pub async fn write_timeout(
        &self,
        timeout: Duration,
    ) -> Result<Option<WriteGuard>, RecipeError> {
        self.inner.write_until(Some(Instant::now() + timeout)).await
    }

    /// The names of the lock's nodes (readers and writers) in queue order.
    ///
    /// # Errors
    ///
    /// Client errors.
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe.
    pub async fn participants(&self) -> Result<Vec<String>, RecipeError> {
        sequential::participants(&self.inner.client, &self.inner.path, &MARKERS).await
    }

    /// How many watch events have woken this handle's waits so far (diagnostics).
    pub fn wakeups(&self) -> u64 {
        self.inner.wakeups.load(Ordering::Relaxed)
    }
}

impl Inner {
    fn spec(&self, base: &'static str, rule: Rule) -> Spec<'_> {
        Spec {
            client: &self.client,
            dir: &self.path,
            base,
            markers: &MARKERS,
            rule,
            data: &self.data,
            wakeups: &self.wakeups,
        }
    }

    async fn read_until(
        self: &Arc<Self>,
        deadline: Option<Instant>,
    ) -> Result<Option<ReadGuard>, RecipeError> {
        let Some(_serial) = until(deadline, self.serial.lock()).await else {
            return Ok(None);
        };
        if let Some(hold) = self.reads.reenter()? {
            return Ok(Some(ReadGuard { hold }));
        }
        let own_writer = match self.writes.active() {
            None => None,
            Some((path, state)) if state.is_held() => Some(node_name(&path).to_owned()),
            Some((_, state)) => return Err(RecipeError::HoldNotValid(state)),
        };
        let rule = Rule::Read {
            writer_kind: WRITER_KIND,
            own_writer,
        };
        let hold = sequential::acquire(self.spec(READ_NAME, rule), deadline).await?;
        Ok(hold.map(|hold| {
            self.reads.set(&hold);
            ReadGuard { hold }
        }))
    }

    async fn write_until(
        self: &Arc<Self>,
        deadline: Option<Instant>,
    ) -> Result<Option<WriteGuard>, RecipeError> {
        let Some(_serial) = until(deadline, self.serial.lock()).await else {
            return Ok(None);
        };
        if let Some(hold) = self.writes.reenter()? {
            return Ok(Some(WriteGuard {
                hold,
                lock: self.clone(),
            }));
        }
        if self.reads.active().is_some() {
            return Err(RecipeError::UpgradeNotSupported);
        }
        let hold = sequential::acquire(self.spec(WRITE_NAME, Rule::Exclusive), deadline).await?;
        Ok(hold.map(|hold| {
            self.writes.set(&hold);
            WriteGuard {
                hold,
                lock: self.clone(),
            }
        }))
    }
}

/// A hold on the read lock of a [`RwLock`]; released when the last guard of the hold is
/// dropped or released. Reports loss like [`super::MutexGuard`].
///
/// # Example
///
/// ```no_run
/// # async fn run(lock: corral_recipes::lock::RwLock) -> Result<(), corral_recipes::RecipeError> {
/// let read = lock.read().await?;
/// assert!(read.is_held());
/// drop(read);
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "the lock is released when the guard is dropped"]
pub struct ReadGuard {
    hold: HoldRef,
}

impl ReadGuard {
    guard_accessors!("read lock");

    /// How many guards of this handle share the hold (reentrant acquisitions).
    pub fn hold_count(&self) -> usize {
        self.hold.hold_count()
    }
}

/// A hold on the write lock of a [`RwLock`]; released when the last guard of the hold is
/// dropped or released. Reports loss like [`super::MutexGuard`].
///
/// # Example
///
/// ```no_run
/// # async fn run(lock: corral_recipes::lock::RwLock) -> Result<(), corral_recipes::RecipeError> {
/// let write = lock.write().await?;
/// println!("writing with fencing token {}", write.fencing_token());
/// write.release().await?;
/// # Ok(()) }
/// ```
#[must_use = "the lock is released when the guard is dropped"]
pub struct WriteGuard {
    hold: HoldRef,
    lock: Arc<Inner>,
}

impl fmt::Debug for WriteGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteGuard")
            .field("hold", &self.hold)
            .finish_non_exhaustive()
    }
}

impl WriteGuard {
    guard_accessors!("write lock");

    /// How many guards of this handle share the hold (reentrant acquisitions).
    pub fn hold_count(&self) -> usize {
        self.hold.hold_count()
    }

    /// Takes the read lock and then releases this guard: a downgrade. Nobody can write
    /// between the two (if another writer queued behind us meanwhile, the downgrade is
    /// refused and this guard handed back).
    ///
    /// If other guards of this write hold are alive (reentrancy), the write lock stays
    /// held by them and this just adds the read lock.
    ///
    /// # Errors
    ///
    /// A [`DowngradeError`] that gives the write guard back: with
    /// [`RecipeError::DowngradeBlocked`] when a writer queued in between, or a client
    /// error.
    ///
    /// # Cancellation safety
    ///
    /// Dropping the future drops this guard too (releasing the write lock) and deletes
    /// the read node if it was being created.
    pub async fn downgrade(self) -> Result<ReadGuard, DowngradeError> {
        match self.lock.read_until(None).await {
            Ok(read) => {
                drop(self);
                Ok(read.expect("no deadline"))
            }
            Err(error) => Err(DowngradeError { guard: self, error }),
        }
    }
}

/// A failed [`WriteGuard::downgrade`]: why, and the write guard, still holding.
///
/// ```no_run
/// # async fn run(lock: corral_recipes::lock::RwLock) -> Result<(), corral_recipes::RecipeError> {
/// let write = lock.write().await?;
/// match write.downgrade().await {
///     Ok(read) => drop(read),
///     Err(e) => {
///         eprintln!("no downgrade: {}", e.error());
///         e.into_guard().release().await?;
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DowngradeError {
    guard: WriteGuard,
    error: RecipeError,
}

impl DowngradeError {
    /// Why the downgrade failed.
    pub fn error(&self) -> &RecipeError {
        &self.error
    }

    /// The write guard, still holding the write lock (check [`WriteGuard::is_held`]).
    pub fn into_guard(self) -> WriteGuard {
        self.guard
    }
}

impl fmt::Display for DowngradeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "downgrade failed: {}", self.error)
    }
}

impl std::error::Error for DowngradeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl From<DowngradeError> for RecipeError {
    fn from(e: DowngradeError) -> Self {
        e.error
    }
}
