//! Service discovery with curator-x-discovery's layout and JSON, so Rust and Java
//! (Curator 5) services find each other.
//!
//! ```text
//!   /<base>/<service>/<instance-id>     ephemeral node, data = ServiceInstance JSON
//!
//!   ServiceRegistry ── register / update / unregister ──► PersistentNode per instance
//!                         (re-registered after reconnects that find it gone and after
//!                          session expiry, with a renewing client)
//!   ServiceDiscovery ── query_for_names / query_for_instances (one-off reads)
//!        ├─ service_cache(name) ──► ServiceCache (TreeCache depth 1) ─► events stream
//!        └─ service_provider(name) ─► ServiceProvider: round robin / random / sticky,
//!                                      note_error skips a failing instance for a while
//! ```
//!
//! ```no_run
//! use corral_client::Client;
//! use corral_recipes::discovery::{ServiceDiscovery, ServiceInstance, ServiceRegistry};
//!
//! # async fn run() -> Result<(), corral_recipes::RecipeError> {
//! let client = Client::builder("127.0.0.1:2181").with_session_renewal(true).connect().await?;
//! let registry: ServiceRegistry = ServiceRegistry::new(&client, "/services")?;
//! registry
//!     .register(ServiceInstance::new("api").with_address("10.0.0.7").with_port(8080))
//!     .await?;
//!
//! let discovery: ServiceDiscovery = ServiceDiscovery::new(&client, "/services")?;
//! let provider = discovery.service_provider("api").start()?;
//! provider.initialized().await?;
//! println!("call {:?}", provider.get_instance().map(|i| i.port));
//! # Ok(()) }
//! ```

mod cache;
mod instance;
mod provider;
mod registry;
mod service_discovery;

pub use cache::{ServiceCache, ServiceCacheEvent, ServiceCacheEvents};
pub use instance::{ServiceInstance, ServiceType, UriPart, UriSpec};
pub use provider::{DownInstancePolicy, ProviderStrategy, ServiceProvider, ServiceProviderBuilder};
pub(crate) use registry::validate_name;
pub use registry::ServiceRegistry;
pub use service_discovery::ServiceDiscovery;
