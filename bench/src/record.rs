//! The result of one scenario run: one JSON line, one table row.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::procfs::ProcessSample;
use crate::stats::LatencySummary;

/// Resource use of the server during a run (when its PID was given).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ServerUsage {
    /// The (first) server process id; RSS and CPU are summed over every `--server-pid`.
    pub pid: u32,
    /// Resident set size at the end of the run, KiB.
    pub rss_kb: u64,
    /// Peak resident set size since the server started, KiB.
    pub rss_peak_kb: u64,
    /// CPU seconds (user + system) the server used during the measured window.
    pub cpu_s: f64,
    /// `cpu_s` per 1000 operations counted in the window.
    pub cpu_s_per_1k_ops: f64,
}

impl ServerUsage {
    /// Usage between two samples of `pid` during which `ops` operations were counted.
    pub fn between(pid: u32, before: &ProcessSample, after: &ProcessSample, ops: u64) -> Self {
        let cpu_s = (after.cpu_s - before.cpu_s).max(0.0);
        ServerUsage {
            pid,
            rss_kb: after.rss_kb,
            rss_peak_kb: after.rss_peak_kb,
            cpu_s,
            cpu_s_per_1k_ops: if ops == 0 {
                0.0
            } else {
                cpu_s * 1000.0 / ops as f64
            },
        }
    }
}

/// One scenario run, written as one JSON line.
///
/// `ops` counts successful operations completed inside the measured window; it equals
/// `reads + writes` and the `count` of `latency_us`. Failed operations are in `errors`
/// (by kind in `error_kinds`) and have no latency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Scenario name, e.g. `set-64x32` or `fill-1000000`.
    pub scenario: String,
    /// `load`, `fill`, `watch` or `failover`.
    pub kind: String,
    /// Which server this was (`zookeeper`, `corral`, ...), from `--label`.
    pub label: String,
    /// Repetition number, from `--round` (for the A B A B runs of compare.sh).
    pub round: u32,
    /// The connect string used.
    pub target: String,
    /// The operation (`create`, `set`, `get`, `exists`, `mixed`), for load scenarios.
    pub op: Option<String>,
    /// Sessions (connections) that issued operations.
    pub sessions: usize,
    /// Requests kept in flight per session.
    pub in_flight: usize,
    /// Bytes of data per create / set.
    pub payload_bytes: usize,
    /// Fraction of reads, for `mixed`.
    pub read_ratio: Option<f64>,
    /// Warm-up before the measured window, seconds.
    pub warmup_s: f64,
    /// Length of the measured window (for fill: the fill time), seconds.
    pub elapsed_s: f64,
    /// Successful operations in the window.
    pub ops: u64,
    /// Successful reads in the window.
    pub reads: u64,
    /// Successful writes in the window.
    pub writes: u64,
    /// Failed operations in the window.
    pub errors: u64,
    /// `errors` by error kind.
    pub error_kinds: BTreeMap<String, u64>,
    /// `ops / elapsed_s`.
    pub throughput_ops_s: f64,
    /// Latency of every successful operation, µs.
    pub latency_us: Option<LatencySummary>,
    /// Latency of reads, µs.
    pub read_latency_us: Option<LatencySummary>,
    /// Latency of writes, µs.
    pub write_latency_us: Option<LatencySummary>,
    /// Fewest operations one session completed (fairness).
    pub session_ops_min: u64,
    /// Most operations one session completed.
    pub session_ops_max: u64,
    /// The server's resource use, when `--server-pid` was given.
    pub server: Option<ServerUsage>,
    /// Scenario-specific figures (e.g. `fill_s`, `notify_all_ms`, `leader_elected_ms`).
    pub metrics: BTreeMap<String, f64>,
    /// When the run ended, seconds since the Unix epoch.
    pub unix_time_s: u64,
}

