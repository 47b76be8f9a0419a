//! The load scenario: N sessions × K requests in flight, for a warm-up and a measured window.
//!
//! ```text
//!   connect N sessions ─► create keys ─► start ──warm-up──► measure_start ──window──► end
//!   session i: keep K requests queued on its connection; as the oldest completes, send one
//!              more; completions inside [measure_start, end] are counted and timed
//! ```
//!
//! ZooKeeper answers each session's requests in order (FIFO client order), so a session
//! awaits its oldest request: the completion order equals the issue order and no per-request
//! task is needed. Latency runs from the call (when the client queues the request) to the
//! moment the driver sees the reply.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{self, Poll};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use corral_client::{Client, CreateOptions, Error, Stat};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::record::{error_kind, Record, ServerUsage};
use crate::sessions::{self, Rng, ROOT};
use crate::stats::{self, LatencySummary};
use crate::Target;

/// After the window ends, requests still in flight get this long to finish before the
/// session gives up on them (bounds the run when a server stalls).
const DRAIN_GRACE: Duration = Duration::from_secs(10);

/// After a failed request a session pauses this long, so a broken connection does not turn
/// into a busy loop of instant failures.
const ERROR_PAUSE: Duration = Duration::from_millis(10);

/// The operation a load scenario issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// `create` of a new persistent node per request.
    Create,
    /// `setData` of a random key (version -1).
    Set,
    /// `getData` of a random key.
    Get,
    /// `exists` of a random key.
    Exists,
    /// `getData` with probability `read_ratio`, else `setData`.
    Mixed,
}

impl Op {
    /// The lower-case name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Set => "set",
            Op::Get => "get",
            Op::Exists => "exists",
            Op::Mixed => "mixed",
        }
    }

    /// Whether the scenario reads pre-created keys.
    fn needs_keys(self) -> bool {
        !matches!(self, Op::Create)
    }
}

/// Settings of one load run.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadConfig {
    /// Scenario name in the output; `None` gives `<op>-<N>x<K>`.
    pub name: Option<String>,
    /// The operation.
    pub op: Op,
    /// Sessions (N), each its own connection.
    pub sessions: usize,
    /// Requests in flight per session (K).
    pub in_flight: usize,
    /// Fraction of reads for [`Op::Mixed`], in `0..=1`.
    pub read_ratio: f64,
    /// Data bytes per create / set, and of each key.
    pub payload_bytes: usize,
    /// Keys the reads and sets pick from (uniformly).
    pub keys: usize,
    /// Length of the measured window.
    pub duration: Duration,
    /// Load before the window, not counted.
    pub warmup: Duration,
    /// Seed of the key and mix choices.
    pub seed: u64,
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig {
            name: None,
            op: Op::Get,
            sessions: 64,
            in_flight: 32,
            read_ratio: 0.9,
            payload_bytes: 100,
            keys: 1024,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            seed: 1,
        }
    }
}

impl LoadConfig {
    /// The scenario name used in the output.
    pub fn scenario_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            let op = match self.op {
                Op::Mixed => format!("mixed{:.0}", self.read_ratio * 100.0),
                op => op.name().to_owned(),
            };
            format!("{op}-{}x{}", self.sessions, self.in_flight)
        })
    }

    fn validate(&self) -> Result<()> {
        if self.sessions == 0 || self.in_flight == 0 {
            bail!("--sessions and --in-flight must be at least 1");
        }
        if !(0.0..=1.0).contains(&self.read_ratio) {
            bail!("--read-ratio must be within 0..=1, got {}", self.read_ratio);
        }
        if self.op.needs_keys() && self.keys == 0 {
            bail!("--keys must be at least 1 for {}", self.op.name());
        }
        if self.duration.is_zero() {
            bail!("--duration must be positive");
        }
        Ok(())
    }
}

/// The outcome of [`run_load`]: the record plus per-session detail for checks.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// What is printed and written as JSON.
    pub record: Record,
    /// Successful operations per session, in session order (they sum to `record.ops`).
    pub per_session_ops: Vec<u64>,
}

/// When a session counts and stops.
#[derive(Debug, Clone, Copy)]
struct Window {
    measure_start: Instant,
    end: Instant,
}

/// What the sessions share.
#[derive(Debug)]
struct Plan {
    op: Op,
    in_flight: usize,
    read_ratio: f64,
    payload: Vec<u8>,
    key_paths: Vec<String>,
    create_parent: String,
    seed: u64,
}

/// Counts and latencies of one session.
struct SessionOutcome {
    ops: u64,
    reads: u64,
    writes: u64,
    error_kinds: BTreeMap<String, u64>,
    read_hist: Histogram<u64>,
    write_hist: Histogram<u64>,
}

