//! Side-by-side figures of two servers from JSON lines: medians over rounds, and the
//! candidate / baseline ratio with the project's targets.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::record::Record;

/// The median figures of one (server, scenario) over its rounds.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Figures {
    /// Rounds that were combined.
    pub rounds: usize,
    /// Errors summed over the rounds.
    pub errors: u64,
    /// Named medians: `ops_s`, `p50_us`, `p99_us`, `p999_us`, `max_us`, `rss_mib`,
    /// `cpu_s_per_1k`, and every scenario metric (`notify_all_ms`, `fill_s`, ...).
    pub values: BTreeMap<String, f64>,
}

/// A goal for a candidate / baseline ratio.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Goal {
    /// The figure compared (a key of [`Figures::values`]).
    pub figure: &'static str,
    /// The bound on the ratio.
    pub bound: f64,
    /// Whether the ratio must be at least (`true`) or at most (`false`) the bound.
    pub at_least: bool,
}

/// The project's goals for a scenario of the standard set (see `suite`).
pub fn goals(scenario: &str) -> Vec<Goal> {
    let ge = |figure, bound| Goal {
        figure,
        bound,
        at_least: true,
    };
    let le = |figure, bound| Goal {
        figure,
        bound,
        at_least: false,
    };
    let mut g = Vec::new();
    match scenario {
        "set-64x32" | "create-64x32" => g.push(ge("ops_s", 3.0)),
        "get-64x32" | "exists-64x32" => g.push(ge("ops_s", 2.0)),
        "mixed90-64x32" => g.push(ge("ops_s", 2.5)),
        _ => {}
    }
    if scenario.ends_with("-64x32") {
        g.push(le("p99_us", 0.3));
        g.push(le("rss_mib", 0.1));
    }
    if scenario.ends_with("-1x1") {
        g.push(le("p50_us", 0.5));
    }
    if scenario.starts_with("fill-") {
        g.push(le("rss_mib", 0.25));
    }
    g
}

/// The project's absolute bounds (ms) on the candidate's median of a figure: cold start
/// to the first write, and leader failover.
pub fn limits(scenario: &str) -> Vec<(&'static str, f64)> {
    match scenario {
        "coldstart-1" => vec![("first_write_ms", 20.0)],
        "coldstart-3" => vec![("first_write_ms", 150.0)],
        "failover" => vec![("leader_elected_ms", 200.0), ("writer_recovered_ms", 400.0)],
        _ => Vec::new(),
    }
}

/// Reads every JSON line of `paths` (blank lines skipped).
///
/// # Errors
///
/// When a file cannot be read or a line is not a record.
pub fn read_records(paths: &[PathBuf]) -> Result<Vec<Record>> {
    let mut out = Vec::new();
    for p in paths {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            out.push(
                Record::from_json_line(line)
                    .with_context(|| format!("{}:{}", p.display(), n + 1))?,
            );
        }
    }
    Ok(out)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The figures of one record.
fn figures_of(r: &Record) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    m.insert("ops_s".to_owned(), r.throughput_ops_s);
    if let Some(l) = r.latency_us {
        m.insert("p50_us".to_owned(), l.p50 as f64);
        m.insert("p99_us".to_owned(), l.p99 as f64);
        m.insert("p999_us".to_owned(), l.p999 as f64);
        m.insert("max_us".to_owned(), l.max as f64);
    }
    if let Some(s) = r.server {
        m.insert("rss_mib".to_owned(), s.rss_kb as f64 / 1024.0);
        m.insert("cpu_s_per_1k".to_owned(), s.cpu_s_per_1k_ops);
    }
    for (k, v) in &r.metrics {
        m.insert(k.clone(), *v);
    }
    m
}

/// Rounds, summed errors and samples per figure of one (label, scenario).
type Samples = (usize, u64, BTreeMap<String, Vec<f64>>);

