//! [`ServiceRegistry`]: registering service instances, kept registered across session
//! loss.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex, MutexGuard};

use corral_client::{Client, CreateMode};
use serde::Serialize;

use super::instance::{ServiceInstance, ServiceType};
use crate::cache::validate_path;
use crate::lock::common::join;
use crate::persistent_node::PersistentNode;
use crate::RecipeError;

struct Entry<T> {
    instance: ServiceInstance<T>,
    node: Arc<PersistentNode>,
}

/// Registers service instances under `<base>/<service>/<instance-id>` with
/// curator-x-discovery's layout and JSON, so that Curator's `ServiceDiscovery` sees them
/// (and [`super::ServiceDiscovery`] sees Curator's).
///
/// Each registered instance is a [`PersistentNode`]: ephemeral for
/// [`ServiceType::Dynamic`] (ephemeral sequential for `DynamicSequential`), persistent for
/// `Static` and `Permanent`. It is registered again automatically whenever it goes
/// missing: after a reconnect that finds it gone, after its node is deleted, and after a
/// session expiry, as soon as the client has a new session (build the client with
/// [`corral_client::ClientBuilder::with_session_renewal`]; without it an expired client
/// can register nothing).
///
/// Dropping the registry (or [`ServiceRegistry::close`]) unregisters everything, as
/// Curator's `ServiceDiscovery.close()` does.
///
/// ```no_run
/// use corral_client::Client;
/// use corral_recipes::discovery::{ServiceInstance, ServiceRegistry};
///
/// # async fn run() -> Result<(), corral_recipes::RecipeError> {
/// let client = Client::builder("127.0.0.1:2181").with_session_renewal(true).connect().await?;
/// let registry = ServiceRegistry::new(&client, "/services")?;
/// let me = ServiceInstance::new("api")
///     .with_address("10.0.0.7")
///     .with_port(8080)
///     .with_payload(serde_json::json!({"zone": "eu-1"}));
/// let path = registry.register(me.clone()).await?;
/// println!("registered at {path}");
/// registry.update(me.clone().with_port(8081)).await?;
/// registry.unregister(&me.id).await?;
/// # Ok(()) }
/// ```
pub struct ServiceRegistry<T = serde_json::Value> {
    client: Client,
    base_path: String,
    entries: StdMutex<HashMap<String, Entry<T>>>,
}

impl<T> std::fmt::Debug for ServiceRegistry<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceRegistry")
            .field("base_path", &self.base_path)
            .field("registered", &self.lock().len())
            .finish_non_exhaustive()
    }
}

impl<T> ServiceRegistry<T> {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry<T>>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Checks that `name` can be one path component.
pub(crate) fn validate_name(what: &str, name: &str) -> Result<(), RecipeError> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(RecipeError::BadArguments(format!(
            "invalid {what} {name:?}: it must be one path component"
        )));
    }
    Ok(())
}

