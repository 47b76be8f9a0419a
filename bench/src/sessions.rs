//! Opening and closing many sessions, and the bench's own znodes.

use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use corral_client::{Client, CreateOptions, Error};
use tokio::task::JoinSet;

/// Every znode the bench creates lives under this node.
pub const ROOT: &str = "/corral-bench";

/// Connection attempts in progress at once: Apache ZooKeeper's listen backlog defaults to
/// 50, and overflowing it costs a 1 s SYN retransmit.
pub const CONNECT_CONCURRENCY: usize = 32;

/// How long one session may take to connect (and to close).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Opens `n` sessions to `servers`, at most [`CONNECT_CONCURRENCY`] connecting at once.
///
/// # Errors
///
/// When any session cannot be established within [`CONNECT_TIMEOUT`] (the ones already open
/// are closed when dropped).
pub async fn connect_many(servers: &str, n: usize) -> Result<Vec<Client>> {
    let mut clients: Vec<Option<Client>> = (0..n).map(|_| None).collect();
    let mut tasks = JoinSet::new();
    let mut next = 0;
    loop {
        while next < n && tasks.len() < CONNECT_CONCURRENCY {
            let builder = Client::builder(servers).with_connection_timeout(CONNECT_TIMEOUT);
            let i = next;
            tasks.spawn(async move { (i, builder.connect().await) });
            next += 1;
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        let (i, client) = joined.context("a connect task panicked")?;
        let client = client.with_context(|| format!("session {i} of {n} to {servers}"))?;
        clients[i] = Some(client);
    }
    clients
        .into_iter()
        .map(|c| c.ok_or_else(|| anyhow!("a session was not opened")))
        .collect()
}

/// Closes every session concurrently (closeSession, bounded by the client's timeout).
pub async fn close_all(clients: Vec<Client>) {
    let closes: Vec<_> = clients.iter().map(|c| c.close()).collect();
    for close in closes {
        let _ = close.await;
    }
}

/// Creates `path` and any missing ancestors, as persistent nodes with empty data; an
/// existing node is fine.
///
/// # Errors
///
/// Any other error of the creates.
pub async fn ensure_path(client: &Client, path: &str) -> Result<()> {
    let mut prefix = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        prefix.push('/');
        prefix.push_str(part);
        match client
            .create(&prefix, b"", &CreateOptions::persistent())
            .await
        {
            Ok(_) | Err(Error::NodeExists) => {}
            Err(e) => return Err(e).with_context(|| format!("creating {prefix}")),
        }
    }
    Ok(())
}

/// A name for this run's nodes, unique enough across runs against one server.
pub fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}-{:x}", std::process::id(), nanos & 0xffff_ffff_ffff)
}

/// A small, fast, seeded generator (xorshift64*) for picking keys and read/write mixes.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value; zero is remapped).
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value uniformly in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A value in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_deterministic_and_in_range() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..1000 {
            let x = a.next_f64();
            assert_eq!(x, b.next_f64());
            assert!((0.0..1.0).contains(&x));
            assert!(a.below(10) < 10);
            b.below(10);
        }
        assert_ne!(Rng::new(0).next_u64(), 0);
    }
}
