//! The shell's watches, merged back into the one event stream zkCli prints.
//!
//! zkCli registers every watch with one default watcher, so the Java client reports each
//! server notification once, in server order, however many of its watches it fires.
//! corral-client instead hands out one watcher value per watch. The hub keeps them all and
//! turns their deliveries back into zkCli's stream:
//!
//! ```text
//!   get -w ──► OneshotWatcher ─┐  wake (id) ──► woken: [3, 1, 4]   (delivery order)
//!   ls -w  ──► OneshotWatcher ─┤
//!   addWatch ► PersistentWatcher┘  drain(): poll in wake order, drop copies of one
//!                                  notification, print each notification once
//! ```
//!
//! * **Order**: each watcher is polled with its own waker, which records the watcher's id
//!   when the session task delivers to it. The session task delivers notifications one by
//!   one, in server order, so the wake order is the server order.
//! * **One print per notification**: a notification that reaches several watchers (a
//!   data and a child watch on a deleted node, a one-shot and a persistent watch) arrives
//!   as equal copies. Within one drain the n-th `(type, path)` a watcher received is the
//!   n-th such notification, so copies share the key `(type, path, n)` and print once.
//! * **Removal**: `removewatches` drops the removed watchers and the shell prints the
//!   `*WatchRemoved` events itself (the client ends persistent watchers silently).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use corral_client::{EventType, OneshotWatcher, PersistentWatcher, WatchedEvent, WatcherType};

/// What a watch was set by, which decides what `removewatches` removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchKind {
    /// `get -w`, `stat -w`, `ls -R -w` (its root): a one-shot data or exists watch.
    Data,
    /// `ls -w`, `ls -R -w`: a one-shot child watch.
    Child,
    /// `addWatch -m PERSISTENT`.
    Persistent,
    /// `addWatch` (`PERSISTENT_RECURSIVE`).
    Recursive,
}

/// Which kinds of watch a `removewatches` removed, for its `*WatchRemoved` events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removed {
    /// A child watch (→ `ChildWatchRemoved`).
    pub child: bool,
    /// A data or exists watch (→ `DataWatchRemoved`).
    pub data: bool,
    /// A persistent or persistent-recursive watch (→ `PersistentWatchRemoved`).
    pub persistent: bool,
}

impl Removed {
    /// Whether anything was removed.
    pub fn any(&self) -> bool {
        self.child || self.data || self.persistent
    }
}

enum Watch {
    Oneshot(OneshotWatcher),
    Persistent(PersistentWatcher),
}

struct Entry {
    path: String,
    kind: WatchKind,
    watch: Watch,
    waker: Waker,
}

/// Shared with the per-watcher wakers, which the session task calls.
#[derive(Default)]
struct Shared {
    /// Ids of watchers woken since the last drain, in wake order.
    woken: Mutex<Vec<u64>>,
    /// The shell task waiting in [`WatchHub::ready`], if any.
    main: Mutex<Option<Waker>>,
}

struct IdWaker {
    id: u64,
    shared: Arc<Shared>,
}