/// Median figures per (label, scenario), scenarios in first-seen order.
pub fn medians(records: &[Record]) -> (Vec<String>, BTreeMap<(String, String), Figures>) {
    let mut order = Vec::new();
    let mut samples: BTreeMap<(String, String), Samples> = BTreeMap::new();
    for r in records {
        if !order.contains(&r.scenario) {
            order.push(r.scenario.clone());
        }
        let e = samples
            .entry((r.label.clone(), r.scenario.clone()))
            .or_default();
        e.0 += 1;
        e.1 += r.errors;
        for (k, v) in figures_of(r) {
            e.2.entry(k).or_default().push(v);
        }
    }
    let figures = samples
        .into_iter()
        .map(|(key, (rounds, errors, vals))| {
            let values = vals.into_iter().map(|(k, v)| (k, median(v))).collect();
            (
                key,
                Figures {
                    rounds,
                    errors,
                    values,
                },
            )
        })
        .collect();
    (order, figures)
}

/// The figures shown in the ratio table, with their column titles.
const COLUMNS: [(&str, &str); 7] = [
    ("ops_s", "ops/s"),
    ("p50_us", "p50"),
    ("p99_us", "p99"),
    ("p999_us", "p99.9"),
    ("max_us", "max"),
    ("rss_mib", "RSS"),
    ("cpu_s_per_1k", "cpu s/1k ops"),
];

/// Scenario metrics worth a ratio of their own.
const METRICS: [&str; 7] = [
    "first_write_ms",
    "listening_ms",
    "notify_all_ms",
    "fill_s",
    "rss_bytes_per_node",
    "leader_elected_ms",
    "writer_recovered_ms",
];

fn fmt(v: Option<f64>) -> String {
    match v {
        None => "-".to_owned(),
        Some(v) if v >= 1000.0 => format!("{v:.0}"),
        Some(v) if v >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.3}"),
    }
}

