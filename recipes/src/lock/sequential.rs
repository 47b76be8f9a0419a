//! The queue of ephemeral-sequential nodes behind the mutex and the read/write lock.
//!
//! ```text
//!   create _c_<uuid>-<base><seq>  (protected, parents as containers)
//!        │
//!        ▼
//!   list children ─► sort by sequence number ─► decide(rule)
//!        ▲                                        │
//!        │   Acquired ──► watch our own node, start the Hold, return the guard
//!        │   WaitFor(p) ─► getData+watch p ─► event (or p already gone) ──┐
//!        └────────────────────────────────────────────────────────────────┘
//! ```
//!
//! Each waiter watches exactly one node (no herd): a mutex waiter or a writer its
//! immediate predecessor, a reader the last writer ahead of it. A waiter that is
//! cancelled, times out or fails deletes its node (see [`PendingNode`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use corral_client::{Client, Error, Zxid};
use tokio::time::Instant;
use uuid::Uuid;

use super::common::{
    join, protected_create, protected_prefix, reconnect_bound, sort_contenders, until,
    wait_connected, watch_for_change, Change, Contender, PendingNode, Target,
};
use super::hold::{Hold, HoldRef};
use crate::RecipeError;

/// How many consecutive retryable failures the wait loop tolerates (each after waiting for
/// the connection to come back).
const LOOP_RETRIES_MAX: u32 = 8;

/// How a contender decides whether it holds the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rule {
    /// The first contender holds; the others watch their immediate predecessor
    /// (mutex; writer of the read/write lock).
    Exclusive,
    /// Holds unless a contender of kind `writer_kind` is ahead; watches the last such
    /// writer ahead. `own_writer` names a write node the same handle holds: then the read
    /// lock is granted at once, unless another writer is queued between the two nodes.
    Read {
        writer_kind: usize,
        own_writer: Option<String>,
    },
}

/// The outcome of one look at the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// We hold the lock.
    Acquired,
    /// Wait until this node changes or goes.
    WaitFor(String),
    /// Our node is not in the queue.
    Missing,
    /// A read while writing is blocked by a writer between our two nodes.
    DowngradeBlocked,
}

/// Decides for `ours` given the queue `sorted` in creation order.
pub(crate) fn decide(rule: &Rule, sorted: &[Contender], ours: &str) -> Decision {
    let Some(index) = sorted.iter().position(|c| c.name == ours) else {
        return Decision::Missing;
    };
    let ahead = &sorted[..index];
    match rule {
        Rule::Exclusive => match ahead.last() {
            None => Decision::Acquired,
            Some(previous) => Decision::WaitFor(previous.name.clone()),
        },
        Rule::Read {
            writer_kind,
            own_writer,
        } => {
            let is_writer = |c: &&Contender| c.kind == *writer_kind;
            if let Some(own) = own_writer {
                if let Some(w) = ahead.iter().position(|c| c.name == *own) {
                    // Holding the write lock means nobody is ahead of our write node.
                    if !ahead[..w].iter().any(|c| is_writer(&c)) {
                        return if ahead[w + 1..].iter().any(|c| is_writer(&c)) {
                            Decision::DowngradeBlocked
                        } else {
                            Decision::Acquired
                        };
                    }
                }
            }
            match ahead.iter().rev().find(is_writer) {
                None => Decision::Acquired,
                Some(writer) => Decision::WaitFor(writer.name.clone()),
            }
        }
    }
}

/// One acquisition: where to queue and how to decide.
#[derive(Debug)]
pub(crate) struct Spec<'a> {
    pub(crate) client: &'a Client,
    /// The lock's directory.
    pub(crate) dir: &'a str,
    /// Our node's name after the protected prefix (`lock-`, `__READ__`, `__WRIT__`).
    pub(crate) base: &'a str,
    /// The markers of every contender (foreign children carry none).
    pub(crate) markers: &'a [&'a str],
    pub(crate) rule: Rule,
    /// Our node's data.
    pub(crate) data: &'a [u8],
    /// Counts the watch events that woke this handle's waiters.
    pub(crate) wakeups: &'a AtomicU64,
}

