//! Barriers: a [`Barrier`] that holds processes back until it is removed, and a
//! [`DoubleBarrier`] that lets N processes start together and finish together (the
//! "Barriers" and "Double Barriers" recipes of the ZooKeeper documentation, with Curator's
//! node layouts: `DistributedBarrier`, `DistributedDoubleBarrier`).
//!
//! ```no_run
//! use corral_client::Client;
//! use corral_recipes::barrier::{Barrier, DoubleBarrier};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::connect("127.0.0.1:2181").await?;
//! Barrier::new(client.clone(), "/app/gate").wait().await?;
//! let inside = DoubleBarrier::new(client, "/app/round", 3).enter().await?;
//! // ... compute together with the two others ...
//! inside.leave().await?;
//! # Ok(()) }
//! ```

mod double;
mod single;

pub use double::{DoubleBarrier, Entered};
pub use single::Barrier;

use corral_client::{Client, Error};
use tokio::time::Instant;

use crate::lock::common::{ensure_parents, reconnect_bound, wait_connected};

/// How waiting for the connection after a retryable failure ended.
#[derive(Debug)]
pub(crate) enum Recovered {
    /// Connected again: retry.
    Connected,
    /// The caller's deadline passed first.
    TimedOut,
    /// The session ended, or the connection did not come back within its timeout.
    Gone(Error),
}

/// Waits for the connection after a retryable failure, bounded by `deadline` and by the
/// session timeout.
pub(crate) async fn recover(client: &Client, deadline: Option<Instant>) -> Recovered {
    let bound = match deadline {
        None => reconnect_bound(client),
        Some(d) => d
            .saturating_duration_since(Instant::now())
            .min(reconnect_bound(client)),
    };
    match wait_connected(client, bound).await {
        Ok(()) => Recovered::Connected,
        Err(Error::ConnectionLoss) if deadline.is_some_and(|d| Instant::now() >= d) => {
            Recovered::TimedOut
        }
        Err(e) => Recovered::Gone(e),
    }
}

/// Creates `path` and its missing ancestors as containers (see
/// [`crate::lock::common::ensure_parents`]), starting again from the top when an ancestor
/// is reaped by the server between two of the creates (a container whose last child went
/// can vanish at any moment).
pub(crate) async fn ensure_containers(client: &Client, path: &str) -> Result<(), Error> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        match ensure_parents(client, path).await {
            Err(Error::NoNode) if attempts < 16 => continue,
            other => return other,
        }
    }
}
