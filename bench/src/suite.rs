//! The standard scenario set that compare.sh runs against each server.
//!
//! | scenario        | what                                  | target vs ZooKeeper |
//! |-----------------|---------------------------------------|---------------------|
//! | `get-1x1`       | getData, 1 session, 1 in flight       | p50 <= 0.5x         |
//! | `set-1x1`       | setData, 1 session, 1 in flight       | p50 <= 0.5x         |
//! | `get-64x32`     | getData, 64 sessions x 32 in flight   | ops/s >= 2x, p99 <= 0.3x |
//! | `exists-64x32`  | exists                                | ops/s >= 2x, p99 <= 0.3x |
//! | `set-64x32`     | setData                               | ops/s >= 3x, p99 <= 0.3x |
//! | `mixed90-64x32` | 90 % getData, 10 % setData            | ops/s >= 2.5x, p99 <= 0.3x |
//! | `create-64x32`  | create (a new node each)              | ops/s >= 3x, p99 <= 0.3x |
//! | `watch-W`       | W sessions watch one node; one set    | (time until all notified) |
//! | `fill-N`        | N creates, RSS after (own process)    | RSS <= 0.1x         |
//!
//! `create` runs last of the load scenarios because its nodes stay behind.

use std::time::Duration;

use anyhow::Result;

use crate::fanout::{self, FanoutConfig};
use crate::fill::{self, FillConfig};
use crate::load::{self, LoadConfig, Op};
use crate::record::Record;
use crate::Target;

/// Settings of the standard set.
#[derive(Debug, Clone, PartialEq)]
pub struct SuiteConfig {
    /// Measured window of each load scenario.
    pub duration: Duration,
    /// Warm-up of each load scenario.
    pub warmup: Duration,
    /// Sessions of the throughput scenarios.
    pub sessions: usize,
    /// Requests in flight per session in the throughput scenarios.
    pub in_flight: usize,
    /// Data bytes per write.
    pub payload_bytes: usize,
    /// Read fraction of the mixed scenario.
    pub read_ratio: f64,
    /// Keys read and written.
    pub keys: usize,
    /// Sessions of the watch fan-out (0 skips it).
    pub watchers: usize,
    /// Rounds of the watch fan-out.
    pub watch_rounds: usize,
    /// Nodes of the fill scenario (0 skips it).
    pub fill_nodes: u64,
    /// Run only the scenarios whose names start with one of these (empty: all).
    pub only: Vec<String>,
}

impl SuiteConfig {
    /// The full-length defaults: 10 s windows, 2 s warm-up, 64 x 32, 10k watchers, 1M
    /// znodes.
    pub fn full() -> Self {
        SuiteConfig {
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            sessions: 64,
            in_flight: 32,
            payload_bytes: 100,
            read_ratio: 0.9,
            keys: 1024,
            watchers: 10_000,
            watch_rounds: 3,
            fill_nodes: 1_000_000,
            only: Vec::new(),
        }
    }

    /// The `--quick` defaults: 1 s windows, 0.3 s warm-up, 1000 watchers, 20k znodes.
    pub fn quick() -> Self {
        SuiteConfig {
            duration: Duration::from_secs(1),
            warmup: Duration::from_millis(300),
            watchers: 1000,
            watch_rounds: 1,
            fill_nodes: 20_000,
            ..SuiteConfig::full()
        }
    }

    /// The load scenarios, in run order.
    pub fn load_scenarios(&self) -> Vec<LoadConfig> {
        let base = LoadConfig {
            duration: self.duration,
            warmup: self.warmup,
            payload_bytes: self.payload_bytes,
            read_ratio: self.read_ratio,
            keys: self.keys,
            ..LoadConfig::default()
        };
        let one = |op| LoadConfig {
            op,
            sessions: 1,
            in_flight: 1,
            ..base.clone()
        };
        let many = |op| LoadConfig {
            op,
            sessions: self.sessions,
            in_flight: self.in_flight,
            ..base.clone()
        };
        vec![
            one(Op::Get),
            one(Op::Set),
            many(Op::Get),
            many(Op::Exists),
            many(Op::Set),
            many(Op::Mixed),
            many(Op::Create),
        ]
    }

    fn selected(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|p| name.starts_with(p.as_str()))
    }
}

/// Runs the selected scenarios in order, handing each record to `sink` as it is done.
///
/// # Errors
///
/// The first scenario error (a session that cannot connect, ...) or `sink` error.
pub async fn run_suite(
    target: &Target,
    cfg: &SuiteConfig,
    sink: &mut dyn FnMut(&Record) -> Result<()>,
) -> Result<Vec<Record>> {
    let mut records = Vec::new();
    for load_cfg in cfg.load_scenarios() {
        if !cfg.selected(&load_cfg.scenario_name()) {
            continue;
        }
        let r = load::run_load(target, &load_cfg).await?.record;
        sink(&r)?;
        records.push(r);
    }
    let watch_name = format!("watch-{}", cfg.watchers);
    if cfg.watchers > 0 && cfg.selected(&watch_name) {
        let fan = FanoutConfig {
            watchers: cfg.watchers,
            rounds: cfg.watch_rounds.max(1),
            ..FanoutConfig::default()
        };
        let r = fanout::run_fanout(target, &fan).await?;
        sink(&r)?;
        records.push(r);
    }
    let fill_name = format!("fill-{}", cfg.fill_nodes);
    if cfg.fill_nodes > 0 && cfg.selected(&fill_name) {
        let f = FillConfig {
            nodes: cfg.fill_nodes,
            payload_bytes: cfg.payload_bytes,
            ..FillConfig::default()
        };
        let r = fill::run_fill(target, &f).await?;
        sink(&r)?;
        records.push(r);
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_names_match_the_targets_table() {
        let names: Vec<String> = SuiteConfig::full()
            .load_scenarios()
            .iter()
            .map(LoadConfig::scenario_name)
            .collect();
        assert_eq!(
            names,
            [
                "get-1x1",
                "set-1x1",
                "get-64x32",
                "exists-64x32",
                "set-64x32",
                "mixed90-64x32",
                "create-64x32"
            ]
        );
    }

    #[test]
    fn only_filters_by_prefix() {
        let cfg = SuiteConfig {
            only: vec!["get-".into(), "fill".into()],
            ..SuiteConfig::quick()
        };
        assert!(cfg.selected("get-1x1") && cfg.selected("fill-20000"));
        assert!(!cfg.selected("set-1x1"));
    }
}
