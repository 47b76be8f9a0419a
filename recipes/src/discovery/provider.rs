//! [`ServiceProvider`]: picks one instance of a service per call.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use corral_client::Client;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use super::cache::ServiceCache;
use super::instance::ServiceInstance;
use crate::cache::WatchMode;
use crate::RecipeError;

/// How a [`ServiceProvider`] picks among the usable instances (ordered by node name).
///
/// ```
/// use corral_recipes::discovery::ProviderStrategy;
/// let sticky = ProviderStrategy::Sticky(Box::new(ProviderStrategy::Random));
/// assert_ne!(sticky, ProviderStrategy::default());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ProviderStrategy {
    /// Each instance in turn (Curator's `RoundRobinStrategy`, the default).
    #[default]
    RoundRobin,
    /// A random instance each time (`RandomStrategy`).
    Random,
    /// The same instance as long as it stays usable, then another picked by the inner
    /// strategy (`StickyStrategy`).
    Sticky(Box<ProviderStrategy>),
}

/// When an instance counts as down (Curator's `DownInstancePolicy`): after
/// `error_threshold` errors noted with [`ServiceProvider::note_error`], it is skipped
/// until `timeout` has passed since its first noted error.
///
/// ```
/// use std::time::Duration;
/// use corral_recipes::discovery::DownInstancePolicy;
/// let policy = DownInstancePolicy::default();
/// assert_eq!((policy.timeout, policy.error_threshold), (Duration::from_secs(30), 2));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownInstancePolicy {
    /// How long a down instance is skipped (counted from its first noted error).
    pub timeout: Duration,
    /// How many noted errors make an instance down.
    pub error_threshold: u32,
}

impl Default for DownInstancePolicy {
    fn default() -> Self {
        DownInstancePolicy {
            timeout: Duration::from_secs(30),
            error_threshold: 2,
        }
    }
}

/// Errors noted against one instance.
#[derive(Debug, Clone, Copy)]
struct Down {
    since: Instant,
    errors: u32,
}

type Filter<T> = Arc<dyn Fn(&ServiceInstance<T>) -> bool + Send + Sync>;

/// Settings of a [`ServiceProvider`]; see [`super::ServiceDiscovery::service_provider`].
///
/// ```no_run
/// # fn f(discovery: corral_recipes::discovery::ServiceDiscovery) -> Result<(), corral_recipes::RecipeError> {
/// use std::time::Duration;
/// use corral_recipes::discovery::{DownInstancePolicy, ProviderStrategy};
/// let provider = discovery
///     .service_provider("api")
///     .with_strategy(ProviderStrategy::Random)
///     .with_down_instance_policy(DownInstancePolicy { timeout: Duration::from_secs(10), error_threshold: 1 })
///     .with_filter(|i| i.payload.as_ref().is_some_and(|p| p["zone"] == "eu-1"))
///     .start()?;
/// # drop(provider); Ok(()) }
/// ```
pub struct ServiceProviderBuilder<T> {
    client: Client,
    base_path: String,
    name: String,
    strategy: ProviderStrategy,
    policy: DownInstancePolicy,
    filters: Vec<Filter<T>>,
    mode: WatchMode,
}

