//! Distributed queues: a FIFO [`DistributedQueue`] and a [`DistributedPriorityQueue`]
//! (Curator's `DistributedQueue` / `DistributedPriorityQueue` layouts, or the
//! `SimpleDistributedQueue` one with [`QueueFormat::Simple`]), with a lock-safe mode that
//! never loses an item to a crashed consumer, and an optional bound.
//!
//! ```no_run
//! use corral_client::Client;
//! use corral_recipes::queue::DistributedQueue;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::connect("127.0.0.1:2181").await?;
//! let queue = DistributedQueue::new(client, "/app/queue").with_max_items(1000);
//! queue.put(b"hello").await?;
//! assert_eq!(queue.take().await?, b"hello");
//! # Ok(()) }
//! ```

mod distributed;
mod format;
mod shared;

pub use distributed::{DistributedPriorityQueue, DistributedQueue};
pub use format::QueueFormat;
