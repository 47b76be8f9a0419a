//! [`ServiceDiscovery`]: finding services and their instances.

use std::fmt;
use std::marker::PhantomData;

use corral_client::{Client, Error};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::cache::ServiceCache;
use super::instance::ServiceInstance;
use super::provider::ServiceProviderBuilder;
use super::registry::{validate_name, ServiceRegistry};
use crate::cache::validate_path;
use crate::lock::common::join;
use crate::RecipeError;

/// Finds services and instances under a base path laid out as curator-x-discovery lays
/// it out (`<base>/<service>/<instance-id>`, Curator's JSON): one-off queries, live
/// [`ServiceCache`]s and [`super::ServiceProvider`]s. `T` is the payload type
/// (`serde_json::Value` by default).
///
/// ```no_run
/// use corral_client::Client;
/// use corral_recipes::discovery::ServiceDiscovery;
///
/// # async fn run() -> Result<(), corral_recipes::RecipeError> {
/// let client = Client::connect("127.0.0.1:2181").await?;
/// let discovery: ServiceDiscovery = ServiceDiscovery::new(&client, "/services")?;
/// for name in discovery.query_for_names().await? {
///     let instances = discovery.query_for_instances(&name).await?;
///     println!("{name}: {} instances", instances.len());
/// }
/// # Ok(()) }
/// ```
pub struct ServiceDiscovery<T = serde_json::Value> {
    client: Client,
    base_path: String,
    _payload: PhantomData<fn() -> T>,
}

impl<T> Clone for ServiceDiscovery<T> {
    fn clone(&self) -> Self {
        ServiceDiscovery {
            client: self.client.clone(),
            base_path: self.base_path.clone(),
            _payload: PhantomData,
        }
    }
}

impl<T> fmt::Debug for ServiceDiscovery<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceDiscovery")
            .field("base_path", &self.base_path)
            .finish_non_exhaustive()
    }
}

impl<T: DeserializeOwned + Clone> ServiceDiscovery<T> {
    /// Discovery under `base_path`.
    ///
    /// # Errors
    ///
    /// [`RecipeError::BadArguments`] for an invalid path.
    pub fn new(client: &Client, base_path: &str) -> Result<Self, RecipeError> {
        validate_path(base_path)?;
        Ok(ServiceDiscovery {
            client: client.clone(),
            base_path: base_path.to_owned(),
            _payload: PhantomData,
        })
    }

    /// The base path.
    pub fn base_path(&self) -> &str {
        &self.base_path
    }

    /// The names of the services, sorted (empty if the base path does not exist).
    ///
    /// # Errors
    ///
    /// Client errors.
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe (a read).
    pub async fn query_for_names(&self) -> Result<Vec<String>, RecipeError> {
        match self.client.get_children(&self.base_path).await {
            Ok(mut names) => {
                names.sort();
                Ok(names)
            }
            Err(Error::NoNode) => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }

    /// The instances of service `name`, ordered by node name (the reads are pipelined;
    /// nodes that are not valid instances are skipped).
    ///
    /// # Errors
    ///
    /// [`RecipeError::BadArguments`] for an invalid name; client errors.
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe (reads).
    pub async fn query_for_instances(
        &self,
        name: &str,
    ) -> Result<Vec<ServiceInstance<T>>, RecipeError> {
        validate_name("service name", name)?;
        let dir = join(&self.base_path, name);
        let mut ids = match self.client.get_children(&dir).await {
            Ok(ids) => ids,
            Err(Error::NoNode) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        ids.sort();
        let reads: Vec<_> = ids
            .iter()
            .map(|id| self.client.get_data(&join(&dir, id)))
            .collect();
        let mut out = Vec::with_capacity(ids.len());
        for (id, read) in ids.iter().zip(reads) {
            match read.await {
                Ok((data, _)) => match ServiceInstance::from_json(&data) {
                    Ok(instance) => out.push(instance),
                    Err(e) => tracing::debug!(%dir, %id, error = %e, "not a service instance"),
                },
                Err(Error::NoNode) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    }

    /// The instance `id` of service `name`, if registered (by node name: an instance
    /// registered `DynamicSequential` has its sequence number appended).
    ///
    /// # Errors
    ///
    /// [`RecipeError::BadArguments`] for an invalid name or id;
    /// [`RecipeError::InvalidData`] if the node is not a valid instance; client errors.
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe (a read).
    pub async fn query_for_instance(
        &self,
        name: &str,
        id: &str,
    ) -> Result<Option<ServiceInstance<T>>, RecipeError> {
        validate_name("service name", name)?;
        validate_name("instance id", id)?;
        match self
            .client
            .get_data(&join(&join(&self.base_path, name), id))
            .await
        {
            Ok((data, _)) => ServiceInstance::from_json(&data).map(Some),
            Err(Error::NoNode) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Starts a live cache of service `name`.
    ///
    /// # Errors
    ///
    /// [`RecipeError::BadArguments`] for an invalid name.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn service_cache(&self, name: &str) -> Result<ServiceCache<T>, RecipeError> {
        ServiceCache::start(&self.client, &self.base_path, name)
    }

    /// A builder for a provider of service `name`.
    pub fn service_provider(&self, name: &str) -> ServiceProviderBuilder<T> {
        ServiceProviderBuilder::new(&self.client, &self.base_path, name)
    }
}

impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> ServiceDiscovery<T> {
    /// A registry under the same base path and with the same client.
    pub fn registry(&self) -> ServiceRegistry<T> {
        ServiceRegistry::new(&self.client, &self.base_path).expect("validated in new")
    }
}
