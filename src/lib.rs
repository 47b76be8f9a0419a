//! Corral: a ZooKeeper-compatible coordination stack.
//!
//! This facade re-exports the wire types ([`proto`]), the async client ([`client`]), the
//! Curator-style recipes ([`recipes`]) and the server with its in-process testing helpers
//! ([`server::testing`]).
//!
//! ```no_run
//! use corral::client::{Client, CreateMode, CreateOptions};
//! use corral::recipes::lock::Mutex;
//!
//! async fn run() -> Result<(), Box<dyn std::error::Error>> {
//!     let client = Client::connect("127.0.0.1:2181,127.0.0.1:2182/app").await?;
//!     let (path, _stat) = client
//!         .create("/workers/w-", b"host-1", &CreateOptions::new(CreateMode::EphemeralSequential))
//!         .await?;
//!     let (data, stat, watcher) = client.get_and_watch_data("/config").await?;
//!     println!("{path}: config v{} = {data:?}", stat.version);
//!
//!     let lock = Mutex::new(client.clone(), "/locks/jobs");
//!     let guard = lock.acquire().await?;
//!     println!("holding the lock, fencing token {}", guard.fencing_token());
//!     drop(guard); // released in the background
//!
//!     let event = watcher.await?; // the next change of /config
//!     println!("{:?} on {}", event.event_type, event.path);
//!     client.close().await?;
//!     Ok(())
//! }
//! ```

pub use corral_client as client;
pub use corral_proto as proto;
pub use corral_recipes as recipes;
pub use corral_server as server;