impl<T: Serialize + Clone + Send + Sync + 'static> ServiceRegistry<T> {
    /// A registry under `base_path` (created on the first registration).
    ///
    /// # Errors
    ///
    /// [`RecipeError::BadArguments`] for an invalid path.
    pub fn new(client: &Client, base_path: &str) -> Result<Self, RecipeError> {
        validate_path(base_path)?;
        Ok(ServiceRegistry {
            client: client.clone(),
            base_path: base_path.to_owned(),
            entries: StdMutex::new(HashMap::new()),
        })
    }

    /// The base path.
    pub fn base_path(&self) -> &str {
        &self.base_path
    }

    /// Registers `instance` (or, if its id is registered already, updates it) and waits
    /// until its node exists. Returns the node's path.
    ///
    /// # Errors
    ///
    /// [`RecipeError::BadArguments`] for a name or id that is not one path component;
    /// [`RecipeError::InvalidData`] if the payload cannot be serialized; client errors
    /// that retrying cannot fix (e.g. `NoAuth`), after which the instance is not
    /// registered; [`RecipeError::Closed`] if the client's session task ended.
    ///
    /// # Cancellation safety
    ///
    /// The instance is registered when the call starts: dropping the future stops the
    /// waiting, not the registration (unregister it, or drop the registry).
    pub async fn register(&self, instance: ServiceInstance<T>) -> Result<String, RecipeError> {
        validate_name("service name", &instance.name)?;
        validate_name("instance id", &instance.id)?;
        let data = instance.to_json()?;
        let existing = {
            let entries = self.lock();
            entries.get(&instance.id).map(|e| {
                (
                    e.instance.name.clone(),
                    e.instance.service_type,
                    e.node.clone(),
                )
            })
        };
        if let Some((name, service_type, node)) = existing {
            if name == instance.name && service_type == instance.service_type {
                if let Some(entry) = self.lock().get_mut(&instance.id) {
                    entry.instance = instance;
                }
                node.set_data(&data).await?;
                return node.created().await;
            }
            self.unregister(&instance.id).await?;
        }
        let mode = match instance.service_type {
            ServiceType::Dynamic => CreateMode::Ephemeral,
            ServiceType::DynamicSequential => CreateMode::EphemeralSequential,
            ServiceType::Static | ServiceType::Permanent => CreateMode::Persistent,
        };
        let path = join(&join(&self.base_path, &instance.name), &instance.id);
        let node = Arc::new(
            PersistentNode::builder(&self.client, &path, &data)
                .with_mode(mode)
                .start()?,
        );
        let id = instance.id.clone();
        self.lock().insert(
            id.clone(),
            Entry {
                instance,
                node: node.clone(),
            },
        );
        match node.created().await {
            Ok(path) => Ok(path),
            Err(e) => {
                let mut entries = self.lock();
                if entries
                    .get(&id)
                    .is_some_and(|e| Arc::ptr_eq(&e.node, &node))
                {
                    entries.remove(&id);
                }
                Err(e)
            }
        }
    }

    /// Replaces the data of a registered instance (same id).
    ///
    /// # Errors
    ///
    /// [`RecipeError::NotRegistered`] for an unknown id; [`RecipeError::BadArguments`] if
    /// the name or service type changed (register it again instead);
    /// [`RecipeError::InvalidData`] if the payload cannot be serialized; client errors
    /// other than connection loss (the new data is then written after reconnecting).
    ///
    /// # Cancellation safety
    ///
    /// The new data is recorded when the call starts and written even if the future is
    /// dropped.
    pub async fn update(&self, instance: ServiceInstance<T>) -> Result<(), RecipeError> {
        let data = instance.to_json()?;
        let node = {
            let mut entries = self.lock();
            let entry = entries
                .get_mut(&instance.id)
                .ok_or_else(|| RecipeError::NotRegistered(instance.id.clone()))?;
            if entry.instance.name != instance.name
                || entry.instance.service_type != instance.service_type
            {
                return Err(RecipeError::BadArguments(
                    "update cannot change an instance's name or service type".into(),
                ));
            }
            entry.instance = instance;
            entry.node.clone()
        };
        node.set_data(&data).await
    }

    /// Unregisters the instance with this id and deletes its node; returns whether it was
    /// registered.
    ///
    /// # Errors
    ///
    /// None so far (a delete that fails for good is logged).
    ///
    /// # Cancellation safety
    ///
    /// The instance is unregistered when the call starts; its node is deleted in the
    /// background if the future is dropped.
    pub async fn unregister(&self, id: &str) -> Result<bool, RecipeError> {
        let entry = self.lock().remove(id);
        match entry {
            None => Ok(false),
            Some(entry) => {
                if let Ok(node) = Arc::try_unwrap(entry.node) {
                    node.close().await?;
                }
                // Otherwise a concurrent register still holds it; its drop deletes.
                Ok(true)
            }
        }
    }

    /// The instances registered here, as last registered or updated.
    pub fn instances(&self) -> Vec<ServiceInstance<T>> {
        self.lock().values().map(|e| e.instance.clone()).collect()
    }

    /// The actual node path of a registered instance while its node is known to exist.
    pub fn path(&self, id: &str) -> Option<String> {
        self.lock().get(id).and_then(|e| e.node.actual_path())
    }

    /// Unregisters every instance and waits for their nodes to be deleted.
    ///
    /// # Errors
    ///
    /// None so far.
    ///
    /// # Cancellation safety
    ///
    /// Everything is unregistered when the call starts; deletes go on in the background
    /// if the future is dropped.
    pub async fn close(self) -> Result<(), RecipeError> {
        let entries: Vec<_> = self.lock().drain().map(|(_, e)| e.node).collect();
        for node in entries {
            if let Ok(node) = Arc::try_unwrap(node) {
                node.close().await?;
            }
        }
        Ok(())
    }
}
