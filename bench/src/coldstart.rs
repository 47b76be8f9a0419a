//! Cold start: from the spawn of the server process(es) until a client's first `create`
//! succeeds.
//!
//! The caller (compare.sh) notes the wall-clock time just before it spawns the servers and
//! passes it as `--since-ns`; this command then polls: a TCP connect to each host every
//! millisecond, and on an accepted connection, unless `srvr` says the server does not serve
//! yet, a session (short connection timeout) and one `create`. The first success is
//! `first_write_ms`; the time the first TCP connect was accepted is `listening_ms`.
//!
//! ```text
//!   spawn ─► ... ─► TCP accepted (listening_ms) ─► session ─► create ok (first_write_ms)
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Result};
use corral_client::{Client, CreateOptions, Error};
use tokio::net::TcpStream;

use crate::failover::hosts;
use crate::record::Record;
use crate::Target;

/// Settings of the cold-start measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct ColdStartConfig {
    /// Wall-clock time (ns since the Unix epoch) just before the first server was spawned.
    pub since_ns: u128,
    /// Scenario name in the output.
    pub name: String,
    /// Give up after this long (from `since_ns`).
    pub timeout: Duration,
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn ms_since(since_ns: u128) -> f64 {
    now_ns().saturating_sub(since_ns) as f64 / 1e6
}

/// Whether `host` says (`srvr`) that it does not serve yet. A session attempt against such a
/// server fails and the client backs off before its next try, which would add the client's
/// back-off to the figure; asking first keeps the poll at one millisecond. A server that
/// does not answer `srvr` (four-letter words disabled) is simply tried.
async fn not_serving(host: &str) -> bool {
    crate::fourlw::ask(host, "srvr", Duration::from_millis(100))
        .await
        .is_ok_and(|text| text.contains("not currently serving"))
}

/// One attempt against `host`: a session and one create (of a fresh node).
async fn try_write(host: &str, path: &str) -> bool {
    let attempt = async {
        let client = Client::builder(host)
            .with_connection_timeout(Duration::from_millis(100))
            .connect()
            .await?;
        let created = client.create(path, b"", &CreateOptions::ephemeral()).await;
        let _ = client.close().await;
        match created {
            Ok(_) | Err(Error::NodeExists) => Ok::<_, Error>(true),
            Err(_) => Ok(false),
        }
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), attempt).await,
        Ok(Ok(true))
    )
}

/// Polls `target`'s servers until a create succeeds; the record has `first_write_ms` and
/// `listening_ms`.
///
/// # Errors
///
/// When no create succeeds before `cfg.timeout` after `cfg.since_ns`.
pub async fn run_coldstart(target: &Target, cfg: &ColdStartConfig) -> Result<Record> {
    let hosts = hosts(&target.servers);
    if hosts.is_empty() {
        bail!("no servers in {:?}", target.servers);
    }
    let path = format!("/corral-bench-coldstart-{}", crate::sessions::run_id());
    let mut listening_ms = None;
    let mut i = 0usize;
    loop {
        let elapsed = ms_since(cfg.since_ns);
        if elapsed > cfg.timeout.as_secs_f64() * 1e3 {
            bail!("no create succeeded within {:?} of the spawn", cfg.timeout);
        }
        let host = &hosts[i % hosts.len()];
        i += 1;
        if TcpStream::connect(host.as_str()).await.is_ok() {
            listening_ms.get_or_insert_with(|| ms_since(cfg.since_ns));
            if !not_serving(host).await && try_write(host, &path).await {
                let first_write_ms = ms_since(cfg.since_ns);
                let mut r = Record::new(cfg.name.clone(), "coldstart", target);
                r.metrics.insert("first_write_ms".into(), first_write_ms);
                r.metrics.insert(
                    "listening_ms".into(),
                    listening_ms.unwrap_or(first_write_ms),
                );
                r.elapsed_s = first_write_ms / 1e3;
                return Ok(r);
            }
        }
        if i % hosts.len() == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}