/// The side-by-side report (Markdown tables): absolute medians of both servers, then
/// candidate / baseline ratios with the goals met (`ok`) or missed (`MISS`).
///
/// # Errors
///
/// When neither label has any record.
pub fn report(records: &[Record], baseline: &str, candidate: &str) -> Result<String> {
    let (order, figs) = medians(records);
    let has = |label: &str| figs.keys().any(|(l, _)| l == label);
    if !has(baseline) || !has(candidate) {
        let labels: Vec<&String> = figs.keys().map(|(l, _)| l).collect();
        bail!("need records labelled {baseline:?} and {candidate:?}; found labels {labels:?}");
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Medians over rounds (latency in µs, RSS in MiB at the end of the scenario)\n"
    );
    let _ = writeln!(
        s,
        "| scenario | server | rounds | ops/s | p50 | p99 | p99.9 | max | RSS | cpu s/1k ops | errors | other |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for sc in &order {
        for label in [baseline, candidate] {
            let Some(f) = figs.get(&(label.to_owned(), sc.clone())) else {
                continue;
            };
            let g = |k: &str| f.values.get(k).copied();
            let other: Vec<String> = METRICS
                .iter()
                .filter_map(|m| g(m).map(|v| format!("{m}={}", fmt(Some(v)))))
                .collect();
            let _ = writeln!(
                s,
                "| {sc} | {label} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                f.rounds,
                fmt(g("ops_s")),
                fmt(g("p50_us")),
                fmt(g("p99_us")),
                fmt(g("p999_us")),
                fmt(g("max_us")),
                fmt(g("rss_mib")),
                fmt(g("cpu_s_per_1k")),
                f.errors,
                other.join(" ")
            );
        }
    }
    let _ = writeln!(
        s,
        "\nRatios {candidate} / {baseline} (ops/s: higher is better; the rest: lower is better)\n"
    );
    let mut head = String::from("| scenario |");
    let mut rule = String::from("|---|");
    for (_, title) in COLUMNS {
        let _ = write!(head, " {title} |");
        rule.push_str("---|");
    }
    let _ = writeln!(s, "{head} other | goals |\n{rule}---|---|");
    for sc in &order {
        let (Some(b), Some(c)) = (
            figs.get(&(baseline.to_owned(), sc.clone())),
            figs.get(&(candidate.to_owned(), sc.clone())),
        ) else {
            continue;
        };
        let ratio = |k: &str| match (b.values.get(k), c.values.get(k)) {
            (Some(bv), Some(cv)) if *bv > 0.0 => Some(cv / bv),
            _ => None,
        };
        let mut row = format!("| {sc} |");
        for (k, _) in COLUMNS {
            let _ = write!(
                row,
                " {} |",
                ratio(k).map_or("-".into(), |r| format!("{r:.2}x"))
            );
        }
        let other: Vec<String> = METRICS
            .iter()
            .filter_map(|m| ratio(m).map(|r| format!("{m} {r:.2}x")))
            .collect();
        let mut verdicts: Vec<String> = goals(sc)
            .iter()
            .map(|g| {
                let op = if g.at_least { ">=" } else { "<=" };
                let verdict = match ratio(g.figure) {
                    None => "n/a",
                    Some(r) if (g.at_least && r >= g.bound) || (!g.at_least && r <= g.bound) => {
                        "ok"
                    }
                    Some(_) => "MISS",
                };
                format!("{} {op} {}x {verdict}", g.figure, g.bound)
            })
            .collect();
        for (figure, bound) in limits(sc) {
            let verdict = match c.values.get(figure) {
                None => "n/a",
                Some(v) if *v <= bound => "ok",
                Some(_) => "MISS",
            };
            verdicts.push(format!("{figure} <= {bound} ms {verdict}"));
        }
        let _ = writeln!(s, "{row} {} | {} |", other.join(", "), verdicts.join(", "));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::ServerUsage;
    use crate::stats::LatencySummary;

    fn rec(label: &str, scenario: &str, ops_s: f64, p99: u64, round: u32) -> Record {
        let t = crate::Target {
            label: label.into(),
            round,
            ..crate::Target::new("127.0.0.1:1")
        };
        let mut r = Record::new(scenario, "load", &t);
        r.throughput_ops_s = ops_s;
        r.latency_us = Some(LatencySummary {
            count: 1,
            mean: 1.0,
            p50: p99 / 2,
            p90: p99,
            p99,
            p999: p99,
            max: p99,
        });
        r.server = Some(ServerUsage {
            pid: 1,
            rss_kb: 1024,
            rss_peak_kb: 1024,
            cpu_s: 1.0,
            cpu_s_per_1k_ops: 0.5,
        });
        r
    }

    #[test]
    fn medians_and_ratios_with_goals() {
        let records = vec![
            rec("zookeeper", "set-64x32", 100.0, 1000, 1),
            rec("corral", "set-64x32", 400.0, 200, 1),
            rec("zookeeper", "set-64x32", 300.0, 3000, 2),
            rec("corral", "set-64x32", 400.0, 400, 2),
        ];
        let (order, figs) = medians(&records);
        assert_eq!(order, ["set-64x32"]);
        let zk = &figs[&("zookeeper".to_owned(), "set-64x32".to_owned())];
        assert_eq!(zk.rounds, 2);
        assert_eq!(zk.values["ops_s"], 200.0);
        let text = report(&records, "zookeeper", "corral").unwrap();
        assert!(text.contains("| set-64x32 | 2.00x |"), "{text}");
        assert!(text.contains("ops_s >= 3x MISS"), "{text}");
        assert!(text.contains("p99_us <= 0.3x ok"), "{text}");
    }

    #[test]
    fn absolute_limits_are_checked_on_the_candidate() {
        let mut z = rec("zookeeper", "failover", 1.0, 10, 1);
        z.metrics.insert("leader_elected_ms".into(), 600.0);
        let mut c = rec("corral", "failover", 1.0, 10, 1);
        c.metrics.insert("leader_elected_ms".into(), 70.0);
        c.metrics.insert("writer_recovered_ms".into(), 500.0);
        let text = report(&[z, c], "zookeeper", "corral").unwrap();
        assert!(text.contains("leader_elected_ms <= 200 ms ok"), "{text}");
        assert!(
            text.contains("writer_recovered_ms <= 400 ms MISS"),
            "{text}"
        );
    }

    #[test]
    fn missing_label_is_an_error() {
        let records = vec![rec("zookeeper", "get-1x1", 1.0, 10, 1)];
        assert!(report(&records, "zookeeper", "corral").is_err());
    }
}
