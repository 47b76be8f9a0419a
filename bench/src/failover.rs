//! The leader failover scenario (needs an ensemble of at least 3 servers): SIGKILL the
//! leader under a continuous writer and measure how long until a new leader serves and
//! until the writer's next write succeeds.
//!
//! ```text
//!   find leader (srvr `Mode:`) ─► writer: setData, K in flight, all servers in its list
//!   ── warm-up ──► kill -KILL <leader pid>; T0 = once /proc shows it gone (or a zombie)
//!      poll survivors' srvr every 5 ms ─► first `Mode: leader`      = leader_elected_ms
//!      writer: first success of a request *sent* after T0           = writer_recovered_ms
//!      longest stretch without a completed write around T0           = writer_max_gap_ms
//! ```
//!
//! `compare.sh --ensemble 3` runs it against 3-process ZooKeeper and Corral ensembles. It
//! runs against any ZooKeeper-compatible ensemble given its hosts and PIDs, and [`run_failover_with`] against in-process ensembles (Corral's
//! `TestingCluster`, see `bench/tests/failover_cluster.rs`). With fewer than 3 servers, or
//! when no server reports `Mode: leader`, it stops with an error that says so before
//! killing anything.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use corral_client::Client;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::fourlw::{self, Mode};
use crate::record::{error_kind, Record};
use crate::sessions::{self, ROOT};
use crate::stats::{self, LatencySummary};
use crate::Target;

/// Pause after a failed write; bounds the resolution of `writer_recovered_ms`.
const ERROR_PAUSE: Duration = Duration::from_millis(5);

/// Settings of a failover run.
#[derive(Debug, Clone, PartialEq)]
pub struct FailoverConfig {
    /// Process ids of the servers, in the order of the connect string's hosts.
    pub pids: Vec<u32>,
    /// Writes in flight.
    pub in_flight: usize,
    /// Data bytes per write.
    pub payload_bytes: usize,
    /// Writing before the kill.
    pub warmup: Duration,
    /// Writing after the writer recovered.
    pub tail: Duration,
    /// Give up waiting for a new leader / the writer's recovery after this long.
    pub max_wait: Duration,
    /// Interval of the `srvr` polls.
    pub poll: Duration,
}

impl Default for FailoverConfig {
    fn default() -> Self {
        FailoverConfig {
            pids: Vec::new(),
            in_flight: 1,
            payload_bytes: 100,
            warmup: Duration::from_secs(3),
            tail: Duration::from_secs(2),
            max_wait: Duration::from_secs(60),
            poll: Duration::from_millis(5),
        }
    }
}

/// What the writer saw around the kill.
#[derive(Debug, Clone, PartialEq)]
pub struct WriterAnalysis {
    /// From the kill to the first success of a request sent after it.
    pub recovered: Option<Duration>,
    /// Longest interval between consecutive completed writes (or from the last write before
    /// the kill to the end, if none completed after it).
    pub max_gap: Duration,
}

/// Analyses the writer's successes (`(sent, completed)`, in completion order) against the
/// kill time.
pub fn analyze(successes: &[(Instant, Instant)], kill_at: Instant, end: Instant) -> WriterAnalysis {
    let recovered = successes
        .iter()
        .find(|(sent, _)| *sent >= kill_at)
        .map(|(_, done)| *done - kill_at);
    let mut max_gap = Duration::ZERO;
    let mut prev: Option<Instant> = None;
    for (_, done) in successes {
        if let Some(p) = prev {
            max_gap = max_gap.max(done.saturating_duration_since(p));
        }
        prev = Some(*done);
    }
    if recovered.is_none() {
        if let Some(p) = prev {
            max_gap = max_gap.max(end.saturating_duration_since(p));
        }
    }
    WriterAnalysis { recovered, max_gap }
}

/// The `host:port` list of a connect string (without the chroot).
pub fn hosts(connect_string: &str) -> Vec<String> {
    let hosts = connect_string.split('/').next().unwrap_or("");
    hosts
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|h| {
            if h.contains(':') {
                h.to_owned()
            } else {
                format!("{h}:2181")
            }
        })
        .collect()
}

/// Checks the server list before anything is started.
fn validate(hosts: &[String], cfg: &FailoverConfig) -> Result<()> {
    if hosts.len() < 3 {
        bail!(
            "failover needs an ensemble of at least 3 servers (got {}: {:?}); point \
             --servers at three ZooKeeper-compatible servers and give their --pids \
             (TODO(ensemble): compare.sh does not start ensembles yet)",
            hosts.len(),
            hosts
        );
    }
    if cfg.in_flight == 0 {
        bail!("--in-flight must be at least 1");
    }
    Ok(())
}

/// Checks that there is one PID per server.
fn validate_pids(hosts: &[String], cfg: &FailoverConfig) -> Result<()> {
    if cfg.pids.len() != hosts.len() {
        bail!(
            "--pids must give one process id per server, in --servers order ({} servers, {} pids)",
            hosts.len(),
            cfg.pids.len()
        );
    }
    Ok(())
}

