//! The watch fan-out scenario: W sessions each watch one node; one `setData` fires them
//! all. Measures the time until every watcher was notified.
//!
//! A watch is registered per session (ZooKeeper keeps one data watch per session and path),
//! so W watchers means W sessions, each its own connection.
//!
//! ```text
//!   W sessions: getData(node, watch) ──► all armed ──► T0: writer setData(node)
//!   each session's NodeDataChanged arrives at Ti; notify_all = max(Ti) - T0
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::record::{error_kind, Record, ServerUsage};
use crate::sessions::{self, ROOT};
use crate::stats::{self, LatencySummary};
use crate::Target;

/// Settings of a fan-out run.
#[derive(Debug, Clone, PartialEq)]
pub struct FanoutConfig {
    /// Watching sessions.
    pub watchers: usize,
    /// Times to arm and fire the watches.
    pub rounds: usize,
    /// How long to wait for all notifications of one round.
    pub max_wait: Duration,
}

impl Default for FanoutConfig {
    fn default() -> Self {
        FanoutConfig {
            watchers: 10_000,
            rounds: 3,
            max_wait: Duration::from_secs(60),
        }
    }
}

/// Runs the fan-out scenario.
///
/// # Errors
///
/// When the configuration is invalid, sessions cannot be opened or the watched node cannot
/// be created. Watchers not notified in time are counted as errors (`NotNotified`).
pub async fn run_fanout(target: &Target, cfg: &FanoutConfig) -> Result<Record> {
    if cfg.watchers == 0 || cfg.rounds == 0 {
        bail!("--watchers and --rounds must be at least 1");
    }
    let connect_start = Instant::now();
    let writer = sessions::connect_many(&target.servers, 1)
        .await?
        .pop()
        .expect("one session");
    let watchers = sessions::connect_many(&target.servers, cfg.watchers).await?;
    let connect_s = connect_start.elapsed().as_secs_f64();
    let node = format!("{ROOT}/watch-{}", sessions::run_id());
    sessions::ensure_path(&writer, &node).await?;

    let before = target.sample_servers()?;
    let mut hist = stats::new_histogram();
    let mut error_kinds: BTreeMap<String, u64> = BTreeMap::new();
    let mut notified = 0u64;
    let mut all_ms = Vec::with_capacity(cfg.rounds);
    let mut arm_ms = Vec::with_capacity(cfg.rounds);
    for round in 0..cfg.rounds {
        let arm_start = Instant::now();
        // Every getData is queued before any is awaited: the sessions arm in parallel.
        let pending: Vec<_> = watchers
            .iter()
            .map(|c| c.get_and_watch_data(&node))
            .collect();
        let mut tasks = JoinSet::new();
        for armed in pending {
            let (_, _, watcher) = armed.await.context("arming a watch")?;
            tasks.spawn(async move { watcher.await.map(|_| Instant::now()) });
        }
        arm_ms.push(arm_start.elapsed().as_secs_f64() * 1e3);
        let fired = Instant::now();
        writer
            .set_data(&node, format!("round {round}").as_bytes(), None)
            .await
            .context("firing the watches")?;
        let deadline = fired + cfg.max_wait;
        let mut last = fired;
        let mut seen = 0usize;
        while seen < cfg.watchers {
            match tokio::time::timeout_at(deadline, tasks.join_next()).await {
                Ok(Some(Ok(Ok(at)))) => {
                    stats::record(&mut hist, at - fired);
                    last = last.max(at);
                    notified += 1;
                }
                Ok(Some(Ok(Err(e)))) => *error_kinds.entry(error_kind(&e)).or_default() += 1,
                Ok(Some(Err(_))) => *error_kinds.entry("Panicked".into()).or_default() += 1,
                Ok(None) => break,
                Err(_) => {
                    *error_kinds.entry("NotNotified".into()).or_default() += tasks.len() as u64;
                    tasks.abort_all();
                    break;
                }
            }
            seen += 1;
        }
        all_ms.push((last - fired).as_secs_f64() * 1e3);
    }
    let after = target.sample_servers()?;
    let fired_total = (cfg.watchers * cfg.rounds) as u64;
    sessions::close_all(watchers).await;
    let _ = writer.delete(&node, None).await;
    sessions::close_all(vec![writer]).await;

    let mut r = Record::new(format!("watch-{}", cfg.watchers), "watch", target);
    r.sessions = cfg.watchers;
    r.in_flight = 1;
    r.ops = notified;
    r.reads = notified;
    r.errors = error_kinds.values().sum();
    r.error_kinds = error_kinds;
    let sum_s: f64 = all_ms.iter().sum::<f64>() / 1e3;
    r.elapsed_s = sum_s;
    r.throughput_ops_s = notified as f64 / sum_s.max(1e-9);
    r.latency_us = LatencySummary::from_histogram(&hist);
    r.read_latency_us = r.latency_us;
    let worst = all_ms.iter().copied().fold(0.0, f64::max);
    let best = all_ms.iter().copied().fold(f64::INFINITY, f64::min);
    r.metrics.insert("notify_all_ms".into(), worst);
    r.metrics.insert("notify_all_ms_best".into(), best);
    r.metrics
        .insert("notify_all_ms_mean".into(), sum_s * 1e3 / cfg.rounds as f64);
    r.metrics.insert(
        "arm_ms_mean".into(),
        arm_ms.iter().sum::<f64>() / cfg.rounds as f64,
    );
    r.metrics.insert("connect_s".into(), connect_s);
    r.metrics.insert("rounds".into(), cfg.rounds as f64);
    if let (Some(pid), Some(b), Some(a)) = (target.server_pid.first().copied(), before, after) {
        r.server = Some(ServerUsage::between(pid, &b, &a, fired_total));
    }
    Ok(r)
}
