//! What a cache holds ([`ChildData`]), what it reports ([`CacheEvent`]) and the stream of
//! reports ([`CacheEvents`]).

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use corral_client::Stat;
use tokio::sync::broadcast;
use tokio_util::sync::ReusableBoxFuture;

use super::tree::Shared;

/// One cached node: its path, its data and its Stat as read at its last data change.
///
/// ```
/// use corral_recipes::cache::ChildData;
/// let node = ChildData::new("/config/db", b"url=...".to_vec(), Default::default());
/// assert_eq!(node.name(), "db");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChildData {
    /// The node's path (relative to the client's chroot).
    pub path: String,
    /// The node's data.
    pub data: Vec<u8>,
    /// The node's Stat as of the read that produced `data`. Its child-related fields
    /// (`cversion`, `num_children`, `pzxid`) are not refreshed when only the children
    /// change: a cache reports data changes, and children as nodes of their own.
    pub stat: Stat,
}

impl ChildData {
    /// A node.
    pub fn new(path: impl Into<String>, data: Vec<u8>, stat: Stat) -> Self {
        ChildData {
            path: path.into(),
            data,
            stat,
        }
    }

    /// The last component of the path.
    pub fn name(&self) -> &str {
        crate::lock::common::node_name(&self.path)
    }
}

/// A change a cache observed.
///
/// Applying a cache's events in order to an empty map (insert on `Created` / `Changed`,
/// remove on `Deleted`, clear on `Reset`) rebuilds the cache's content: a node is always
/// reported `Created` after its parent and `Deleted` before it, and a node that was
/// deleted and created again while the client was disconnected (CURATOR-391) is reported
/// `Deleted` then `Created`, never as a silent change.
///
/// ```
/// use std::collections::BTreeMap;
/// use corral_recipes::cache::{CacheEvent, ChildData};
///
/// fn replay(events: &[CacheEvent]) -> BTreeMap<String, ChildData> {
///     let mut view = BTreeMap::new();
///     for e in events {
///         match e {
///             CacheEvent::Created(d) | CacheEvent::Changed(d) => {
///                 view.insert(d.path.clone(), d.clone());
///             }
///             CacheEvent::Deleted(d) => {
///                 view.remove(&d.path);
///             }
///             CacheEvent::Reset => view.clear(),
///             _ => {}
///         }
///     }
///     view
/// }
/// let a = ChildData::new("/a", b"1".to_vec(), Default::default());
/// assert_eq!(replay(&[CacheEvent::Created(a.clone()), CacheEvent::Initialized]).len(), 1);
/// assert!(replay(&[CacheEvent::Created(a.clone()), CacheEvent::Deleted(a)]).is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheEvent {
    /// A node appeared (or was found at the first load, or after a reconnect).
    Created(ChildData),
    /// A node's data changed (its `mzxid` moved); carries the new data.
    Changed(ChildData),
    /// A node went away; carries the last data the cache had.
    Deleted(ChildData),
    /// The first full load is complete: the cache mirrors the server. Sent once.
    Initialized,
    /// This subscriber fell too far behind and events were dropped: forget what you
    /// built; the current content follows as `Created` events (then `Initialized` if the
    /// cache is initialized).
    Reset,
}

impl CacheEvent {
    /// The node the event is about (`None` for `Initialized` and `Reset`).
    pub fn data(&self) -> Option<&ChildData> {
        match self {
            CacheEvent::Created(d) | CacheEvent::Changed(d) | CacheEvent::Deleted(d) => Some(d),
            CacheEvent::Initialized | CacheEvent::Reset => None,
        }
    }
}

type Next = (
    Result<CacheEvent, broadcast::error::RecvError>,
    broadcast::Receiver<CacheEvent>,
);

async fn next_event(mut rx: broadcast::Receiver<CacheEvent>) -> Next {
    (rx.recv().await, rx)
}

/// The events of a cache, as a [`futures_core::Stream`] or with [`CacheEvents::recv`].
///
/// A subscription starts with the cache's current content (one `Created` per node, then
/// `Initialized` if the first load is done) and goes on with every change, so replaying
/// it always yields the cache's content. It ends (`None`) when the cache is closed or its
/// client's session task ended.
///
/// Each subscriber has a bounded queue (`with_event_capacity`, default 1024). A
/// subscriber that falls further behind is not allowed to stall the cache: it receives
/// [`CacheEvent::Reset`] followed by the current content.
///
/// ```no_run
/// # async fn f(cache: corral_recipes::cache::TreeCache) {
/// let mut events = cache.events();
/// while let Some(event) = events.recv().await {
///     println!("{event:?}");
/// }
/// # }
/// ```
pub struct CacheEvents {
    pending: VecDeque<CacheEvent>,
    shared: Arc<Shared>,
    next: Option<ReusableBoxFuture<'static, Next>>,
}

impl fmt::Debug for CacheEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheEvents")
            .field("pending", &self.pending.len())
            .field("ended", &self.next.is_none())
            .finish_non_exhaustive()
    }
}

impl CacheEvents {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        let (pending, rx) = shared.subscribe();
        CacheEvents {
            pending,
            shared,
            next: rx.map(|rx| ReusableBoxFuture::new(next_event(rx))),
        }
    }

    /// The next event; `None` once the cache is closed and every event was read.
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe: an event is consumed only when this future completes.
    pub async fn recv(&mut self) -> Option<CacheEvent> {
        std::future::poll_fn(|cx| self.poll_event(cx)).await
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<CacheEvent>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Poll::Ready(Some(event));
            }
            let Some(next) = self.next.as_mut() else {
                return Poll::Ready(None);
            };
            let (result, rx) = std::task::ready!(next.poll(cx));
            match result {
                Ok(event) => {
                    next.set(next_event(rx));
                    return Poll::Ready(Some(event));
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        path = %self.shared.root(),
                        missed,
                        "cache subscriber lagged; resending the content"
                    );
                    drop(rx);
                    let (pending, rx) = self.shared.subscribe();
                    self.pending.push_back(CacheEvent::Reset);
                    self.pending.extend(pending);
                    match rx {
                        Some(rx) => next.set(next_event(rx)),
                        None => self.next = None,
                    }
                }
                Err(broadcast::error::RecvError::Closed) => {
                    self.next = None;
                }
            }
        }
    }
}

impl futures_core::Stream for CacheEvents {
    type Item = CacheEvent;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<CacheEvent>> {
        self.get_mut().poll_event(cx)
    }
}
