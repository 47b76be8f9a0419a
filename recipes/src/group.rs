//! Group membership: members are ephemeral nodes `<group>/<member-id>` with data
//! (Curator's `GroupMember`), and a live view of the group.
//!
//! ```text
//!   GroupMember ── PersistentNode (ephemeral <group>/<id>, recreated after session loss)
//!        └─ Group ── TreeCache depth 1 of <group> ──► members(), GroupEvents
//! ```

use std::collections::BTreeMap;
use std::pin::Pin;
use std::task::{Context, Poll};

use corral_client::{Client, CreateMode};

use crate::cache::{CacheEvent, CacheEvents, TreeCache, WatchMode};
use crate::discovery::validate_name;
use crate::lock::common::{join, parent};
use crate::persistent_node::PersistentNode;
use crate::RecipeError;

/// A change of a group's membership.
///
/// ```
/// use corral_recipes::group::GroupEvent;
/// let e = GroupEvent::Joined { id: "w1".into(), data: b"10.0.0.7".to_vec() };
/// assert!(matches!(e, GroupEvent::Joined { ref id, .. } if id == "w1"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GroupEvent {
    /// A member joined (or was found at the first load or after a reconnect).
    Joined {
        /// Its id.
        id: String,
        /// Its data.
        data: Vec<u8>,
    },
    /// A member's data changed.
    Updated {
        /// Its id.
        id: String,
        /// Its new data.
        data: Vec<u8>,
    },
    /// A member left (its session ended, or it left the group).
    Left {
        /// Its id.
        id: String,
        /// Its last data.
        data: Vec<u8>,
    },
    /// The first load is complete.
    Initialized,
    /// The subscriber fell behind: forget the members you had; the current members follow
    /// as `Joined`.
    Reset,
}

/// A [`Group`]'s events, as a [`futures_core::Stream`] or with [`GroupEvents::recv`];
/// it starts with the current members.
///
/// ```no_run
/// # async fn f(group: corral_recipes::group::Group) {
/// use corral_recipes::group::GroupEvent;
/// let mut events = group.events();
/// while let Some(event) = events.recv().await {
///     if let GroupEvent::Left { id, .. } = event {
///         println!("{id} left");
///     }
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct GroupEvents {
    inner: CacheEvents,
    path: String,
}

impl GroupEvents {
    /// The next event; `None` once the view is closed.
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe.
    pub async fn recv(&mut self) -> Option<GroupEvent> {
        std::future::poll_fn(|cx| self.poll_event(cx)).await
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<GroupEvent>> {
        loop {
            let next = futures_core::Stream::poll_next(Pin::new(&mut self.inner), cx);
            let Some(event) = std::task::ready!(next) else {
                return Poll::Ready(None);
            };
            let member = |d: &crate::cache::ChildData| {
                (parent(&d.path) == self.path).then(|| (d.name().to_owned(), d.data.clone()))
            };
            let out = match &event {
                CacheEvent::Initialized => Some(GroupEvent::Initialized),
                CacheEvent::Reset => Some(GroupEvent::Reset),
                CacheEvent::Created(d) => {
                    member(d).map(|(id, data)| GroupEvent::Joined { id, data })
                }
                CacheEvent::Changed(d) => {
                    member(d).map(|(id, data)| GroupEvent::Updated { id, data })
                }
                CacheEvent::Deleted(d) => member(d).map(|(id, data)| GroupEvent::Left { id, data }),
            };
            if let Some(out) = out {
                return Poll::Ready(Some(out));
            }
        }
    }
}

impl futures_core::Stream for GroupEvents {
    type Item = GroupEvent;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<GroupEvent>> {
        self.get_mut().poll_event(cx)
    }
}

/// A live view of a group's members: the children of the group node, with their data,
/// kept current by a [`TreeCache`] of depth 1 (resynchronised after every reconnect).
///
/// Clones share one view; it stops when the last clone is dropped or on
/// [`Group::close`].
///
/// ```no_run
/// use corral_client::Client;
/// use corral_recipes::group::Group;
///
/// # async fn run() -> Result<(), corral_recipes::RecipeError> {
/// let client = Client::connect("127.0.0.1:2181").await?;
/// let group = Group::watch(&client, "/app/workers")?;
/// group.initialized().await?;
/// for (id, data) in group.members() {
///     println!("{id}: {}", String::from_utf8_lossy(&data));
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Group {
    tree: TreeCache,
}

impl Group {
    /// Starts a view of the group at `path` (which need not exist yet).
    ///
    /// # Errors
    ///
    /// [`RecipeError::BadArguments`] for an invalid path.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn watch(client: &Client, path: &str) -> Result<Group, RecipeError> {
        Self::watch_with(client, path, WatchMode::Persistent)
    }

