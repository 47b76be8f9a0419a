//! Counters: a [`SharedCount`] (a versioned integer with change notifications, Curator's
//! `SharedCount`) and a [`DistributedAtomicLong`] (compare-and-set through versioned
//! writes, Curator's `DistributedAtomicLong`). Both use Curator's byte encodings, so Java
//! and Rust processes share counters.
//!
//! ```no_run
//! use corral_client::Client;
//! use corral_recipes::counter::{DistributedAtomicLong, SharedCount};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::connect("127.0.0.1:2181").await?;
//! let total = DistributedAtomicLong::new(client.clone(), "/app/total");
//! total.add(5).await?;
//! let epoch = SharedCount::start(client, "/app/epoch", 1).await?;
//! println!("epoch {} (version {})", epoch.count(), epoch.versioned_value().version());
//! # Ok(()) }
//! ```

mod atomic_long;
mod shared_count;

pub use atomic_long::{AtomicValue, DistributedAtomicLong};
pub use shared_count::SharedCount;

/// A value with the version of the node it was read from (Curator's `VersionedValue`):
/// the version to pass to an optimistic update.
///
/// ```
/// use corral_recipes::counter::VersionedValue;
/// let v = VersionedValue::new(3, 42);
/// assert_eq!((v.version(), v.value()), (3, 42));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VersionedValue<T> {
    version: i32,
    value: T,
}

impl<T: Copy> VersionedValue<T> {
    /// A value read at `version`.
    pub fn new(version: i32, value: T) -> Self {
        VersionedValue { version, value }
    }

    /// The node's data version when the value was read.
    pub fn version(&self) -> i32 {
        self.version
    }

    /// The value.
    pub fn value(&self) -> T {
        self.value
    }
}