/// A boxed reply future of one of the client's result types.
type Boxed<T> = Pin<Box<dyn Future<Output = Result<T, Error>> + Send>>;

/// A request in flight. The client's futures are large (about 2.6 KB each), so they are
/// boxed once as they are, not wrapped in another `async` block that would copy them again
/// on its first poll.
enum Reply {
    Create(Boxed<(String, Stat)>),
    Stat(Boxed<Stat>),
    Data(Boxed<(Vec<u8>, Stat)>),
    Exists(Boxed<Option<Stat>>),
}

impl Future for Reply {
    type Output = Result<(), Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut task::Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Reply::Create(f) => f.as_mut().poll(cx).map_ok(drop),
            Reply::Stat(f) => f.as_mut().poll(cx).map_ok(drop),
            Reply::Data(f) => f.as_mut().poll(cx).map_ok(drop),
            Reply::Exists(f) => f.as_mut().poll(cx).map_ok(drop),
        }
    }
}

/// Sends one request on `client` and returns whether it is a read, with its reply future.
fn issue(client: &Client, plan: &Plan, rng: &mut Rng, session: usize, seq: u64) -> (bool, Reply) {
    let n_keys = plan.key_paths.len() as u64;
    let key = |r: u64| plan.key_paths[(r % n_keys.max(1)) as usize].as_str();
    let pick = rng.next_u64();
    match plan.op {
        Op::Create => {
            let path = format!("{}/s{session}-{seq}", plan.create_parent);
            let f = client.create(&path, &plan.payload, &CreateOptions::persistent());
            (false, Reply::Create(Box::pin(f)))
        }
        Op::Set => (
            false,
            Reply::Stat(Box::pin(client.set_data(key(pick), &plan.payload, None))),
        ),
        Op::Get => (true, Reply::Data(Box::pin(client.get_data(key(pick))))),
        Op::Exists => (true, Reply::Exists(Box::pin(client.exists(key(pick))))),
        Op::Mixed => {
            if rng.next_f64() < plan.read_ratio {
                (true, Reply::Data(Box::pin(client.get_data(key(pick)))))
            } else {
                (
                    false,
                    Reply::Stat(Box::pin(client.set_data(key(pick), &plan.payload, None))),
                )
            }
        }
    }
}

/// One session's loop: keep `in_flight` requests queued until the window ends, then drain.
async fn drive(client: Client, session: usize, plan: Arc<Plan>, win: Window) -> SessionOutcome {
    let mut out = SessionOutcome {
        ops: 0,
        reads: 0,
        writes: 0,
        error_kinds: BTreeMap::new(),
        read_hist: stats::new_histogram(),
        write_hist: stats::new_histogram(),
    };
    let mut rng = Rng::new(plan.seed ^ (session as u64).wrapping_mul(0x9E37_79B9));
    let mut queue: VecDeque<(bool, Instant, Reply)> = VecDeque::with_capacity(plan.in_flight);
    let hard_stop = win.end + DRAIN_GRACE;
    let mut seq = 0u64;
    loop {
        // Bounded: one request per free slot, and only before the window ends.
        while queue.len() < plan.in_flight && Instant::now() < win.end {
            let sent = Instant::now();
            let (read, reply) = issue(&client, &plan, &mut rng, session, seq);
            seq += 1;
            queue.push_back((read, sent, reply));
        }
        let Some((read, sent, reply)) = queue.pop_front() else {
            break;
        };
        let result = tokio::time::timeout_at(hard_stop, reply).await;
        let done = Instant::now();
        let counted = done >= win.measure_start && done <= win.end;
        match result {
            Ok(Ok(())) if counted => {
                out.ops += 1;
                if read {
                    out.reads += 1;
                    stats::record(&mut out.read_hist, done - sent);
                } else {
                    out.writes += 1;
                    stats::record(&mut out.write_hist, done - sent);
                }
            }
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                if counted {
                    *out.error_kinds.entry(error_kind(&e)).or_default() += 1;
                }
                if e.is_terminal() {
                    break;
                }
                if done < win.end {
                    tokio::time::sleep(ERROR_PAUSE.min(win.end - done)).await;
                }
            }
            Err(_) => {
                // The drain grace ran out: abandon what is left.
                let left = queue.len() as u64 + 1;
                *out.error_kinds.entry("DrainTimeout".into()).or_default() += left;
                break;
            }
        }
    }
    out
}

/// Creates the keys (with `payload`) that reads and sets use, overwriting existing ones.
async fn prepare_keys(client: &Client, key_paths: &[String], payload: &[u8]) -> Result<()> {
    // Pipelined in chunks: all of a chunk's creates are queued before any is awaited.
    for chunk in key_paths.chunks(256) {
        let creates: Vec<_> = chunk
            .iter()
            .map(|p| (p, client.create(p, payload, &CreateOptions::persistent())))
            .collect();
        let mut sets = Vec::new();
        for (path, create) in creates {
            match create.await {
                Ok(_) => {}
                Err(Error::NodeExists) => sets.push((path, client.set_data(path, payload, None))),
                Err(e) => return Err(e).with_context(|| format!("creating key {path}")),
            }
        }
        for (path, set) in sets {
            set.await.with_context(|| format!("setting key {path}"))?;
        }
    }
    Ok(())
}

