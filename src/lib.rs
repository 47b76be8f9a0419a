//! Corral: a ZooKeeper-compatible coordination stack.
//!
//! This facade re-exports the wire types, the client, the recipes and the server's
//! in-process testing helpers.

pub use corral_client as client;
pub use corral_proto as proto;
pub use corral_recipes as recipes;
pub use corral_server as server;
