//! Session table: ids, passwords, timeouts and expiry buckets. Time is an input (`now_ms`),
//! never read here.

use std::collections::{BTreeMap, BTreeSet};

use crate::idhash::IdMap;

/// A live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Negotiated timeout in ms.
    pub timeout_ms: i32,
    /// The expiry bucket it sits in.
    pub expires_at_ms: i64,
    /// Set once a closeSession is under way, so it is not expired twice.
    pub closing: bool,
}

/// Sessions and their expiry buckets of width `tick_ms`.
///
/// A touch moves a session to the bucket `(floor((now + timeout) / tick) + 1) * tick`, so it
/// expires between `timeout` and `timeout + tick` after its last touch, as in ZooKeeper.
///
/// ```
/// use corral_server::session::SessionTracker;
/// let mut t = SessionTracker::new(2000, 1, 0);
/// let id = t.next_session_id();
/// t.add(id, 4000, 0);
/// assert!(t.expired(4000).is_empty());
/// assert_eq!(t.expired(6000), vec![id]);
/// ```
#[derive(Debug)]
pub struct SessionTracker {
    tick_ms: i64,
    sessions: IdMap<i64, Session>,
    buckets: BTreeMap<i64, BTreeSet<i64>>,
    next_id: i64,
}

impl SessionTracker {
    /// A tracker for server `server_id`, seeding ids from `clock_ms` as ZooKeeper does.
    pub fn new(tick_ms: u32, server_id: u64, clock_ms: i64) -> Self {
        SessionTracker {
            tick_ms: i64::from(tick_ms.max(1)),
            sessions: IdMap::default(),
            buckets: BTreeMap::new(),
            next_id: initial_session_id(server_id, clock_ms),
        }
    }

    /// Allocates the next session id (never the container marker, never 0).
    pub fn next_session_id(&mut self) -> i64 {
        loop {
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            if id != i64::MIN && id != 0 && !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }

    fn bucket(&self, now_ms: i64, timeout_ms: i32) -> i64 {
        ((now_ms + i64::from(timeout_ms)) / self.tick_ms + 1) * self.tick_ms
    }

    /// Adds (or re-adds) a session, touched at `now_ms`.
    pub fn add(&mut self, id: i64, timeout_ms: i32, now_ms: i64) {
        self.remove(id);
        let at = self.bucket(now_ms, timeout_ms);
        self.sessions.insert(
            id,
            Session {
                timeout_ms,
                expires_at_ms: at,
                closing: false,
            },
        );
        self.buckets.entry(at).or_default().insert(id);
    }

    /// Removes a session.
    pub fn remove(&mut self, id: i64) -> Option<Session> {
        let s = self.sessions.remove(&id)?;
        if let Some(b) = self.buckets.get_mut(&s.expires_at_ms) {
            b.remove(&id);
            if b.is_empty() {
                self.buckets.remove(&s.expires_at_ms);
            }
        }
        Some(s)
    }

    /// Records activity; false if the session is unknown or closing.
    pub fn touch(&mut self, id: i64, now_ms: i64) -> bool {
        let Some(s) = self.sessions.get(&id) else {
            return false;
        };
        if s.closing {
            return false;
        }
        let (old, timeout) = (s.expires_at_ms, s.timeout_ms);
        let at = self.bucket(now_ms, timeout);
        if at == old {
            return true;
        }
        if let Some(b) = self.buckets.get_mut(&old) {
            b.remove(&id);
            if b.is_empty() {
                self.buckets.remove(&old);
            }
        }
        self.buckets.entry(at).or_default().insert(id);
        self.sessions.get_mut(&id).expect("present").expires_at_ms = at;
        true
    }

    /// Updates a session's timeout (on reconnect with a new negotiated value).
    pub fn set_timeout(&mut self, id: i64, timeout_ms: i32, now_ms: i64) {
        if let Some(s) = self.sessions.get_mut(&id) {
            s.timeout_ms = timeout_ms;
        }
        self.touch(id, now_ms);
    }

    /// Marks a session as closing: it is no longer touched nor expired again.
    pub fn set_closing(&mut self, id: i64) {
        if let Some(s) = self.sessions.get_mut(&id) {
            s.closing = true;
        }
    }

    /// Sessions whose bucket is at or before `now_ms` and that are not already closing; they
    /// are marked closing.
    pub fn expired(&mut self, now_ms: i64) -> Vec<i64> {
        let due: Vec<i64> = self.buckets.range(..=now_ms).map(|(k, _)| *k).collect();
        let mut out = Vec::new();
        for k in due {
            for id in self.buckets.remove(&k).unwrap_or_default() {
                if let Some(s) = self.sessions.get_mut(&id) {
                    if !s.closing {
                        s.closing = true;
                        out.push(id);
                    }
                }
            }
        }
        out
    }

    /// The session, if live.
    pub fn get(&self, id: i64) -> Option<&Session> {
        self.sessions.get(&id)
    }

    /// Number of sessions.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether there are no sessions.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Buckets with their sessions, for `dump`.
    pub fn buckets(&self) -> &BTreeMap<i64, BTreeSet<i64>> {
        &self.buckets
    }

    /// Every session (for snapshots).
    pub fn iter(&self) -> impl Iterator<Item = (i64, &Session)> {
        self.sessions.iter().map(|(k, v)| (*k, v))
    }
}

/// ZooKeeper's first session id: server id in the top byte, the low 40 bits of the clock
/// in bits 16..55, a 16-bit counter below.
pub fn initial_session_id(server_id: u64, clock_ms: i64) -> i64 {
    let t = ((clock_ms as u64) << 24) >> 8;
    (t | (server_id << 56)) as i64
}

/// The 16-byte session password, derived from the session id exactly as Apache ZooKeeper
/// does (java.util.Random seeded with `id ^ 0xB3415C00`), so that any server can check it.
///
/// ```
/// let p = corral_server::session::session_password(0x0100_0003_284e_0000);
/// assert_eq!(p[..4], [0xf0, 0xbd, 0x31, 0x33]);
/// ```
pub fn session_password(session_id: i64) -> [u8; 16] {
    const MULT: u64 = 0x5DEE_CE66D;
    const MASK: u64 = (1 << 48) - 1;
    let s = (session_id ^ 0xB341_5C00) as u64;
    let mut seed = (s ^ MULT) & MASK;
    let mut out = [0u8; 16];
    for chunk in out.chunks_mut(4) {
        seed = (seed.wrapping_mul(MULT).wrapping_add(0xB)) & MASK;
        let v = (seed >> 16) as u32;
        chunk.copy_from_slice(&v.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn password_matches_apache_zookeeper_vectors() {
        assert_eq!(
            hex(&session_password(0x0100_0003_284e_0000)),
            "f0bd3133bdb0a8824edad9acce4f6ecc"
        );
        assert_eq!(
            hex(&session_password(0x0100_0003_284e_0001)),
            "03df2b335dfc87c7431d41d8a2d88299"
        );
    }

    #[test]
    fn session_id_carries_server_id_in_top_byte() {
        let mut t = SessionTracker::new(2000, 3, 0x0003_284e);
        let id = t.next_session_id();
        assert_eq!((id as u64) >> 56, 3);
        assert_eq!(t.next_session_id(), id + 1);
    }

    #[test]
    fn touch_postpones_expiry() {
        let mut t = SessionTracker::new(2000, 1, 0);
        t.add(5, 4000, 0);
        assert!(t.touch(5, 3000));
        assert!(t.expired(6000).is_empty());
        assert_eq!(t.expired(8000), vec![5]);
        assert!(t.expired(100_000).is_empty(), "a session expires once");
    }
}