/// Runs one load scenario against `target` and returns its record.
///
/// # Errors
///
/// When the configuration is invalid, a session cannot be opened, the keys cannot be
/// created, or `--server-pid` names no readable process. Failed requests during the run are
/// counted, not returned.
pub async fn run_load(target: &Target, cfg: &LoadConfig) -> Result<LoadReport> {
    cfg.validate()?;
    let clients = sessions::connect_many(&target.servers, cfg.sessions).await?;
    let setup = &clients[0];
    let payload = vec![b'x'; cfg.payload_bytes];
    let keys_parent = format!("{ROOT}/keys");
    sessions::ensure_path(setup, &keys_parent).await?;
    let key_paths: Vec<String> = if cfg.op.needs_keys() {
        (0..cfg.keys)
            .map(|i| format!("{keys_parent}/k{i:06}"))
            .collect()
    } else {
        Vec::new()
    };
    prepare_keys(setup, &key_paths, &payload).await?;
    let create_parent = format!("{ROOT}/create-{}", sessions::run_id());
    if cfg.op == Op::Create {
        sessions::ensure_path(setup, &create_parent).await?;
    }
    let plan = Arc::new(Plan {
        op: cfg.op,
        in_flight: cfg.in_flight,
        read_ratio: match cfg.op {
            Op::Get | Op::Exists => 1.0,
            Op::Mixed => cfg.read_ratio,
            Op::Create | Op::Set => 0.0,
        },
        payload,
        key_paths,
        create_parent,
        seed: cfg.seed,
    });

    let start = Instant::now();
    let win = Window {
        measure_start: start + cfg.warmup,
        end: start + cfg.warmup + cfg.duration,
    };
    let mut tasks = JoinSet::new();
    for (i, client) in clients.iter().enumerate() {
        let (client, plan) = (client.clone(), plan.clone());
        tasks.spawn(async move { (i, drive(client, i, plan, win).await) });
    }
    // Resource samples bracket the measured window exactly.
    tokio::time::sleep_until(win.measure_start).await;
    let before = target.sample_servers()?;
    tokio::time::sleep_until(win.end).await;
    let after = target.sample_servers()?;

    let mut outcomes = Vec::with_capacity(cfg.sessions);
    while let Some(joined) = tasks.join_next().await {
        outcomes.push(joined.context("a session task panicked")?);
    }
    outcomes.sort_by_key(|(i, _)| *i);
    sessions::close_all(clients).await;

    let mut read_hist = stats::new_histogram();
    let mut write_hist = stats::new_histogram();
    let mut record = Record::new(cfg.scenario_name(), "load", target);
    let mut per_session_ops = Vec::with_capacity(outcomes.len());
    for (_, o) in &outcomes {
        read_hist.add(&o.read_hist).expect("same bounds");
        write_hist.add(&o.write_hist).expect("same bounds");
        record.ops += o.ops;
        record.reads += o.reads;
        record.writes += o.writes;
        for (k, n) in &o.error_kinds {
            *record.error_kinds.entry(k.clone()).or_default() += n;
            record.errors += n;
        }
        per_session_ops.push(o.ops);
    }
    let mut all = read_hist.clone();
    all.add(&write_hist).expect("same bounds");
    record.op = Some(cfg.op.name().to_owned());
    record.sessions = cfg.sessions;
    record.in_flight = cfg.in_flight;
    record.payload_bytes = cfg.payload_bytes;
    record.read_ratio = (cfg.op == Op::Mixed).then_some(cfg.read_ratio);
    record.warmup_s = cfg.warmup.as_secs_f64();
    record.elapsed_s = cfg.duration.as_secs_f64();
    record.throughput_ops_s = record.ops as f64 / record.elapsed_s;
    record.latency_us = LatencySummary::from_histogram(&all);
    record.read_latency_us = LatencySummary::from_histogram(&read_hist);
    record.write_latency_us = LatencySummary::from_histogram(&write_hist);
    record.session_ops_min = per_session_ops.iter().copied().min().unwrap_or(0);
    record.session_ops_max = per_session_ops.iter().copied().max().unwrap_or(0);
    if let (Some(pid), Some(b), Some(a)) = (target.server_pid.first().copied(), before, after) {
        record.server = Some(ServerUsage::between(pid, &b, &a, record.ops));
    }
    Ok(LoadReport {
        record,
        per_session_ops,
    })
}