/// Waits for the connection after a retryable failure; `Ok(false)` if `deadline` passed.
async fn recover(client: &Client, deadline: Option<Instant>) -> Result<bool, Error> {
    let bound = match deadline {
        None => reconnect_bound(client),
        Some(d) => d
            .saturating_duration_since(Instant::now())
            .min(reconnect_bound(client)),
    };
    match wait_connected(client, bound).await {
        Ok(()) => Ok(true),
        Err(Error::ConnectionLoss) if deadline.is_some_and(|d| Instant::now() >= d) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Queues for the lock and waits until it is ours (`Some`) or `deadline` passes (`None`).
///
/// # Errors
///
/// Client errors; [`RecipeError::NodeDeleted`] when our node vanishes;
/// [`RecipeError::DowngradeBlocked`] (read while writing, see [`Rule::Read`]).
///
/// # Cancellation safety
///
/// Dropping the future deletes our node in the background, even with its create in flight.
pub(crate) async fn acquire(
    spec: Spec<'_>,
    deadline: Option<Instant>,
) -> Result<Option<HoldRef>, RecipeError> {
    let client = spec.client;
    let prefix = protected_prefix(&Uuid::new_v4());
    let mut pending = PendingNode::new(
        client,
        Target::Protected {
            dir: spec.dir.to_owned(),
            prefix: prefix.clone(),
        },
    );
    let cleanup_bound = reconnect_bound(client).min(Duration::from_secs(10));
    let created = protected_create(
        client,
        spec.dir,
        &prefix,
        spec.base,
        spec.data,
        deadline,
        &mut pending,
    )
    .await?;
    let Some(created) = created else {
        pending.abandon(cleanup_bound).await;
        return Ok(None);
    };
    tracing::debug!(path = %created.path, "queued");
    let mut failures = 0;
    loop {
        let children = match until(deadline, client.get_children(spec.dir)).await {
            None => {
                pending.abandon(cleanup_bound).await;
                return Ok(None);
            }
            Some(Err(Error::NoNode)) => return Err(RecipeError::NodeDeleted(created.path)),
            Some(Err(e)) if e.is_retryable() && failures < LOOP_RETRIES_MAX => {
                failures += 1;
                if !recover(client, deadline).await? {
                    pending.abandon(cleanup_bound).await;
                    return Ok(None);
                }
                continue;
            }
            Some(r) => r?,
        };
        let sorted = sort_contenders(&children, spec.markers);
        match decide(&spec.rule, &sorted, &created.name) {
            Decision::Missing => return Err(RecipeError::NodeDeleted(created.path)),
            Decision::DowngradeBlocked => {
                pending.abandon(cleanup_bound).await;
                return Err(RecipeError::DowngradeBlocked);
            }
            Decision::Acquired => {
                let Some(watched) = until(deadline, client.exists_and_watch(&created.path)).await
                else {
                    pending.abandon(cleanup_bound).await;
                    return Ok(None);
                };
                let (stat, own_watch) = watched?;
                if stat.map(|s| s.czxid) != Some(created.stat.czxid) {
                    return Err(RecipeError::NodeDeleted(created.path));
                }
                pending.keep();
                let token = Zxid(created.stat.czxid);
                tracing::debug!(path = %created.path, %token, "acquired");
                let (hold, state) = Hold::start(
                    client,
                    created.path.clone(),
                    Target::Path(created.path.clone()),
                    token,
                    own_watch,
                );
                return Ok(Some(HoldRef::new(hold, state, created.path, token)));
            }
            Decision::WaitFor(name) => {
                let path = join(spec.dir, &name);
                tracing::debug!(ours = %created.name, waiting_for = %path, "waiting");
                match watch_for_change(client, &path, deadline).await {
                    Ok(Change::Gone) => failures = 0,
                    Ok(Change::Fired) => {
                        failures = 0;
                        spec.wakeups.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Change::TimedOut) => {
                        pending.abandon(cleanup_bound).await;
                        return Ok(None);
                    }
                    Err(e) if e.is_retryable() && failures < LOOP_RETRIES_MAX => {
                        failures += 1;
                        if !recover(client, deadline).await? {
                            pending.abandon(cleanup_bound).await;
                            return Ok(None);
                        }
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
}

/// The names of the queue's contenders in order (Curator's `getParticipantNodes`).
///
/// # Errors
///
/// Client errors; a missing directory is an empty queue.
pub(crate) async fn participants(
    client: &Client,
    dir: &str,
    markers: &[&str],
) -> Result<Vec<String>, RecipeError> {
    let children = match client.get_children(dir).await {
        Err(Error::NoNode) => return Ok(Vec::new()),
        other => other?,
    };
    Ok(sort_contenders(&children, markers)
        .into_iter()
        .map(|c| c.name)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RW: [&str; 2] = ["__READ__", "__WRIT__"];

    fn queue(names: &[&str]) -> Vec<Contender> {
        sort_contenders(names, &RW)
    }

    fn read(own_writer: Option<&str>) -> Rule {
        Rule::Read {
            writer_kind: 1,
            own_writer: own_writer.map(str::to_owned),
        }
    }

    #[test]
    fn the_first_holds_and_the_others_watch_their_predecessor() {
        let q = sort_contenders(
            &["a-lock-0000000002", "b-lock-0000000001", "junk"],
            &["lock-"],
        );
        assert_eq!(
            decide(&Rule::Exclusive, &q, "b-lock-0000000001"),
            Decision::Acquired
        );
        assert_eq!(
            decide(&Rule::Exclusive, &q, "a-lock-0000000002"),
            Decision::WaitFor("b-lock-0000000001".into())
        );
        assert_eq!(decide(&Rule::Exclusive, &q, "junk"), Decision::Missing);
    }

    #[test]
    fn readers_share_until_a_writer_is_ahead_and_watch_the_last_writer() {
        let q = queue(&[
            "r1-__READ__0000000001",
            "r2-__READ__0000000002",
            "w1-__WRIT__0000000003",
            "r3-__READ__0000000004",
            "w2-__WRIT__0000000005",
            "r4-__READ__0000000006",
        ]);
        assert_eq!(
            decide(&read(None), &q, "r2-__READ__0000000002"),
            Decision::Acquired
        );
        assert_eq!(
            decide(&read(None), &q, "r3-__READ__0000000004"),
            Decision::WaitFor("w1-__WRIT__0000000003".into())
        );
        assert_eq!(
            decide(&read(None), &q, "r4-__READ__0000000006"),
            Decision::WaitFor("w2-__WRIT__0000000005".into())
        );
        // A writer waits for everything ahead, watching only its predecessor.
        assert_eq!(
            decide(&Rule::Exclusive, &q, "w1-__WRIT__0000000003"),
            Decision::WaitFor("r2-__READ__0000000002".into())
        );
    }

    #[test]
    fn a_writer_may_read_unless_another_writer_queued_in_between() {
        let q = queue(&[
            "w-__WRIT__0000000001",
            "r-__READ__0000000002",
            "me-__READ__0000000003",
        ]);
        let own = Some("w-__WRIT__0000000001");
        assert_eq!(
            decide(&read(own), &q, "me-__READ__0000000003"),
            Decision::Acquired
        );
        let q = queue(&[
            "w-__WRIT__0000000001",
            "x-__WRIT__0000000002",
            "me-__READ__0000000003",
        ]);
        assert_eq!(
            decide(&read(own), &q, "me-__READ__0000000003"),
            Decision::DowngradeBlocked
        );
    }
}