/// The index of the one server whose `srvr` says `Mode: leader`.
async fn find_leader(hosts: &[String]) -> Result<usize> {
    let mut modes = Vec::new();
    for h in hosts {
        modes.push(fourlw::mode(h, Duration::from_secs(2)).await);
    }
    let leaders: Vec<usize> = (0..hosts.len())
        .filter(|i| modes[*i] == Some(Mode::Leader))
        .collect();
    match leaders.as_slice() {
        [one] => Ok(*one),
        [] if modes.contains(&Some(Mode::Standalone)) => bail!(
            "the servers are standalone ({modes:?}), not an ensemble: failover needs a \
             3-server ensemble"
        ),
        [] => bail!("no server reports `Mode: leader` (modes: {modes:?})"),
        _ => bail!("several servers report `Mode: leader` (modes: {modes:?})"),
    }
}

/// The continuous writer's results.
struct WriterLog {
    successes: Vec<(Instant, Instant)>,
    error_kinds: BTreeMap<String, u64>,
}

/// Writes until `stop`, `in_flight` at a time; sends the completion time of the first
/// success sent after the kill on `recovered`.
async fn write_continuously(
    client: Client,
    node: String,
    cfg: FailoverConfig,
    stop: Arc<AtomicBool>,
    hard_stop: Instant,
    kill_at: watch::Receiver<Option<Instant>>,
    recovered: watch::Sender<Option<Instant>>,
) -> WriterLog {
    let payload = vec![b'x'; cfg.payload_bytes];
    let mut log = WriterLog {
        successes: Vec::new(),
        error_kinds: BTreeMap::new(),
    };
    let mut queue = std::collections::VecDeque::new();
    loop {
        while queue.len() < cfg.in_flight && !stop.load(Ordering::Relaxed) {
            queue.push_back((Instant::now(), client.set_data(&node, &payload, None)));
        }
        let Some((sent, reply)) = queue.pop_front() else {
            break;
        };
        match tokio::time::timeout_at(hard_stop, reply).await {
            Ok(Ok(_)) => {
                let done = Instant::now();
                log.successes.push((sent, done));
                let killed = *kill_at.borrow();
                if killed.is_some_and(|k| sent >= k) && recovered.borrow().is_none() {
                    let _ = recovered.send(Some(done));
                }
            }
            Ok(Err(e)) => {
                *log.error_kinds.entry(error_kind(&e)).or_default() += 1;
                if e.is_terminal() {
                    break;
                }
                tokio::time::sleep(ERROR_PAUSE).await;
            }
            Err(_) => {
                *log.error_kinds.entry("Timeout".into()).or_default() += 1;
                break;
            }
        }
    }
    log
}

/// SIGKILLs `pid` (through `kill(1)`: the crate forbids `unsafe`).
async fn kill_hard(pid: u32) -> Result<()> {
    let status = tokio::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .await
        .context("running kill")?;
    if !status.success() {
        bail!("kill -KILL {pid} failed ({status})");
    }
    // Until the process is gone (or a zombie): bounded, 1 ms steps.
    for _ in 0..2000 {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat)
                if !stat
                    .rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with(['Z', 'X']) =>
            {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            _ => break,
        }
    }
    Ok(())
}

/// Runs the failover scenario against the ensemble of `target.servers`, killing the leader
/// with SIGKILL through its entry of `cfg.pids`.
///
/// # Errors
///
/// With fewer than 3 servers, a `--pids` list that does not match, no unique leader, a
/// writer that cannot connect, or a failed kill. A new leader or a recovered writer not
/// seen within `max_wait` is reported in the record (`recovered` = 0), not as an error.
pub async fn run_failover(target: &Target, cfg: &FailoverConfig) -> Result<Record> {
    let hosts = hosts(&target.servers);
    validate(&hosts, cfg)?;
    validate_pids(&hosts, cfg)?;
    let pids = cfg.pids.clone();
    run_failover_with(target, cfg, move |leader| kill_hard(pids[leader])).await
}

