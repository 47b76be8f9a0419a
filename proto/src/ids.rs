//! Identifiers and small enums of the protocol: zxids, session ids, permissions, create
//! modes, watch types and keeper states.

use std::fmt;

/// A transaction id: 32-bit epoch in the high half, 32-bit counter in the low half.
///
/// ```
/// use corral_proto::Zxid;
/// let z = Zxid::new(3, 7);
/// assert_eq!((z.epoch(), z.counter()), (3, 7));
/// assert_eq!(z.to_string(), "0x300000007");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Zxid(pub i64);

impl Zxid {
    /// Builds a zxid from an epoch and a counter.
    pub fn new(epoch: u32, counter: u32) -> Self {
        Zxid(((epoch as i64) << 32) | counter as i64)
    }
    /// The leader epoch that issued it.
    pub fn epoch(self) -> u32 {
        (self.0 as u64 >> 32) as u32
    }
    /// The position within the epoch.
    pub fn counter(self) -> u32 {
        self.0 as u32
    }
}

impl fmt::Display for Zxid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:x}", self.0)
    }
}

/// A session id: the creating server's id in the top byte.
///
/// ```
/// use corral_proto::SessionId;
/// assert_eq!(SessionId(0x0100_0003_284e_0000).to_string(), "0x1000003284e0000");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SessionId(pub i64);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:x}", self.0)
    }
}

/// Permission bits of an ACL entry.
pub mod perms {
    /// Read data and list children.
    pub const READ: i32 = 1;
    /// Set data.
    pub const WRITE: i32 = 2;
    /// Create children.
    pub const CREATE: i32 = 4;
    /// Delete children.
    pub const DELETE: i32 = 8;
    /// Set ACLs.
    pub const ADMIN: i32 = 16;
    /// Every permission.
    pub const ALL: i32 = 31;
}

/// The node type requested by a create.
///
/// ```
/// use corral_proto::CreateMode;
/// assert_eq!(CreateMode::from_flags(3), Some(CreateMode::EphemeralSequential));
/// assert!(CreateMode::EphemeralSequential.is_sequential());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CreateMode {
    /// Flags 0.
    Persistent,
    /// Flags 1: removed when the owning session ends.
    Ephemeral,
    /// Flags 2: a 10-digit counter is appended to the name.
    PersistentSequential,
    /// Flags 3.
    EphemeralSequential,
    /// Flags 4: removed by the server once it had children and has none.
    Container,
    /// Flags 5: removed when childless and unmodified for its TTL.
    PersistentWithTtl,
    /// Flags 6.
    PersistentSequentialWithTtl,
}

impl CreateMode {
    /// The mode for a wire `flags` value.
    pub fn from_flags(flags: i32) -> Option<Self> {
        Some(match flags {
            0 => CreateMode::Persistent,
            1 => CreateMode::Ephemeral,
            2 => CreateMode::PersistentSequential,
            3 => CreateMode::EphemeralSequential,
            4 => CreateMode::Container,
            5 => CreateMode::PersistentWithTtl,
            6 => CreateMode::PersistentSequentialWithTtl,
            _ => return None,
        })
    }
    /// The wire `flags` value.
    pub fn flags(self) -> i32 {
        self as i32
    }
    /// Whether a counter suffix is appended.
    pub fn is_sequential(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentSequential
                | CreateMode::EphemeralSequential
                | CreateMode::PersistentSequentialWithTtl
        )
    }
    /// Whether the node belongs to a session.
    pub fn is_ephemeral(self) -> bool {
        matches!(
            self,
            CreateMode::Ephemeral | CreateMode::EphemeralSequential
        )
    }
    /// Whether the node is a container.
    pub fn is_container(self) -> bool {
        self == CreateMode::Container
    }
    /// Whether the node has a TTL.
    pub fn is_ttl(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentWithTtl | CreateMode::PersistentSequentialWithTtl
        )
    }
}

/// `Stat.ephemeralOwner` of a container node.
pub const CONTAINER_EPHEMERAL_OWNER: i64 = i64::MIN;
/// Largest TTL in milliseconds (40 bits).
pub const MAX_TTL_MS: i64 = 0xFF_FFFF_FFFF;

/// `Stat.ephemeralOwner` of a TTL node with the given TTL.
pub fn ttl_ephemeral_owner(ttl_ms: i64) -> i64 {
    (0xFF00_0000_0000_0000u64 as i64) | (ttl_ms & MAX_TTL_MS)
}

