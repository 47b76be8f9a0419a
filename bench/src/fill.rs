//! The fill scenario: create many znodes (1M by default) as fast as the server takes them,
//! and see what they cost in time and server memory.
//!
//! Nodes go under `/corral-bench/fill-<run>/pNNNNN/nNNNN`, `fanout` children per parent, so
//! no single node gets a million children. The nodes are left in place: run it on a fresh
//! server (compare.sh does).

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use corral_client::{Client, CreateOptions};
use hdrhistogram::Histogram;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::fourlw;
use crate::record::{error_kind, Record, ServerUsage};
use crate::sessions::{self, ROOT};
use crate::stats::{self, LatencySummary};
use crate::Target;

/// Settings of a fill run.
#[derive(Debug, Clone, PartialEq)]
pub struct FillConfig {
    /// Leaf znodes to create.
    pub nodes: u64,
    /// Sessions creating in parallel.
    pub sessions: usize,
    /// Creates in flight per session.
    pub in_flight: usize,
    /// Data bytes per node.
    pub payload_bytes: usize,
    /// Children per parent node.
    pub fanout: u64,
    /// Give up (and report what was created) after this long.
    pub max_time: Duration,
}

impl Default for FillConfig {
    fn default() -> Self {
        FillConfig {
            nodes: 1_000_000,
            sessions: 16,
            in_flight: 64,
            payload_bytes: 100,
            fanout: 1000,
            max_time: Duration::from_secs(1800),
        }
    }
}

/// Counts of one session's creates.
struct Outcome {
    created: u64,
    error_kinds: BTreeMap<String, u64>,
    hist: Histogram<u64>,
}

/// Creates `paths` on `client`, `in_flight` at a time, until `deadline`.
async fn create_all(
    client: Client,
    paths: Vec<String>,
    payload: Vec<u8>,
    in_flight: usize,
    deadline: Instant,
) -> Outcome {
    let mut out = Outcome {
        created: 0,
        error_kinds: BTreeMap::new(),
        hist: stats::new_histogram(),
    };
    let opts = CreateOptions::persistent();
    let mut todo = paths.iter();
    let mut queue = VecDeque::with_capacity(in_flight);
    loop {
        while queue.len() < in_flight && Instant::now() < deadline {
            let Some(path) = todo.next() else { break };
            queue.push_back((Instant::now(), client.create(path, &payload, &opts)));
        }
        let Some((sent, reply)) = queue.pop_front() else {
            break;
        };
        match tokio::time::timeout_at(deadline, reply).await {
            Ok(Ok(_)) => {
                out.created += 1;
                stats::record(&mut out.hist, sent.elapsed());
            }
            Ok(Err(e)) => *out.error_kinds.entry(error_kind(&e)).or_default() += 1,
            Err(_) => {
                *out.error_kinds.entry("Deadline".into()).or_default() += queue.len() as u64 + 1;
                break;
            }
        }
    }
    let skipped = todo.len() as u64;
    if skipped > 0 {
        *out.error_kinds.entry("NotAttempted".into()).or_default() += skipped;
    }
    out
}

/// Runs `paths` split into contiguous shares over `clients`; merges the outcomes.
async fn create_spread(
    clients: &[Client],
    paths: Vec<String>,
    payload: &[u8],
    in_flight: usize,
    deadline: Instant,
) -> Result<Outcome> {
    let share = paths.len().div_ceil(clients.len()).max(1);
    let mut tasks = JoinSet::new();
    let mut rest = paths;
    for client in clients {
        let tail = rest.split_off(share.min(rest.len()));
        let mine = std::mem::replace(&mut rest, tail);
        tasks.spawn(create_all(
            client.clone(),
            mine,
            payload.to_vec(),
            in_flight,
            deadline,
        ));
    }
    let mut total = Outcome {
        created: 0,
        error_kinds: BTreeMap::new(),
        hist: stats::new_histogram(),
    };
    while let Some(joined) = tasks.join_next().await {
        let o = joined.context("a fill task panicked")?;
        total.created += o.created;
        total.hist.add(&o.hist).expect("same bounds");
        for (k, n) in o.error_kinds {
            *total.error_kinds.entry(k).or_default() += n;
        }
    }
    Ok(total)
}

