//! corral-client: an async (tokio) ZooKeeper client.
//!
//! It speaks Apache ZooKeeper's client protocol (through [`corral_proto`]), so it works
//! against Apache ZooKeeper 3.5+ and against Corral's own server. `corral-recipes` builds
//! on it. Dependency direction: `recipes → client → proto`.
//!
//! ```text
//!   Client (clone) ─┐
//!   Client (clone) ─┼─ Command channel (call order) ─► session task ─► TCP ─► server
//!   Client (clone) ─┘                                     │
//!        ▲  oneshot reply per request  ◄──────────────────┤  replies matched by xid
//!   OneshotWatcher / PersistentWatcher  ◄── events ───────┤  notifications
//!   StateWatcher  ◄── SessionStatus (watch channel) ──────┘  connection states
//! ```
//!
//! * **Pipelining**: each operation is sent when the method is *called*; the returned
//!   future only awaits the reply. Many requests share the one connection, in call order.
//!   Dropping a future never cancels the request nor desynchronises the connection.
//! * **Sessions**: the session task connects to a shuffled host list, resumes the session
//!   on any server after a disconnect, pings after a third of the session timeout of
//!   silence and drops a server silent for two thirds of it. Expiry is reported, never
//!   hidden behind a new session (unless [`ClientBuilder::with_session_renewal`]).
//! * **Watches** are values: `get_and_watch_data` returns the data *and* a
//!   [`OneshotWatcher`]; [`Client::add_watch`] returns a [`PersistentWatcher`] stream. After
//!   a reconnect all watches are re-registered from the last zxid seen, so no change is
//!   missed.
//! * **States**: [`StateWatcher`] publishes ZooKeeper's keeper states and Curator's
//!   connection states (Connected, Suspended, Reconnected, Lost) with a session epoch.
//! * **Retries**: idempotent operations are retried on connection loss per a
//!   [`RetryPolicy`]; writes never are.
//!
//! # Example
//!
//! ```no_run
//! use corral_client::{Client, CreateMode, CreateOptions, Error};
//!
//! # async fn run() -> Result<(), Error> {
//! let client = Client::connect("127.0.0.1:2181/app").await?;
//! let (path, _stat) = client
//!     .create("/workers/w-", b"host-1", &CreateOptions::new(CreateMode::EphemeralSequential))
//!     .await?;
//! let (data, stat, watcher) = client.get_and_watch_data("/config").await?;
//! println!("{path}: config v{} = {:?}", stat.version, data);
//! let event = watcher.await?; // the next change of /config
//! println!("{:?} on {}", event.event_type, event.path);
//! client.close().await?;
//! # Ok(()) }
//! ```

mod builder;
mod client;
mod connect_string;
mod error;
mod multi;
mod options;
mod retry;
mod session;
mod state;
mod watcher;

pub use builder::ClientBuilder;
pub use client::Client;
pub use connect_string::ConnectString;
pub use error::Error;
pub use multi::{MultiReader, MultiWriter, OpResult, ReadResult};
pub use options::CreateOptions;
pub use retry::RetryPolicy;
pub use state::{ConnectionState, SessionStatus, StateStream, StateWatcher};
pub use watcher::{OneshotWatcher, PersistentWatcher, WatchedEvent};

pub use corral_proto::{
    perms, Acl, AddWatchMode, ClientInfo, CreateMode, EventType, Id, KeeperState, SessionId, Stat,
    WatcherType, Zxid,
};
