//! Unique, increasing ids from sequential nodes (the "naming service" of the ZooKeeper
//! documentation).
//!
//! ```text
//!   create <path>/_c_<uuid>-id-<seq> (ephemeral-sequential, protected)
//!      └─► id = <seq> read as unsigned ─► return ─► delete the node in the background
//! ```

use std::fmt;

use corral_client::{Client, Error, Zxid};
use uuid::Uuid;

use crate::lock::common::{
    parse_sequence, protected_create, protected_prefix, PendingNode, Target,
};
use crate::RecipeError;

/// The base name of id nodes.
const ID_NAME: &str = "id-";

/// An id handed out by a [`SequenceGenerator`].
///
/// ```
/// # fn f(a: corral_recipes::sequence::SequenceId, b: corral_recipes::sequence::SequenceId) {
/// // Later ids compare greater.
/// if a.zxid() < b.zxid() { assert!(a.value() < b.value()); }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SequenceId {
    value: u64,
    zxid: Zxid,
}

impl SequenceId {
    /// The id: the sequence number ZooKeeper gave the node, read as unsigned. Ids of one
    /// generator path are unique and strictly increase in the order they were handed out,
    /// across all clients, for the first 2³² child changes of the path (each id uses two:
    /// the create and the cleanup delete), i.e. about two billion ids.
    pub fn value(&self) -> u64 {
        self.value
    }

    /// The zxid that created the id's node: unique and strictly increasing too, without
    /// a limit (but not dense).
    pub fn zxid(&self) -> Zxid {
        self.zxid
    }
}

impl fmt::Display for SequenceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.value)
    }
}

/// Hands out unique, increasing ids (the "naming service" recipe of the ZooKeeper
/// documentation: "sequential nodes to generate unique names").
///
/// # How it works
///
/// Each id is the sequence number of a fresh ephemeral-sequential node
/// `<path>/_c_<uuid>-id-<seq>`: ZooKeeper numbers the children of a node in the order
/// their creates are applied, so ids from every client are unique and increase in that
/// order. The create is protected (after a connection loss the node is found by its UUID
/// instead of being created twice, which would waste an id but never repeat one). The node
/// has done its job once created: it is deleted in the background right away (and, being
/// ephemeral, goes with the session at the latest), so the directory stays empty.
///
/// # Example
///
/// ```no_run
/// use corral_client::Client;
/// use corral_recipes::sequence::SequenceGenerator;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let client = Client::connect("127.0.0.1:2181").await?;
/// let ids = SequenceGenerator::new(client, "/app/ids/orders");
/// let a = ids.next_id().await?;
/// let b = ids.next_id().await?;
/// assert!(b.value() > a.value());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SequenceGenerator {
    client: Client,
    path: String,
}

impl SequenceGenerator {
    /// A generator of ids from the directory `path` (created on first use, as a container).
    pub fn new(client: Client, path: impl Into<String>) -> Self {
        SequenceGenerator {
            client,
            path: path.into(),
        }
    }

    /// The directory.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The next id.
    ///
    /// # Errors
    ///
    /// Client errors (`ConnectionLoss` when the connection does not come back within the
    /// session timeout).
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe: a dropped call deletes its node, if it made one; that id is skipped.
    pub async fn next_id(&self) -> Result<SequenceId, RecipeError> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.try_next_id().await {
                // The directory (a container) was reaped between our creates.
                Err(RecipeError::Client(Error::NoNode)) if attempts < 16 => continue,
                other => return other,
            }
        }
    }

    async fn try_next_id(&self) -> Result<SequenceId, RecipeError> {
        let prefix = protected_prefix(&Uuid::new_v4());
        let mut pending = PendingNode::new(
            &self.client,
            Target::Protected {
                dir: self.path.clone(),
                prefix: prefix.clone(),
            },
        );
        let created = protected_create(
            &self.client,
            &self.path,
            &prefix,
            ID_NAME,
            b"",
            None,
            &mut pending,
        )
        .await?
        .expect("no deadline");
        // Dropping `pending` deletes the node in the background: it has served.
        drop(pending);
        let seq = parse_sequence(&created.name, ID_NAME).ok_or_else(|| {
            RecipeError::InvalidData(format!("no sequence number in {}", created.name))
        })?;
        Ok(SequenceId {
            value: u64::from(seq as u32),
            zxid: Zxid(created.stat.czxid),
        })
    }
}
