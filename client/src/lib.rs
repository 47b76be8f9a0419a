//! corral-client: an async ZooKeeper client (filled in by the client work).