/// [`run_failover`] with another way to stop the leader: `kill` gets the leader's index in
/// the connect string's host list and returns once it is stopped (for in-process ensembles,
/// whose members share one PID). `cfg.pids` is not used.
///
/// # Errors
///
/// As [`run_failover`], and whatever `kill` returns.
pub async fn run_failover_with<F, Fut>(
    target: &Target,
    cfg: &FailoverConfig,
    kill: F,
) -> Result<Record>
where
    F: FnOnce(usize) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let hosts = hosts(&target.servers);
    validate(&hosts, cfg)?;
    let leader = find_leader(&hosts).await?;
    let client = sessions::connect_many(&target.servers, 1)
        .await?
        .pop()
        .expect("one session");
    let node = format!("{ROOT}/failover-{}", sessions::run_id());
    sessions::ensure_path(&client, &node).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let (kill_tx, kill_rx) = watch::channel(None);
    let (recovered_tx, mut recovered_rx) = watch::channel(None);
    let start = Instant::now();
    let hard_stop = start + cfg.warmup + cfg.max_wait + cfg.tail + Duration::from_secs(10);
    let writer = tokio::spawn(write_continuously(
        client.clone(),
        node.clone(),
        cfg.clone(),
        stop.clone(),
        hard_stop,
        kill_rx,
        recovered_tx,
    ));
    tokio::time::sleep(cfg.warmup).await;

    // The clock starts once the leader is gone: a write sent while the signal is still on
    // its way could be answered by the old leader and would not show a recovery.
    kill(leader).await.context("stopping the leader")?;
    let kill_at = Instant::now();
    let _ = kill_tx.send(Some(kill_at));
    let give_up = kill_at + cfg.max_wait;

    let mut elected = None;
    let mut new_leader = None;
    while elected.is_none() && Instant::now() < give_up {
        for (i, h) in hosts.iter().enumerate().filter(|(i, _)| *i != leader) {
            if fourlw::mode(h, Duration::from_millis(500)).await == Some(Mode::Leader) {
                elected = Some(kill_at.elapsed());
                new_leader = Some(i);
                break;
            }
        }
        if elected.is_none() {
            tokio::time::sleep(cfg.poll).await;
        }
    }
    let _ = tokio::time::timeout_at(give_up, recovered_rx.wait_for(Option::is_some)).await;
    tokio::time::sleep(cfg.tail).await;
    stop.store(true, Ordering::Relaxed);
    let end = Instant::now();
    let log = writer.await.context("the writer panicked")?;
    let _ = client.delete(&node, None).await;
    sessions::close_all(vec![client]).await;

    let analysis = analyze(&log.successes, kill_at, end);
    let mut hist = stats::new_histogram();
    for (sent, done) in &log.successes {
        stats::record(&mut hist, *done - *sent);
    }
    let mut r = Record::new("failover", "failover", target);
    r.op = Some("set".into());
    r.sessions = 1;
    r.in_flight = cfg.in_flight;
    r.payload_bytes = cfg.payload_bytes;
    r.warmup_s = cfg.warmup.as_secs_f64();
    r.elapsed_s = (end - start).as_secs_f64();
    r.ops = log.successes.len() as u64;
    r.writes = r.ops;
    r.errors = log.error_kinds.values().sum();
    r.error_kinds = log.error_kinds;
    r.throughput_ops_s = r.ops as f64 / r.elapsed_s.max(1e-9);
    r.latency_us = LatencySummary::from_histogram(&hist);
    r.write_latency_us = r.latency_us;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    r.metrics.insert("old_leader".into(), leader as f64);
    if let (Some(e), Some(n)) = (elected, new_leader) {
        r.metrics.insert("leader_elected_ms".into(), ms(e));
        r.metrics.insert("new_leader".into(), n as f64);
    }
    if let Some(d) = analysis.recovered {
        r.metrics.insert("writer_recovered_ms".into(), ms(d));
    }
    r.metrics
        .insert("writer_max_gap_ms".into(), ms(analysis.max_gap));
    let ok = elected.is_some() && analysis.recovered.is_some();
    r.metrics
        .insert("recovered".into(), f64::from(u8::from(ok)));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_split_and_defaulted() {
        assert_eq!(
            hosts("127.0.0.1:1,127.0.0.1:2, 127.0.0.1/chroot"),
            vec!["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:2181"]
        );
    }

    #[test]
    fn fewer_than_three_servers_is_a_clear_error() {
        let cfg = FailoverConfig::default();
        let e = validate(&hosts("127.0.0.1:2181"), &cfg).unwrap_err();
        assert!(e.to_string().contains("at least 3 servers"), "{e}");
        validate(&hosts("a:1,b:2,c:3"), &cfg).unwrap();
        let e = validate_pids(&hosts("a:1,b:2,c:3"), &cfg).unwrap_err();
        assert!(e.to_string().contains("--pids"), "{e}");
        let cfg = FailoverConfig {
            pids: vec![1, 2, 3],
            ..cfg
        };
        validate_pids(&hosts("a:1,b:2,c:3"), &cfg).unwrap();
    }

    #[test]
    fn analysis_finds_recovery_and_the_longest_gap() {
        let t = Instant::now();
        let ms = |n: u64| t + Duration::from_millis(n);
        let kill = ms(100);
        // Writes every 10 ms until 95; one sent before the kill completes at 105 (it was
        // committed); then nothing until a write sent at 300 completes at 310.
        let mut s: Vec<_> = (0..10).map(|i| (ms(i * 10), ms(i * 10 + 5))).collect();
        s.push((ms(99), ms(105)));
        s.push((ms(300), ms(310)));
        s.push((ms(310), ms(315)));
        let a = analyze(&s, kill, ms(400));
        assert_eq!(a.recovered, Some(Duration::from_millis(210)));
        assert_eq!(a.max_gap, Duration::from_millis(205));
    }

    #[test]
    fn analysis_without_recovery_counts_the_gap_to_the_end() {
        let t = Instant::now();
        let s = vec![(t, t + Duration::from_millis(5))];
        let a = analyze(
            &s,
            t + Duration::from_millis(10),
            t + Duration::from_millis(1005),
        );
        assert_eq!(a.recovered, None);
        assert_eq!(a.max_gap, Duration::from_millis(1000));
    }
}
