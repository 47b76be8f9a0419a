//! corral-server: a ZooKeeper-compatible server.
//!
//! The pure core (`tree`, `watch`, `session`, `acl`, `prep`) decides what requests mean and
//! never touches a socket, a file or a clock; the tokio shell (`node`, `net`, `admin`) drives
//! it.
//!
//! ```text
//!  conn task ──Request──► node loop: prep ──Txn──► log (durable) ──► tree.apply ──► watches
//!      ▲                                                                   │
//!      └──────────── replies and notifications, in order per session ◄─────┘
//! ```
//!
//! Start one in-process with [`testing::TestingServer`], or run the `corral-server` binary.

pub mod acl;
pub mod admin;
pub mod config;
pub mod idhash;
pub mod net;
pub mod node;
pub mod peer;
pub mod prep;
pub mod server;
pub mod session;
pub mod storage;
pub mod testing;
pub mod tree;
pub mod watch;
