//! Shared machinery of the recipes: node naming, sequence numbers, protected creates,
//! waiting for a node to change, and cleaning up nodes we no longer want.
//!
//! Later recipes (leader latch, queues, barriers) reuse these pieces, so each is small and
//! documented for reuse:
//!
//! * [`parse_sequence`] / [`sort_contenders`]: order sequential children by their
//!   sequence *number*, robust to foreign children and to the signed 32-bit wrap;
//! * [`ensure_parents`]: Curator's `creatingParentContainersIfNeeded`;
//! * [`protected_create`] + [`PendingNode`]: Curator's protected mode, plus a drop guard
//!   that deletes the node of an abandoned (cancelled, timed-out or failed) attempt;
//! * [`watch_for_change`]: wait for a node to change or go (the predecessor watch);
//! * [`cleanup`]: delete a node, retrying across connection loss until the session ends;
//! * [`wait_connected`]: wait for the session to be connected again.
//!
//! # Protected mode
//!
//! A create that fails with `ConnectionLoss` may or may not have been applied. Curator's
//! answer, which we follow byte for byte so that Curator and Corral share nodes: every
//! create attempt puts a fresh UUID into the name (`_c_<uuid>-<name>`), and after a
//! connection loss the client lists the parent and adopts the child that carries its UUID
//! instead of creating a second node. Requests of one session are applied in order, so a
//! listing sent after the create sees it if it was applied at all.

use std::future::Future;
use std::time::Duration;

use corral_client::{Client, CreateMode, CreateOptions, Error, KeeperState, SessionStatus, Stat};
use tokio::runtime::Handle;
use tokio::time::Instant;
use uuid::Uuid;

use crate::RecipeError;

/// Curator's prefix of protected node names (`ProtectedUtils.PROTECTED_PREFIX`).
pub(crate) const PROTECTED_PREFIX: &str = "_c_";

/// How many times a create is tried again after its parent vanished or its reply was lost,
/// before the error is returned. Each retry waits for the connection first, so this bounds
/// churn, not time.
const CREATE_ATTEMPTS_MAX: u32 = 16;

/// The protected prefix of one create attempt: `_c_<uuid>-` (Java's `UUID.toString()` is
/// lower-case and hyphenated, like `Uuid`'s `Display`).
pub(crate) fn protected_prefix(id: &Uuid) -> String {
    format!("{PROTECTED_PREFIX}{id}-")
}

