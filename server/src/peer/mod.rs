//! The quorum side of a server: the peer links that carry election and atomic-broadcast
//! messages, and their encoding. The protocol itself is the sans-IO `corral-zab` core,
//! driven by the node loop.

pub mod codec;
pub mod epochs;
pub mod forward;
pub mod link;
