//! [`ServiceCache`]: the instances of one service, kept current.

use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex as StdMutex};
use std::task::{Context, Poll};

use corral_client::Client;
use serde::de::DeserializeOwned;

use super::instance::ServiceInstance;
use crate::cache::{CacheEvent, CacheEvents, TreeCache, WatchMode};
use crate::lock::common::{join, parent};
use crate::RecipeError;

/// The parsed instances, with the cache generation they were parsed at.
type Memo<T> = Option<(u64, Arc<Vec<ServiceInstance<T>>>)>;

type MakeEvent<T> = fn(ServiceInstance<T>) -> ServiceCacheEvent<T>;

/// A change of a service's instances.
///
/// ```no_run
/// # async fn f(cache: corral_recipes::discovery::ServiceCache) {
/// use corral_recipes::discovery::ServiceCacheEvent;
/// let mut events = cache.events();
/// while let Some(event) = events.recv().await {
///     match event {
///         ServiceCacheEvent::Added(i) => println!("+ {} {:?}:{:?}", i.id, i.address, i.port),
///         ServiceCacheEvent::Removed(i) => println!("- {}", i.id),
///         other => println!("{other:?}"),
///     }
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ServiceCacheEvent<T> {
    /// An instance registered (or was found at the first load or after a reconnect).
    Added(ServiceInstance<T>),
    /// An instance's data changed (also the first event of an instance whose earlier
    /// data was not valid JSON).
    Updated(ServiceInstance<T>),
    /// An instance went away; carries its last data.
    Removed(ServiceInstance<T>),
    /// The first load is complete.
    Initialized,
    /// The subscriber fell behind: forget what you had; the current instances follow as
    /// `Added` (see [`CacheEvent::Reset`]).
    Reset,
}

/// A [`ServiceCache`]'s events, as a [`futures_core::Stream`] or with
/// [`ServiceCacheEvents::recv`]. Like [`CacheEvents`], a subscription starts with the
/// current instances. Nodes whose data is not a valid instance are skipped (and logged).
///
/// ```no_run
/// # async fn f(cache: corral_recipes::discovery::ServiceCache) {
/// use corral_recipes::discovery::ServiceCacheEvent;
/// let mut events = cache.events();
/// while let Some(event) = events.recv().await {
///     if let ServiceCacheEvent::Removed(gone) = event {
///         println!("{} left", gone.id);
///     }
/// }
/// # }
/// ```
pub struct ServiceCacheEvents<T> {
    inner: CacheEvents,
    service_path: String,
    _payload: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for ServiceCacheEvents<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceCacheEvents")
            .field("service_path", &self.service_path)
            .field("inner", &self.inner)
            .finish()
    }
}

impl<T: DeserializeOwned> ServiceCacheEvents<T> {
    /// The next event; `None` once the cache is closed.
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe.
    pub async fn recv(&mut self) -> Option<ServiceCacheEvent<T>> {
        std::future::poll_fn(|cx| self.poll_event(cx)).await
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<ServiceCacheEvent<T>>> {
        loop {
            let Some(event) = std::task::ready!(futures_core::Stream::poll_next(
                Pin::new(&mut self.inner),
                cx
            )) else {
                return Poll::Ready(None);
            };
            let (make, data): (MakeEvent<T>, _) = match event {
                CacheEvent::Initialized => {
                    return Poll::Ready(Some(ServiceCacheEvent::Initialized))
                }
                CacheEvent::Reset => return Poll::Ready(Some(ServiceCacheEvent::Reset)),
                CacheEvent::Created(d) => (ServiceCacheEvent::Added, d),
                CacheEvent::Changed(d) => (ServiceCacheEvent::Updated, d),
                CacheEvent::Deleted(d) => (ServiceCacheEvent::Removed, d),
            };
            if parent(&data.path) != self.service_path {
                continue;
            }
            if let Some(instance) = parse(&data.path, &data.data) {
                return Poll::Ready(Some(make(instance)));
            }
        }
    }
}

impl<T: DeserializeOwned> futures_core::Stream for ServiceCacheEvents<T> {
    type Item = ServiceCacheEvent<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_event(cx)
    }
}

fn parse<T: DeserializeOwned>(path: &str, data: &[u8]) -> Option<ServiceInstance<T>> {
    match ServiceInstance::from_json(data) {
        Ok(i) => Some(i),
        Err(e) => {
            tracing::debug!(%path, error = %e, "skipping a node that is not a service instance");
            None
        }
    }
}

