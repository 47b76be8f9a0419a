//! [`NodeCache`]: one node's data and existence, kept current.

use corral_client::Client;

use super::event::{CacheEvents, ChildData};
use super::tree::{TreeCache, WatchMode};
use crate::RecipeError;

/// One node's data and existence, kept current (Curator's `NodeCache`).
///
/// A [`TreeCache`] limited to depth 0: it follows the node with a persistent
/// (non-recursive) watch, or one-shot data / exists watches on servers before ZooKeeper
/// 3.6, and reads the node again after every reconnect. Events are the tree cache's:
/// `Created`, `Changed`, `Deleted` (a node deleted and created again while disconnected is
/// reported as both) and `Initialized`. The node need not exist.
///
/// Clones share one cache; it stops when the last clone is dropped or on
/// [`NodeCache::close`].
///
/// ```no_run
/// use corral_client::Client;
/// use corral_recipes::cache::{CacheEvent, NodeCache};
///
/// # async fn run() -> Result<(), corral_recipes::RecipeError> {
/// let client = Client::connect("127.0.0.1:2181").await?;
/// let config = NodeCache::start(&client, "/app/config")?;
/// config.initialized().await?;
/// println!("config now: {:?}", config.data());
/// let mut events = config.events();
/// while let Some(event) = events.recv().await {
///     if let CacheEvent::Changed(node) = event {
///         println!("config v{}: {:?}", node.stat.version, node.data);
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct NodeCache {
    tree: TreeCache,
}

impl NodeCache {
    /// Starts caching the node at `path`.
    ///
    /// # Errors
    ///
    /// [`RecipeError::BadArguments`] for an invalid path.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn start(client: &Client, path: &str) -> Result<NodeCache, RecipeError> {
        Self::start_with(client, path, WatchMode::Persistent)
    }

    /// Starts caching the node at `path` with the given watch mode (see [`WatchMode`]).
    ///
    /// # Errors
    ///
    /// [`RecipeError::BadArguments`] for an invalid path.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn start_with(
        client: &Client,
        path: &str,
        mode: WatchMode,
    ) -> Result<NodeCache, RecipeError> {
        let tree = TreeCache::builder(client, path)
            .with_max_depth(0)
            .with_watch_mode(mode)
            .start()?;
        Ok(NodeCache { tree })
    }

    /// The node's path.
    pub fn path(&self) -> &str {
        self.tree.path()
    }

    /// The node as last read; `None` when it does not exist (or is not loaded yet).
    pub fn current(&self) -> Option<ChildData> {
        self.tree.get(self.tree.path())
    }

    /// The node's data; `None` when it does not exist (or is not loaded yet).
    pub fn data(&self) -> Option<Vec<u8>> {
        self.current().map(|d| d.data)
    }

    /// Whether the first read is complete.
    pub fn is_initialized(&self) -> bool {
        self.tree.is_initialized()
    }

    /// The watch mode in use (`None` until the first read started).
    pub fn watch_mode(&self) -> Option<WatchMode> {
        self.tree.watch_mode()
    }

    /// Waits until the first read is complete.
    ///
    /// # Errors
    ///
    /// [`RecipeError::Closed`] if the cache stopped first.
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe.
    pub async fn initialized(&self) -> Result<(), RecipeError> {
        self.tree.initialized().await
    }

    /// The events from now on, starting with the current state (see [`CacheEvents`]).
    pub fn events(&self) -> CacheEvents {
        self.tree.events()
    }

    /// Stops the cache (for every clone).
    pub fn close(&self) {
        self.tree.close()
    }
}