impl Record {
    /// An empty record for `scenario` of `kind`, to be filled in.
    pub fn new(scenario: impl Into<String>, kind: &str, target: &crate::Target) -> Self {
        Record {
            scenario: scenario.into(),
            kind: kind.to_owned(),
            label: target.label.clone(),
            round: target.round,
            target: target.servers.clone(),
            op: None,
            sessions: 0,
            in_flight: 0,
            payload_bytes: 0,
            read_ratio: None,
            warmup_s: 0.0,
            elapsed_s: 0.0,
            ops: 0,
            reads: 0,
            writes: 0,
            errors: 0,
            error_kinds: BTreeMap::new(),
            throughput_ops_s: 0.0,
            latency_us: None,
            read_latency_us: None,
            write_latency_us: None,
            session_ops_min: 0,
            session_ops_max: 0,
            server: None,
            metrics: BTreeMap::new(),
            unix_time_s: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        }
    }

    /// The record as one line of JSON (no trailing newline).
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("a Record always serialises")
    }

    /// Parses one JSON line.
    ///
    /// # Errors
    ///
    /// When the line is not a record.
    pub fn from_json_line(line: &str) -> Result<Record> {
        serde_json::from_str(line).context("not a corral-bench JSON record")
    }

    /// Appends the record as a JSON line to `path` (created if missing).
    ///
    /// # Errors
    ///
    /// When the file cannot be opened or written.
    pub fn append_to(&self, path: &Path) -> Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        writeln!(f, "{}", self.to_json_line())
            .with_context(|| format!("writing {}", path.display()))
    }
}

/// The header of [`table_row`], with a separator line.
pub fn table_header() -> String {
    let h = format!(
        "{:<18} {:<10} {:>8} {:>11} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>8} {:>9}",
        "scenario",
        "label",
        "NxK",
        "ops/s",
        "p50 us",
        "p90 us",
        "p99 us",
        "p99.9 us",
        "max us",
        "errors",
        "RSS MiB",
        "cpu s/1k"
    );
    let line = "-".repeat(h.len());
    format!("{h}\n{line}")
}

/// One human-readable line for `r`; scenario-specific metrics follow on an indented line.
pub fn table_row(r: &Record) -> String {
    let lat = r.latency_us;
    let f = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    let mut s = format!(
        "{:<18} {:<10} {:>8} {:>11.0} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>8} {:>9}",
        r.scenario,
        r.label,
        format!("{}x{}", r.sessions, r.in_flight),
        r.throughput_ops_s,
        f(lat.map(|l| l.p50)),
        f(lat.map(|l| l.p90)),
        f(lat.map(|l| l.p99)),
        f(lat.map(|l| l.p999)),
        f(lat.map(|l| l.max)),
        r.errors,
        r.server.map_or_else(
            || "-".to_owned(),
            |u| format!("{:.1}", u.rss_kb as f64 / 1024.0)
        ),
        r.server
            .map_or_else(|| "-".to_owned(), |u| format!("{:.4}", u.cpu_s_per_1k_ops)),
    );
    if !r.metrics.is_empty() {
        s.push_str("\n    ");
        for (k, v) in &r.metrics {
            let _ = write!(s, " {k}={}", fmt_metric(*v));
        }
    }
    if !r.error_kinds.is_empty() {
        s.push_str("\n     errors:");
        for (k, v) in &r.error_kinds {
            let _ = write!(s, " {k}={v}");
        }
    }
    s
}

/// A metric with sensible precision.
fn fmt_metric(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// The name of an error's kind: its enum variant (`ConnectionLoss`, `NoNode`, ...).
pub fn error_kind(e: &impl std::fmt::Debug) -> String {
    let d = format!("{e:?}");
    d.split(|c: char| !c.is_alphanumeric() && c != '_')
        .next()
        .unwrap_or("Unknown")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_kind_is_the_variant_name() {
        assert_eq!(
            error_kind(&corral_client::Error::ConnectionLoss),
            "ConnectionLoss"
        );
        assert_eq!(
            error_kind(&corral_client::Error::BadArguments("x".into())),
            "BadArguments"
        );
    }

    #[test]
    fn records_round_trip_through_json() {
        let t = crate::Target::new("127.0.0.1:2181");
        let mut r = Record::new("get-1x1", "load", &t);
        r.metrics.insert("fill_s".into(), 1.5);
        let back = Record::from_json_line(&r.to_json_line()).unwrap();
        assert_eq!(back, r);
        assert!(table_row(&r).contains("fill_s=1.500"));
    }
}