/// Runs the fill scenario.
///
/// # Errors
///
/// When the configuration is invalid, sessions cannot be opened, the root cannot be
/// created or `--server-pid` names no readable process. Failed creates are counted.
pub async fn run_fill(target: &Target, cfg: &FillConfig) -> Result<Record> {
    if cfg.nodes == 0 || cfg.sessions == 0 || cfg.in_flight == 0 || cfg.fanout == 0 {
        bail!("--nodes, --sessions, --in-flight and --fanout must be at least 1");
    }
    let clients = sessions::connect_many(&target.servers, cfg.sessions).await?;
    let base = format!("{ROOT}/fill-{}", sessions::run_id());
    sessions::ensure_path(&clients[0], &base).await?;
    let payload = vec![b'x'; cfg.payload_bytes];
    let parents = cfg.nodes.div_ceil(cfg.fanout);
    let parent_paths: Vec<String> = (0..parents).map(|p| format!("{base}/p{p:05}")).collect();
    let leaf_paths: Vec<String> = (0..cfg.nodes)
        .map(|i| format!("{base}/p{:05}/n{:04}", i / cfg.fanout, i % cfg.fanout))
        .collect();

    let before = target.sample_servers()?;
    let start = Instant::now();
    let deadline = start + cfg.max_time;
    let parents_out = create_spread(&clients, parent_paths, b"", cfg.in_flight, deadline).await?;
    let leaves = create_spread(&clients, leaf_paths, &payload, cfg.in_flight, deadline).await?;
    let fill = start.elapsed();
    let after = target.sample_servers()?;
    let mntr = fourlw::ask(target.first_server(), "mntr", Duration::from_secs(5))
        .await
        .map(|a| fourlw::parse_mntr(&a))
        .unwrap_or_default();
    sessions::close_all(clients).await;

    let mut r = Record::new(format!("fill-{}", cfg.nodes), "fill", target);
    r.op = Some("create".into());
    r.sessions = cfg.sessions;
    r.in_flight = cfg.in_flight;
    r.payload_bytes = cfg.payload_bytes;
    r.elapsed_s = fill.as_secs_f64();
    let mut hist = leaves.hist;
    hist.add(&parents_out.hist).expect("same bounds");
    r.ops = leaves.created + parents_out.created;
    r.writes = r.ops;
    for (k, n) in leaves
        .error_kinds
        .into_iter()
        .chain(parents_out.error_kinds)
    {
        *r.error_kinds.entry(k).or_default() += n;
        r.errors += n;
    }
    r.throughput_ops_s = r.ops as f64 / r.elapsed_s.max(1e-9);
    r.latency_us = LatencySummary::from_histogram(&hist);
    r.write_latency_us = r.latency_us;
    r.metrics.insert("fill_s".into(), r.elapsed_s);
    r.metrics
        .insert("nodes_created".into(), leaves.created as f64);
    if let Some(n) = mntr.get("zk_znode_count") {
        r.metrics.insert("server_znode_count".into(), *n);
    }
    if let Some(n) = mntr.get("zk_approximate_data_size") {
        r.metrics.insert("server_data_size_bytes".into(), *n);
    }
    if let (Some(pid), Some(b), Some(a)) = (target.server_pid.first().copied(), before, after) {
        r.server = Some(ServerUsage::between(pid, &b, &a, r.ops));
        r.metrics.insert("rss_before_kb".into(), b.rss_kb as f64);
        let grown = a.rss_kb.saturating_sub(b.rss_kb) as f64 * 1024.0;
        r.metrics
            .insert("rss_bytes_per_node".into(), grown / r.ops.max(1) as f64);
    }
    Ok(r)
}