/// The instances of one service, kept current by a [`TreeCache`] of depth 1 on
/// `<base>/<service>` (Curator's `ServiceCache`): a persistent recursive watch, or
/// one-shot watches on older servers, and a full re-read after every reconnect.
///
/// Reads are local: [`ServiceCache::instances`] parses the nodes once per change, not
/// per call. Clones share one cache; it stops when the last clone is dropped or on
/// [`ServiceCache::close`].
///
/// ```no_run
/// use corral_client::Client;
/// use corral_recipes::discovery::ServiceDiscovery;
///
/// # async fn run() -> Result<(), corral_recipes::RecipeError> {
/// let client = Client::connect("127.0.0.1:2181").await?;
/// let discovery: ServiceDiscovery = ServiceDiscovery::new(&client, "/services")?;
/// let cache = discovery.service_cache("api")?;
/// cache.initialized().await?;
/// for instance in cache.instances() {
///     println!("{} at {:?}:{:?}", instance.id, instance.address, instance.port);
/// }
/// # Ok(()) }
/// ```
pub struct ServiceCache<T = serde_json::Value> {
    tree: TreeCache,
    name: String,
    memo: Arc<StdMutex<Memo<T>>>,
}

impl<T> Clone for ServiceCache<T> {
    fn clone(&self) -> Self {
        ServiceCache {
            tree: self.tree.clone(),
            name: self.name.clone(),
            memo: self.memo.clone(),
        }
    }
}

impl<T> fmt::Debug for ServiceCache<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceCache")
            .field("name", &self.name)
            .field("path", &self.tree.path())
            .field("initialized", &self.tree.is_initialized())
            .finish_non_exhaustive()
    }
}

impl<T: DeserializeOwned> ServiceCache<T> {
    /// Starts a cache of service `name` under `base_path`.
    ///
    /// # Errors
    ///
    /// [`RecipeError::BadArguments`] for an invalid path or name.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn start(client: &Client, base_path: &str, name: &str) -> Result<Self, RecipeError> {
        Self::start_with(client, base_path, name, WatchMode::Persistent)
    }

    /// Like [`ServiceCache::start`] with the given watch mode.
    ///
    /// # Errors
    ///
    /// As [`ServiceCache::start`].
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn start_with(
        client: &Client,
        base_path: &str,
        name: &str,
        mode: WatchMode,
    ) -> Result<Self, RecipeError> {
        super::registry::validate_name("service name", name)?;
        let tree = TreeCache::builder(client, &join(base_path, name))
            .with_max_depth(1)
            .with_watch_mode(mode)
            .start()?;
        Ok(ServiceCache {
            tree,
            name: name.to_owned(),
            memo: Arc::new(StdMutex::new(None)),
        })
    }

    /// The service's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The current instances, parsed once per change and shared.
    pub(crate) fn instances_shared(&self) -> Arc<Vec<ServiceInstance<T>>> {
        // The generation is read before the nodes: a memo is never newer than its label.
        let generation = self.tree.generation();
        {
            let memo = self.memo.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((g, instances)) = memo.as_ref() {
                if *g == generation {
                    return instances.clone();
                }
            }
        }
        let root = self.tree.path().to_owned();
        let parsed: Vec<ServiceInstance<T>> = self
            .tree
            .children(&root)
            .unwrap_or_default()
            .values()
            .filter_map(|d| parse(&d.path, &d.data))
            .collect();
        let parsed = Arc::new(parsed);
        *self.memo.lock().unwrap_or_else(|e| e.into_inner()) = Some((generation, parsed.clone()));
        parsed
    }

    /// Whether the first load is complete.
    pub fn is_initialized(&self) -> bool {
        self.tree.is_initialized()
    }

    /// The watch mode in use (`None` until the first load started).
    pub fn watch_mode(&self) -> Option<WatchMode> {
        self.tree.watch_mode()
    }

    /// Waits until the first load is complete.
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

    /// The changes from now on, starting with the current instances.
    pub fn events(&self) -> ServiceCacheEvents<T> {
        ServiceCacheEvents {
            inner: self.tree.events(),
            service_path: self.tree.path().to_owned(),
            _payload: PhantomData,
        }
    }

    /// Stops the cache (for every clone).
    pub fn close(&self) {
        self.tree.close()
    }
}

impl<T: DeserializeOwned + Clone> ServiceCache<T> {
    /// The current instances, ordered by node name.
    pub fn instances(&self) -> Vec<ServiceInstance<T>> {
        self.instances_shared().as_ref().clone()
    }

    /// The current instance with this id.
    pub fn get(&self, id: &str) -> Option<ServiceInstance<T>> {
        self.instances_shared().iter().find(|i| i.id == id).cloned()
    }
}