impl Wake for IdWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        lock(&self.shared.woken).push(self.id);
        if let Some(main) = lock(&self.shared.main).take() {
            main.wake();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The shell's watches; see the module docs.
#[derive(Default)]
pub struct WatchHub {
    shared: Arc<Shared>,
    entries: BTreeMap<u64, Entry>,
    next_id: u64,
    /// Events already taken from their watchers, in delivery order, not yet drained.
    pending: Vec<(u64, WatchedEvent)>,
}

impl std::fmt::Debug for WatchHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchHub")
            .field("watches", &self.entries.len())
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl WatchHub {
    /// An empty hub.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a one-shot watch set by `get -w`, `stat -w` or `ls -w` on `path`.
    pub fn add_oneshot(&mut self, path: &str, kind: WatchKind, watcher: OneshotWatcher) {
        self.add(path, kind, Watch::Oneshot(watcher));
    }

    /// Adds a persistent watch set by `addWatch` on `path`.
    pub fn add_persistent(&mut self, path: &str, recursive: bool, watcher: PersistentWatcher) {
        let kind = if recursive {
            WatchKind::Recursive
        } else {
            WatchKind::Persistent
        };
        self.add(path, kind, Watch::Persistent(watcher));
    }

    fn add(&mut self, path: &str, kind: WatchKind, watch: Watch) {
        let id = self.next_id;
        self.next_id += 1;
        let waker = Waker::from(Arc::new(IdWaker {
            id,
            shared: self.shared.clone(),
        }));
        self.entries.insert(
            id,
            Entry {
                path: path.to_owned(),
                kind,
                watch,
                waker,
            },
        );
        // Registers the waker, so that the first delivery is seen in order.
        self.poll_entry(id);
    }

    /// Whether a watch of a kind `kind` names is set on `path` (Java's `containsWatcher`
    /// looks at persistent watches for every kind).
    pub fn has(&self, path: &str, kind: WatcherType) -> bool {
        self.entries.values().any(|e| {
            e.path == path
                && !matches!(
                    (kind, e.kind),
                    (WatcherType::Children, WatchKind::Data)
                        | (WatcherType::Data, WatchKind::Child)
                )
        })
    }

    /// Removes this shell's watches of `kind` on `path` as Java's client does on a
    /// successful removeWatches: children → child watches; data → data and exists
    /// watches; any → those and the persistent ones.
    pub fn remove(&mut self, path: &str, kind: WatcherType) -> Removed {
        let mut removed = Removed::default();
        self.entries.retain(|_, e| {
            if e.path != path {
                return true;
            }
            let hit = match e.kind {
                WatchKind::Child => {
                    matches!(kind, WatcherType::Children | WatcherType::Any).then(|| {
                        removed.child = true;
                    })
                }
                WatchKind::Data => {
                    matches!(kind, WatcherType::Data | WatcherType::Any).then(|| {
                        removed.data = true;
                    })
                }
                WatchKind::Persistent | WatchKind::Recursive => {
                    (kind == WatcherType::Any).then(|| removed.persistent = true)
                }
            };
            hit.is_none()
        });
        removed
    }

    /// Forgets every watch (the session ended).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.pending.clear();
        lock(&self.shared.woken).clear();
    }

    /// Resolves when a watcher has something to deliver.
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe: nothing is taken from the watchers.
    pub fn ready(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            *lock(&self.shared.main) = Some(cx.waker().clone());
            if self.pending.is_empty() && lock(&self.shared.woken).is_empty() {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
    }

    /// Takes every delivered event, in delivery order, each notification once.
    pub fn drain(&mut self) -> Vec<WatchedEvent> {
        let woken = std::mem::take(&mut *lock(&self.shared.woken));
        let mut seen = HashSet::with_capacity(self.entries.len());
        let mut order: Vec<u64> = Vec::with_capacity(self.entries.len());
        // Woken watchers in wake order, then the rest (a missed wake loses no event).
        for id in woken.into_iter().chain(self.entries.keys().copied()) {
            if seen.insert(id) {
                order.push(id);
            }
        }
        for id in order {
            self.poll_entry(id);
        }
        dedupe(std::mem::take(&mut self.pending))
    }

    /// Polls one watcher until it has nothing more, moving its events to `pending`.
    fn poll_entry(&mut self, id: u64) {
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        let waker = entry.waker.clone();
        let mut cx = Context::from_waker(&waker);
        let mut ended = false;
        loop {
            match &mut entry.watch {
                Watch::Oneshot(w) => {
                    if let Poll::Ready(result) = Pin::new(w).poll(&mut cx) {
                        if let Ok(event) = result {
                            self.pending.push((id, event));
                        }
                        ended = true;
                    }
                    break;
                }
                Watch::Persistent(w) => {
                    match futures_core::Stream::poll_next(Pin::new(w), &mut cx) {
                        Poll::Pending => break,
                        Poll::Ready(Some(Ok(event))) => self.pending.push((id, event)),
                        // Lagged or the session ended: nothing to print.
                        Poll::Ready(Some(Err(_))) => {}
                        Poll::Ready(None) => {
                            ended = true;
                            break;
                        }
                    }
                }
            }
        }
        if ended {
            self.entries.remove(&id);
        }
    }
}

/// Keeps the first copy of each notification: copies share `(type, path, n)` where n
/// counts that `(type, path)` among one watcher's deliveries.
fn dedupe(events: Vec<(u64, WatchedEvent)>) -> Vec<WatchedEvent> {
    let mut seen_per_watcher: HashMap<(u64, EventType, String), usize> = HashMap::new();
    let mut printed: HashSet<(EventType, String, usize)> = HashSet::new();
    let mut out = Vec::new();
    for (id, event) in events {
        let n = seen_per_watcher
            .entry((id, event.event_type, event.path.clone()))
            .or_insert(0);
        *n += 1;
        let key = (event.event_type, event.path.clone(), *n);
        if printed.insert(key) {
            out.push(event);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(t: EventType, path: &str) -> WatchedEvent {
        WatchedEvent {
            event_type: t,
            path: path.into(),
            zxid: None,
        }
    }

    #[test]
    fn copies_of_one_notification_print_once() {
        let events = vec![
            (1, ev(EventType::NodeDeleted, "/a")),
            (2, ev(EventType::NodeDeleted, "/a")),
            (3, ev(EventType::NodeChildrenChanged, "/")),
        ];
        assert_eq!(
            dedupe(events),
            [
                ev(EventType::NodeDeleted, "/a"),
                ev(EventType::NodeChildrenChanged, "/")
            ]
        );
    }

    #[test]
    fn repeated_notifications_to_one_watcher_all_print() {
        let events = vec![
            (1, ev(EventType::NodeChildrenChanged, "/q")),
            (2, ev(EventType::NodeChildrenChanged, "/q")),
            (1, ev(EventType::NodeChildrenChanged, "/q")),
        ];
        assert_eq!(dedupe(events).len(), 2);
    }
}