    /// Like [`Group::watch`] with the given watch mode.
    ///
    /// # Errors
    ///
    /// As [`Group::watch`].
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn watch_with(client: &Client, path: &str, mode: WatchMode) -> Result<Group, RecipeError> {
        let tree = TreeCache::builder(client, path)
            .with_max_depth(1)
            .with_watch_mode(mode)
            .start()?;
        Ok(Group { tree })
    }

    /// The group's path.
    pub fn path(&self) -> &str {
        self.tree.path()
    }

    /// The current members: id → data.
    pub fn members(&self) -> BTreeMap<String, Vec<u8>> {
        self.tree
            .children(self.tree.path())
            .unwrap_or_default()
            .into_iter()
            .map(|(id, d)| (id, d.data))
            .collect()
    }

    /// Whether the first load is complete.
    pub fn is_initialized(&self) -> bool {
        self.tree.is_initialized()
    }

    /// Waits until the first load is complete.
    ///
    /// # Errors
    ///
    /// [`RecipeError::Closed`] if the view stopped first.
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe.
    pub async fn initialized(&self) -> Result<(), RecipeError> {
        self.tree.initialized().await
    }

    /// The membership changes from now on, starting with the current members.
    pub fn events(&self) -> GroupEvents {
        GroupEvents {
            inner: self.tree.events(),
            path: self.tree.path().to_owned(),
        }
    }

    /// Stops the view (for every clone).
    pub fn close(&self) {
        self.tree.close()
    }
}

/// Membership in a group (Curator's `GroupMember`): an ephemeral node `<group>/<id>` with
/// this member's data, kept there by a [`PersistentNode`] (recreated after a reconnect
/// that finds it gone and after a session expiry, with a renewing client), plus a live
/// [`Group`] view of all members.
///
/// Dropping it (or [`GroupMember::leave`]) deletes the node.
///
/// ```no_run
/// use corral_client::Client;
/// use corral_recipes::group::GroupMember;
///
/// # async fn run() -> Result<(), corral_recipes::RecipeError> {
/// let client = Client::builder("127.0.0.1:2181").with_session_renewal(true).connect().await?;
/// let me = GroupMember::join(&client, "/app/workers", "worker-1", b"10.0.0.7")?;
/// me.joined().await?;
/// me.group().initialized().await?;
/// println!("members: {:?}", me.group().members().keys().collect::<Vec<_>>());
/// me.leave().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct GroupMember {
    id: String,
    node: PersistentNode,
    group: Group,
}

impl GroupMember {
    /// Joins the group at `group_path` as `id` with `data` (in the background; see
    /// [`GroupMember::joined`]), and starts a view of the group.
    ///
    /// # Errors
    ///
    /// [`RecipeError::BadArguments`] for an invalid path or an id that is not one path
    /// component.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn join(
        client: &Client,
        group_path: &str,
        id: &str,
        data: &[u8],
    ) -> Result<GroupMember, RecipeError> {
        validate_name("member id", id)?;
        let group = Group::watch(client, group_path)?;
        let node = PersistentNode::builder(client, &join(group_path, id), data)
            .with_mode(CreateMode::Ephemeral)
            .start()?;
        Ok(GroupMember {
            id: id.to_owned(),
            node,
            group,
        })
    }

    /// This member's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The live view of the group.
    pub fn group(&self) -> &Group {
        &self.group
    }

    /// Waits until this member's node exists; returns its path.
    ///
    /// # Errors
    ///
    /// As [`PersistentNode::created`].
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe.
    pub async fn joined(&self) -> Result<String, RecipeError> {
        self.node.created().await
    }

    /// Changes this member's data.
    ///
    /// # Errors
    ///
    /// As [`PersistentNode::set_data`].
    ///
    /// # Cancellation safety
    ///
    /// As [`PersistentNode::set_data`].
    pub async fn set_data(&self, data: &[u8]) -> Result<(), RecipeError> {
        self.node.set_data(data).await
    }

    /// Leaves the group: deletes this member's node (and waits for it) and stops the view.
    ///
    /// # Errors
    ///
    /// As [`PersistentNode::close`].
    ///
    /// # Cancellation safety
    ///
    /// As [`PersistentNode::close`].
    pub async fn leave(self) -> Result<(), RecipeError> {
        self.group.close();
        self.node.close().await
    }
}