/// `dir/name`, for a `dir` that may be the root.
pub(crate) fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// The parent of `path` (`/` for a top-level node).
pub(crate) fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// The last component of `path`.
pub(crate) fn node_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The sequence number ZooKeeper appended to `name` after the last `marker`, or `None` if
/// `name` has no `marker` followed by a well-formed number.
///
/// ZooKeeper formats the parent's `cversion` (an `int`) with `%010d`: ten digits, and
/// after the signed wrap a minus sign and ten digits (`-2147483648`). The number is parsed
/// as a number, never compared as text (Curator compares text, which orders negative
/// sequences backwards).
///
/// ```text
/// assert_eq!(parse_sequence("_c_1-lock-0000000042", "lock-"), Some(42));
/// assert_eq!(parse_sequence("lock-2147483647", "lock-"), Some(i32::MAX));
/// assert_eq!(parse_sequence("x-lock--2147483648", "lock-"), Some(i32::MIN));
/// assert_eq!(parse_sequence("lock-banana", "lock-"), None);
/// ```
pub(crate) fn parse_sequence(name: &str, marker: &str) -> Option<i32> {
    let at = name.rfind(marker)?;
    let digits = &name[at + marker.len()..];
    let unsigned = digits.strip_prefix('-').unwrap_or(digits);
    if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A child that takes part in a sequential recipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Contender {
    /// The child's name.
    pub(crate) name: String,
    /// Its sequence number.
    pub(crate) seq: i32,
    /// Index into the markers passed to [`sort_contenders`] of the marker it carries.
    pub(crate) kind: usize,
}

/// The children that carry one of `markers` followed by a sequence number, in creation
/// order. Foreign children (no marker, or no number after it) are left out.
///
/// # Order across the wrap
///
/// Sequence numbers are a signed 32-bit counter that wraps from `i32::MAX` to `i32::MIN`
/// (and from -1 to 0). The children of one directory alive at the same time were created
/// within a window far smaller than 2³², so the order is circular: sort the numbers as
/// unsigned, find the largest gap between neighbours (going round), and start right after
/// it. Without a wrap the largest gap is the one from the highest number back to the
/// lowest, which gives plain numeric order. Ties are broken by name, so the order is total
/// and deterministic whatever the input.
pub(crate) fn sort_contenders<S: AsRef<str>>(children: &[S], markers: &[&str]) -> Vec<Contender> {
    let mut out: Vec<Contender> = children
        .iter()
        .filter_map(|child| {
            let name = child.as_ref();
            // The marker that ends the name wins (a UUID never contains a marker).
            markers
                .iter()
                .enumerate()
                .filter_map(|(kind, m)| {
                    let at = name.rfind(m)?;
                    parse_sequence(name, m).map(|seq| (at, kind, seq))
                })
                .max_by_key(|(at, _, _)| *at)
                .map(|(_, kind, seq)| Contender {
                    name: name.to_owned(),
                    seq,
                    kind,
                })
        })
        .collect();
    out.sort_by(|a, b| {
        (a.seq as u32)
            .cmp(&(b.seq as u32))
            .then_with(|| a.name.cmp(&b.name))
    });
    if out.len() > 1 {
        let first = out[0].seq as u32;
        let last = out[out.len() - 1].seq as u32;
        let mut best_gap = first.wrapping_sub(last);
        let mut start = 0;
        for i in 1..out.len() {
            let gap = (out[i].seq as u32).wrapping_sub(out[i - 1].seq as u32);
            if gap > best_gap {
                best_gap = gap;
                start = i;
            }
        }
        out.rotate_left(start);
    }
    out
}

/// The error a terminal session status stands for.
pub(crate) fn terminal_error(status: &SessionStatus) -> Error {
    match status.keeper_state {
        KeeperState::Expired => Error::SessionExpired,
        KeeperState::AuthFailed => Error::AuthFailed,
        _ => Error::ClientClosed,
    }
}

/// Waits until the session is connected to a server of the quorum (`SyncConnected`).
///
/// # Errors
///
/// The session's terminal error if it ends; `ConnectionLoss` if it is not connected
/// within `bound`; `ClientClosed` if the client stopped.
pub(crate) async fn wait_connected(client: &Client, bound: Duration) -> Result<(), Error> {
    let mut states = client.state_watcher();
    match states
        .wait_for(bound, |s| {
            s.keeper_state == KeeperState::SyncConnected || s.is_terminal()
        })
        .await
    {
        Ok(s) if s.is_terminal() => Err(terminal_error(&s)),
        Ok(_) => Ok(()),
        Err(Error::Timeout) => Err(Error::ConnectionLoss),
        Err(e) => Err(e),
    }
}

/// How long to wait for a reconnect before giving up an operation: the session timeout,
/// after which the session has probably expired anyway.
pub(crate) fn reconnect_bound(client: &Client) -> Duration {
    client.status().session_timeout.max(Duration::from_secs(1))
}

/// `fut`, bounded by `deadline` when there is one; `None` when the deadline passed.
pub(crate) async fn until<T>(deadline: Option<Instant>, fut: impl Future<Output = T>) -> Option<T> {
    match deadline {
        None => Some(fut.await),
        Some(d) => tokio::time::timeout_at(d, fut).await.ok(),
    }
}

/// The remaining time before `deadline` (or `bound` without one), at most `bound`.
fn bounded_by(deadline: Option<Instant>, bound: Duration) -> Duration {
    match deadline {
        None => bound,
        Some(d) => d.saturating_duration_since(Instant::now()).min(bound),
    }
}

/// Creates every missing ancestor of `path` and `path` itself as container nodes
/// (Curator's `creatingParentContainersIfNeeded`), falling back to persistent nodes on
/// servers without containers (before ZooKeeper 3.5).
///
/// Containers are deleted by the server once their last child goes, so recipe
/// directories do not pile up; a create that finds its parent reaped just calls this
/// again.
///
/// # Errors
///
/// Client errors other than `NodeExists`.
///
/// # Cancellation safety
///
/// Cancel-safe: every step is idempotent.
pub(crate) async fn ensure_parents(client: &Client, path: &str) -> Result<(), Error> {
    if path == "/" {
        return Ok(());
    }
    let mut mode = CreateMode::Container;
    let mut at = 0;
    while at < path.len() {
        let end = path[at + 1..].find('/').map_or(path.len(), |i| at + 1 + i);
        let prefix = &path[..end];
        at = end;
        let mut attempts = 0;
        loop {
            match client.create(prefix, b"", &CreateOptions::new(mode)).await {
                Ok(_) | Err(Error::NodeExists) => break,
                Err(Error::Unimplemented) if mode == CreateMode::Container => {
                    mode = CreateMode::Persistent;
                }
                Err(e) if e.is_retryable() && attempts < CREATE_ATTEMPTS_MAX => {
                    attempts += 1;
                    wait_connected(client, reconnect_bound(client)).await?;
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// The node of a successful create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Created {
    /// Its full path (relative to the client's chroot).
    pub(crate) path: String,
    /// Its name (the last path component).
    pub(crate) name: String,
    /// Its Stat at creation (`czxid` is the fencing token).
    pub(crate) stat: Stat,
}

/// What [`cleanup`] deletes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// A node whose name is unique to us (sequential, with our UUID).
    Path(String),
    /// Whatever child of `dir` carries our protected `prefix`: a create may be in flight
    /// or its reply was lost.
    Protected {
        /// The parent.
        dir: String,
        /// `_c_<uuid>-`.
        prefix: String,
    },
    /// A fixed path that other clients reuse, ours only while its data is `id`.
    Marked {
        /// The node.
        path: String,
        /// Our identity, stored as the node's data.
        id: Vec<u8>,
    },
}

/// Deletes `target`, retrying across connection loss, until it is gone or the session is
/// over (an ephemeral goes with its session).
///
/// # Errors
///
/// Errors that retrying cannot fix (e.g. `NoAuth`); `Ok` once the node is gone, never
/// existed, or went with the session.
///
/// # Cancellation safety
///
/// Dropping it may leave the node behind; run it in a task (see [`spawn_cleanup`]).
pub(crate) async fn cleanup(client: Client, target: Target) -> Result<(), RecipeError> {
    loop {
        match cleanup_once(&client, &target).await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_terminal() => return Ok(()),
            Err(e) if e.is_retryable() => {
                match wait_connected(&client, reconnect_bound(&client)).await {
                    Ok(()) | Err(Error::ConnectionLoss) => continue,
                    // The session is over: its ephemerals are gone.
                    Err(_) => return Ok(()),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, ?target, "could not delete a recipe node");
                return Err(e.into());
            }
        }
    }
}

async fn cleanup_once(client: &Client, target: &Target) -> Result<(), Error> {
    match target {
        Target::Path(path) => delete_if_present(client, path, None).await,
        Target::Protected { dir, prefix } => {
            let children = match client.get_children(dir).await {
                Err(Error::NoNode) => return Ok(()),
                other => other?,
            };
            for child in children.iter().filter(|c| c.starts_with(prefix.as_str())) {
                delete_if_present(client, &join(dir, child), None).await?;
            }
            Ok(())
        }
        Target::Marked { path, id } => loop {
            let (data, stat) = match client.get_data(path).await {
                Err(Error::NoNode) => return Ok(()),
                other => other?,
            };
            if data != *id {
                return Ok(());
            }
            match delete_if_present(client, path, Some(stat.version)).await {
                // Our data changed under us: look again.
                Err(Error::BadVersion) => continue,
                other => return other,
            }
        },
    }
}

async fn delete_if_present(client: &Client, path: &str, version: Option<i32>) -> Result<(), Error> {
    match client.delete(path, version).await {
        Ok(()) | Err(Error::NoNode) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Runs [`cleanup`] in a task on `runtime`, so that it finishes even if its caller is
/// dropped. The task keeps a clone of the client, hence the session, alive until done.
pub(crate) fn spawn_cleanup(
    runtime: &Handle,
    client: Client,
    target: Target,
) -> tokio::task::JoinHandle<Result<(), RecipeError>> {
    tracing::debug!(?target, "cleaning up");
    runtime.spawn(cleanup(client, target))
}

/// A node we may have created and do not want to keep unless told so: dropping it (with
/// the future that owns it, on cancellation, timeout or error) deletes the node in the
/// background. [`PendingNode::keep`] disarms it once the node is handed to a guard.
#[derive(Debug)]
pub(crate) struct PendingNode {
    client: Client,
    target: Option<Target>,
    runtime: Handle,
}

impl PendingNode {
    /// A pending node that will be cleaned up as `target` unless kept.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub(crate) fn new(client: &Client, target: Target) -> Self {
        PendingNode {
            client: client.clone(),
            target: Some(target),
            runtime: Handle::current(),
        }
    }

    /// Narrows the target once the node is known.
    pub(crate) fn set_target(&mut self, target: Target) {
        self.target = Some(target);
    }

    /// Keeps the node: nothing is deleted.
    pub(crate) fn keep(mut self) {
        self.target = None;
    }

    /// Deletes the node now and waits (at most `bound`) for the delete to complete; past
    /// that it completes in the background.
    pub(crate) async fn abandon(mut self, bound: Duration) {
        if let Some(target) = self.target.take() {
            let task = spawn_cleanup(&self.runtime, self.client.clone(), target);
            let _ = tokio::time::timeout(bound, task).await;
        }
    }
}

impl Drop for PendingNode {
    fn drop(&mut self) {
        if let Some(target) = self.target.take() {
            drop(spawn_cleanup(&self.runtime, self.client.clone(), target));
        }
    }
}

/// Creates `dir/_c_<uuid>-<base>` (ephemeral sequential unless `mode` says otherwise) in
/// protected mode, creating missing parents as containers.
///
/// `pending` must have been made for `Target::Protected { dir, prefix }` with the same
/// UUID prefix *before* calling, so that a cancellation at any point, even with the create
/// in flight, deletes whatever node the attempt made. On success its target is narrowed
/// to the node's path.
///
/// Gives up at `deadline` (returning `Ok(None)`; the caller abandons `pending`).
///
/// # Errors
///
/// Client errors of the create; `ConnectionLoss` when the connection does not come back
/// within the session timeout; the session's terminal error.
///
/// # Cancellation safety
///
/// Cancel-safe together with `pending` (see above).
pub(crate) async fn protected_create(
    client: &Client,
    dir: &str,
    prefix: &str,
    base: &str,
    data: &[u8],
    deadline: Option<Instant>,
    pending: &mut PendingNode,
) -> Result<Option<Created>, Error> {
    let path = join(dir, &format!("{prefix}{base}"));
    let options = CreateOptions::new(CreateMode::EphemeralSequential);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let reply = match until(deadline, client.create(&path, data, &options)).await {
            None => return Ok(None),
            Some(r) => r,
        };
        match reply {
            Ok((actual, stat)) => {
                pending.set_target(Target::Path(actual.clone()));
                return Ok(Some(Created {
                    name: node_name(&actual).to_owned(),
                    path: actual,
                    stat,
                }));
            }
            Err(Error::NoNode) if attempts < CREATE_ATTEMPTS_MAX => {
                match until(deadline, ensure_parents(client, dir)).await {
                    None => return Ok(None),
                    Some(r) => r?,
                }
            }
            Err(e) if e.is_retryable() && attempts < CREATE_ATTEMPTS_MAX => {
                tracing::debug!(error = %e, %path, "create reply lost; looking for our node");
                let bound = bounded_by(deadline, reconnect_bound(client));
                match wait_connected(client, bound).await {
                    Ok(()) => {}
                    Err(Error::ConnectionLoss) if deadline.is_some_and(|d| Instant::now() >= d) => {
                        return Ok(None);
                    }
                    Err(e) => return Err(e),
                }
                let found = match until(deadline, find_protected(client, dir, prefix)).await {
                    None => return Ok(None),
                    Some(r) => r,
                };
                match found {
                    Ok(Some(created)) => {
                        tracing::debug!(path = %created.path, "adopted our node after connection loss");
                        pending.set_target(Target::Path(created.path.clone()));
                        return Ok(Some(created));
                    }
                    // Not applied (or the parent is gone): create again.
                    Ok(None) | Err(Error::NoNode) => {}
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// The child of `dir` carrying our protected `prefix`, with its Stat.
async fn find_protected(
    client: &Client,
    dir: &str,
    prefix: &str,
) -> Result<Option<Created>, Error> {
    let children = client.get_children(dir).await?;
    let Some(name) = children.into_iter().find(|c| c.starts_with(prefix)) else {
        return Ok(None);
    };
    let path = join(dir, &name);
    Ok(client
        .exists(&path)
        .await?
        .map(|stat| Created { path, name, stat }))
}

/// How a wait on a node ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// The node did not exist when we looked.
    Gone,
    /// A watch event arrived (deleted, or its data changed).
    Fired,
    /// The deadline passed first.
    TimedOut,
}

/// Waits until `path` changes or is deleted: the predecessor watch.
///
/// Uses a data watch (getData), as Curator does, not an exists watch: when the node is
/// already gone, getData sets no watch, whereas exists would leave a watch on a path that
/// nobody will ever create again.
///
/// # Errors
///
/// Client errors; the session's terminal error when it ends while waiting.
///
/// # Cancellation safety
///
/// Cancel-safe; the server-side watch then fires into the void once.
pub(crate) async fn watch_for_change(
    client: &Client,
    path: &str,
    deadline: Option<Instant>,
) -> Result<Change, Error> {
    let watcher = match until(deadline, client.get_and_watch_data(path)).await {
        None => return Ok(Change::TimedOut),
        Some(Err(Error::NoNode)) => return Ok(Change::Gone),
        Some(r) => r?.2,
    };
    match until(deadline, watcher).await {
        None => Ok(Change::TimedOut),
        Some(event) => {
            let event = event?;
            tracing::debug!(?event.event_type, %path, "woken");
            Ok(Change::Fired)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[Contender]) -> Vec<&str> {
        v.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn sequences_parse_as_numbers_after_the_last_marker() {
        assert_eq!(parse_sequence("_c_1-lock-0000000042", "lock-"), Some(42));
        assert_eq!(parse_sequence("lock-2147483647", "lock-"), Some(i32::MAX));
        assert_eq!(
            parse_sequence("x-lock--2147483648", "lock-"),
            Some(i32::MIN)
        );
        assert_eq!(parse_sequence("lock--000000005", "lock-"), Some(-5));
        assert_eq!(parse_sequence("lock-banana", "lock-"), None);
        assert_eq!(parse_sequence("lock-", "lock-"), None);
        assert_eq!(parse_sequence("lock-+000000001", "lock-"), None);
        assert_eq!(parse_sequence("lock-99999999999", "lock-"), None);
        assert_eq!(parse_sequence("other-0000000001", "lock-"), None);
    }

    #[test]
    fn contenders_sort_by_number_not_by_name() {
        let children = [
            "_c_b-lock-0000000010",
            "_c_a-lock-0000000009",
            "foreign",
            "lock-notanumber",
            "_c_c-lock-0000000011",
        ];
        let sorted = sort_contenders(&children, &["lock-"]);
        assert_eq!(
            names(&sorted),
            [
                "_c_a-lock-0000000009",
                "_c_b-lock-0000000010",
                "_c_c-lock-0000000011"
            ]
        );
    }

    #[test]
    fn the_signed_wrap_keeps_creation_order() {
        // Created in this order: MAX-1, MAX, MIN, MIN+1.
        let children = [
            "a-lock--2147483647",
            "b-lock-2147483646",
            "c-lock--2147483648",
            "d-lock-2147483647",
        ];
        let sorted = sort_contenders(&children, &["lock-"]);
        assert_eq!(
            names(&sorted),
            [
                "b-lock-2147483646",
                "d-lock-2147483647",
                "c-lock--2147483648",
                "a-lock--2147483647"
            ]
        );
        // And the second wrap, from -1 to 0.
        let children = [
            "a-lock-0000000001",
            "b-lock--000000001",
            "c-lock-0000000000",
        ];
        let sorted = sort_contenders(&children, &["lock-"]);
        assert_eq!(
            names(&sorted),
            [
                "b-lock--000000001",
                "c-lock-0000000000",
                "a-lock-0000000001"
            ]
        );
    }

    #[test]
    fn read_and_write_markers_share_one_order() {
        let children = [
            "_c_x-__WRIT__0000000003",
            "_c_y-__READ__0000000001",
            "_c_z-__READ__0000000002",
        ];
        let sorted = sort_contenders(&children, &["__READ__", "__WRIT__"]);
        let kinds: Vec<_> = sorted.iter().map(|c| (c.seq, c.kind)).collect();
        assert_eq!(kinds, [(1, 0), (2, 0), (3, 1)]);
    }

    #[test]
    fn paths_join_and_split() {
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a/b", "c"), "/a/b/c");
        assert_eq!(parent("/a"), "/");
        assert_eq!(parent("/a/b/c"), "/a/b");
        assert_eq!(node_name("/a/b/c"), "c");
        let id = Uuid::nil();
        assert_eq!(
            protected_prefix(&id),
            "_c_00000000-0000-0000-0000-000000000000-"
        );
    }
}
