//! Caches: a [`NodeCache`] (one node) and a [`TreeCache`] (a subtree, with a depth
//! limit), kept current by watches and resynchronised after every reconnect.
//!
//! Both publish [`CacheEvent`]s (`Created`, `Changed`, `Deleted`, `Initialized`) on
//! [`CacheEvents`] streams whose replay always yields the cache's content. They use one
//! persistent (recursive) watch where the server has them (ZooKeeper 3.6+, Corral) and
//! one-shot watches otherwise, and never miss a change silently:
//!
//! * after every reconnect the cache reads its subtree again and reports the difference
//!   (persistent watches do not replay what happened while disconnected, ZOOKEEPER-4698);
//! * a node deleted and created again meanwhile is reported `Deleted` then `Created`
//!   (CURATOR-391), by comparing creation zxids;
//! * after a session expiry (with session renewal) the watch is set again and everything
//!   is read again.
//!
//! ```no_run
//! use corral_client::Client;
//! use corral_recipes::cache::TreeCache;
//!
//! # async fn run() -> Result<(), corral_recipes::RecipeError> {
//! let client = Client::connect("127.0.0.1:2181").await?;
//! let cache = TreeCache::builder(&client, "/app").start()?;
//! cache.initialized().await?;
//! for (path, node) in cache.snapshot() {
//!     println!("{path} = {:?}", node.data);
//! }
//! # Ok(()) }
//! ```

mod event;
mod node;
mod tree;

pub use event::{CacheEvent, CacheEvents, ChildData};
pub use node::NodeCache;
pub use tree::{TreeCache, TreeCacheBuilder, WatchMode};

pub(crate) use tree::validate_path;