/// The TTL encoded in an `ephemeralOwner`, if it denotes a TTL node.
pub fn ttl_of_owner(owner: i64) -> Option<i64> {
    ((owner as u64) >> 56 == 0xFF && (owner as u64 >> 40) & 0xFFFF == 0)
        .then_some(owner & MAX_TTL_MS)
}

/// Type of a watch notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum EventType {
    /// A state change, not about a node.
    None = -1,
    /// The node was created.
    NodeCreated = 1,
    /// The node was deleted.
    NodeDeleted = 2,
    /// The node's data changed.
    NodeDataChanged = 3,
    /// A child was created or deleted.
    NodeChildrenChanged = 4,
    /// A data watch was removed (client-side only).
    DataWatchRemoved = 5,
    /// A child watch was removed (client-side only).
    ChildWatchRemoved = 6,
    /// A persistent watch was removed (client-side only).
    PersistentWatchRemoved = 7,
}

impl EventType {
    /// The event type for a wire value.
    pub fn from_i32(v: i32) -> Option<Self> {
        Some(match v {
            -1 => EventType::None,
            1 => EventType::NodeCreated,
            2 => EventType::NodeDeleted,
            3 => EventType::NodeDataChanged,
            4 => EventType::NodeChildrenChanged,
            5 => EventType::DataWatchRemoved,
            6 => EventType::ChildWatchRemoved,
            7 => EventType::PersistentWatchRemoved,
            _ => return None,
        })
    }
}

/// Connection state carried by watcher events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum KeeperState {
    /// Disconnected from the server.
    Disconnected = 0,
    /// Connected; every server notification carries this.
    SyncConnected = 3,
    /// Authentication failed.
    AuthFailed = 4,
    /// Connected to a read-only server.
    ConnectedReadOnly = 5,
    /// SASL authentication succeeded.
    SaslAuthenticated = 6,
    /// The session expired.
    Expired = -112,
    /// The client was closed.
    Closed = 7,
}

impl KeeperState {
    /// The state for a wire value.
    pub fn from_i32(v: i32) -> Option<Self> {
        Some(match v {
            0 => KeeperState::Disconnected,
            3 => KeeperState::SyncConnected,
            4 => KeeperState::AuthFailed,
            5 => KeeperState::ConnectedReadOnly,
            6 => KeeperState::SaslAuthenticated,
            -112 => KeeperState::Expired,
            7 => KeeperState::Closed,
            _ => return None,
        })
    }
}

/// Watch kinds named by checkWatches / removeWatches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum WatcherType {
    /// Child watches.
    Children = 1,
    /// Data and exists watches.
    Data = 2,
    /// Any kind.
    Any = 3,
    /// Persistent watches.
    Persistent = 4,
    /// Persistent recursive watches.
    PersistentRecursive = 5,
}

impl WatcherType {
    /// The type for a wire value.
    pub fn from_i32(v: i32) -> Option<Self> {
        Some(match v {
            1 => WatcherType::Children,
            2 => WatcherType::Data,
            3 => WatcherType::Any,
            4 => WatcherType::Persistent,
            5 => WatcherType::PersistentRecursive,
            _ => return None,
        })
    }
}

/// Mode of an addWatch request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum AddWatchMode {
    /// Data and child events on one node, until removed.
    Persistent = 0,
    /// Data events on a node and all its descendants, until removed.
    PersistentRecursive = 1,
}

impl AddWatchMode {
    /// The mode for a wire value.
    pub fn from_i32(v: i32) -> Option<Self> {
        Some(match v {
            0 => AddWatchMode::Persistent,
            1 => AddWatchMode::PersistentRecursive,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_owner_round_trips_and_is_not_a_session() {
        let owner = ttl_ephemeral_owner(5000);
        assert_eq!(owner as u64, 0xFF00_0000_0000_1388);
        assert_eq!(ttl_of_owner(owner), Some(5000));
        assert_eq!(ttl_of_owner(0x0100_0003_284e_0000), None);
        assert_eq!(ttl_of_owner(CONTAINER_EPHEMERAL_OWNER), None);
    }

    #[test]
    fn zxid_splits_into_epoch_and_counter() {
        let z = Zxid(0x0000_0005_ffff_fffe);
        assert_eq!(z.epoch(), 5);
        assert_eq!(z.counter(), 0xffff_fffe);
    }
}