impl<T> fmt::Debug for ServiceProviderBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceProviderBuilder")
            .field("name", &self.name)
            .field("strategy", &self.strategy)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<T: DeserializeOwned + Clone> ServiceProviderBuilder<T> {
    pub(crate) fn new(client: &Client, base_path: &str, name: &str) -> Self {
        ServiceProviderBuilder {
            client: client.clone(),
            base_path: base_path.to_owned(),
            name: name.to_owned(),
            strategy: ProviderStrategy::default(),
            policy: DownInstancePolicy::default(),
            filters: Vec::new(),
            mode: WatchMode::Persistent,
        }
    }

    /// The strategy (default round robin).
    pub fn with_strategy(mut self, strategy: ProviderStrategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// When noted errors make an instance down (default 2 errors, 30 s).
    pub fn with_down_instance_policy(mut self, policy: DownInstancePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// An extra condition an instance must meet to be provided (all must hold).
    pub fn with_filter(
        mut self,
        filter: impl Fn(&ServiceInstance<T>) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.filters.push(Arc::new(filter));
        self
    }

    /// The watch mode of the provider's cache (see [`WatchMode`]).
    pub fn with_watch_mode(mut self, mode: WatchMode) -> Self {
        self.mode = mode;
        self
    }

    /// Starts the provider's cache.
    ///
    /// # Errors
    ///
    /// [`RecipeError::BadArguments`] for an invalid path or name.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn start(self) -> Result<ServiceProvider<T>, RecipeError> {
        let cache = ServiceCache::start_with(&self.client, &self.base_path, &self.name, self.mode)?;
        Ok(ServiceProvider {
            cache,
            strategy: self.strategy,
            policy: self.policy,
            filters: self.filters,
            round_robin: AtomicUsize::new(0),
            sticky: StdMutex::new(None),
            down: StdMutex::new(HashMap::new()),
        })
    }
}

/// Picks an instance of one service per call (Curator's `ServiceProvider`): from a
/// [`ServiceCache`], skipping disabled instances, instances that failed too often
/// ([`ServiceProvider::note_error`], [`DownInstancePolicy`]) and those the filters
/// reject, with a [`ProviderStrategy`].
///
/// ```no_run
/// use corral_client::Client;
/// use corral_recipes::discovery::{ProviderStrategy, ServiceDiscovery};
///
/// # async fn call(_: &str) -> Result<(), ()> { Ok(()) }
/// # async fn run() -> Result<(), corral_recipes::RecipeError> {
/// let client = Client::connect("127.0.0.1:2181").await?;
/// let discovery: ServiceDiscovery = ServiceDiscovery::new(&client, "/services")?;
/// let provider = discovery
///     .service_provider("api")
///     .with_strategy(ProviderStrategy::Sticky(Box::new(ProviderStrategy::RoundRobin)))
///     .start()?;
/// provider.initialized().await?;
/// if let Some(instance) = provider.get_instance() {
///     let addr = format!("{}:{}", instance.address.clone().unwrap_or_default(), instance.port.unwrap_or(80));
///     if call(&addr).await.is_err() {
///         provider.note_error(&instance); // skipped for a while after enough errors
///     }
/// }
/// # Ok(()) }
/// ```
pub struct ServiceProvider<T = serde_json::Value> {
    cache: ServiceCache<T>,
    strategy: ProviderStrategy,
    policy: DownInstancePolicy,
    filters: Vec<Filter<T>>,
    round_robin: AtomicUsize,
    sticky: StdMutex<Option<String>>,
    down: StdMutex<HashMap<String, Down>>,
}

impl<T> fmt::Debug for ServiceProvider<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceProvider")
            .field("cache", &self.cache)
            .field("strategy", &self.strategy)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<T: DeserializeOwned + Clone> ServiceProvider<T> {
    /// An instance to use now, or `None` if no instance is usable.
    pub fn get_instance(&self) -> Option<ServiceInstance<T>> {
        let all = self.cache.instances_shared();
        let usable: Vec<&ServiceInstance<T>> = {
            let mut down = self.down.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            down.retain(|_, d| now.duration_since(d.since) < self.policy.timeout);
            all.iter()
                .filter(|i| i.enabled)
                .filter(|i| {
                    down.get(&i.id)
                        .is_none_or(|d| d.errors < self.policy.error_threshold)
                })
                .filter(|i| self.filters.iter().all(|f| f(i)))
                .collect()
        };
        if usable.is_empty() {
            return None;
        }
        let index = self.pick(&self.strategy, &usable);
        Some(usable[index].clone())
    }

    fn pick(&self, strategy: &ProviderStrategy, usable: &[&ServiceInstance<T>]) -> usize {
        match strategy {
            ProviderStrategy::RoundRobin => {
                self.round_robin.fetch_add(1, Ordering::Relaxed) % usable.len()
            }
            ProviderStrategy::Random => fastrand::usize(..usable.len()),
            ProviderStrategy::Sticky(inner) => {
                let mut sticky = self.sticky.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(at) = sticky
                    .as_ref()
                    .and_then(|id| usable.iter().position(|i| &i.id == id))
                {
                    return at;
                }
                let at = self.pick(inner, usable);
                *sticky = Some(usable[at].id.clone());
                at
            }
        }
    }

    /// Every instance in the cache, usable or not.
    pub fn get_all_instances(&self) -> Vec<ServiceInstance<T>> {
        self.cache.instances()
    }

    /// Notes that `instance` failed: after [`DownInstancePolicy::error_threshold`] errors
    /// it is skipped until [`DownInstancePolicy::timeout`] has passed since the first.
    pub fn note_error(&self, instance: &ServiceInstance<T>) {
        let mut down = self.down.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        down.retain(|_, d| now.duration_since(d.since) < self.policy.timeout);
        down.entry(instance.id.clone())
            .or_insert(Down {
                since: now,
                errors: 0,
            })
            .errors += 1;
    }

    /// The provider's cache.
    pub fn cache(&self) -> &ServiceCache<T> {
        &self.cache
    }

    /// Waits until the provider's cache is loaded.
    ///
    /// # Errors
    ///
    /// [`RecipeError::Closed`] if the cache stopped first.
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe.
    pub async fn initialized(&self) -> Result<(), RecipeError> {
        self.cache.initialized().await
    }

    /// Stops the provider's cache.
    pub fn close(&self) {
        self.cache.close()
    }
}
