//! The command line (clap) and its dispatch.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};

use crate::coldstart::{self, ColdStartConfig};
use crate::failover::{self, FailoverConfig};
use crate::fanout::{self, FanoutConfig};
use crate::fill::{self, FillConfig};
use crate::fourlw;
use crate::load::{self, LoadConfig, Op};
use crate::ratio;
use crate::record::{table_header, table_row, Record};
use crate::suite::{self, SuiteConfig};
use crate::Target;

/// Load generator for any ZooKeeper-compatible server (Apache ZooKeeper, Corral, ...).
#[derive(Debug, Parser)]
#[command(name = "corral-bench", version)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
    /// Tokio worker threads of the bench itself (default: one per core).
    #[arg(long, global = true)]
    pub threads: Option<usize>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// One load scenario: N sessions x K requests in flight, one operation or a mix.
    Load(LoadArgs),
    /// The standard scenario set (what compare.sh runs).
    Suite(SuiteArgs),
    /// Create many znodes; fill time and server RSS.
    Fill(FillArgs),
    /// Watch fan-out: W sessions watch one node; time until one change reaches all.
    Watch(WatchArgs),
    /// Leader failover under a continuous writer (needs a 3+ server ensemble).
    Failover(FailoverArgs),
    /// Side-by-side medians and ratios of two labels from JSON-lines files.
    Ratio(RatioArgs),
    /// Cold start: from a given spawn time until a client's first create succeeds.
    FirstWrite(FirstWriteArgs),
    /// Wait until a server serves (`srvr` reports a `Mode:`), then print its mode.
    Wait(WaitArgs),
}

/// Where results go.
#[derive(Debug, Clone, Args)]
pub struct Output {
    /// Append each result as a JSON line to this file (`-`: JSON lines on stdout instead
    /// of the table).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// Arguments of `load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    out: Output,
    /// The operation.
    #[arg(long, value_enum, default_value_t = Op::Get)]
    op: Op,
    /// Sessions (N), one connection each.
    #[arg(long, short = 'n', default_value_t = 64)]
    sessions: usize,
    /// Requests in flight per session (K).
    #[arg(long, short = 'k', default_value_t = 32)]
    in_flight: usize,
    /// Fraction of reads for `--op mixed`.
    #[arg(long, default_value_t = 0.9)]
    read_ratio: f64,
    /// Data bytes per create / set.
    #[arg(long, default_value_t = 100)]
    payload_bytes: usize,
    /// Keys that reads and sets pick from.
    #[arg(long, default_value_t = 1024)]
    keys: usize,
    /// Measured window (`10s`, `500ms`, `2m`, or seconds).
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    duration: Duration,
    /// Warm-up before the window.
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    warmup: Duration,
    /// Seed of key choices and the read/write mix.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Scenario name in the output (default `<op>-<N>x<K>`).
    #[arg(long)]
    name: Option<String>,
}

/// Arguments of `suite`.
#[derive(Debug, Args)]
pub struct SuiteArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    out: Output,
    /// Short settings: 1 s windows, 0.3 s warm-up, 1000 watchers, 20k znodes.
    #[arg(long)]
    quick: bool,
    /// Measured window per load scenario (default 10 s, quick 1 s).
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Warm-up per load scenario (default 2 s, quick 0.3 s).
    #[arg(long, value_parser = parse_duration)]
    warmup: Option<Duration>,
    /// Sessions of the throughput scenarios.
    #[arg(long, short = 'n', default_value_t = 64)]
    sessions: usize,
    /// Requests in flight per session in the throughput scenarios.
    #[arg(long, short = 'k', default_value_t = 32)]
    in_flight: usize,
    /// Watch fan-out sessions, 0 to skip (default 10000, quick 1000).
    #[arg(long)]
    watchers: Option<usize>,
    /// Fill scenario znodes, 0 to skip (default 1000000, quick 20000).
    #[arg(long)]
    fill_nodes: Option<u64>,
    /// Only scenarios whose names start with one of these (comma-separated), e.g.
    /// `get-,set-64x32,watch,fill`.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

/// Arguments of `fill`.
#[derive(Debug, Args)]
pub struct FillArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    out: Output,
    /// Znodes to create.
    #[arg(long, default_value_t = 1_000_000)]
    nodes: u64,
    /// Sessions creating in parallel.
    #[arg(long, short = 'n', default_value_t = 16)]
    sessions: usize,
    /// Creates in flight per session.
    #[arg(long, short = 'k', default_value_t = 64)]
    in_flight: usize,
    /// Data bytes per node.
    #[arg(long, default_value_t = 100)]
    payload_bytes: usize,
    /// Children per parent node.
    #[arg(long, default_value_t = 1000)]
    fanout: u64,
    /// Give up after this long.
    #[arg(long, value_parser = parse_duration, default_value = "30m")]
    max_time: Duration,
}

/// Arguments of `watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    out: Output,
    /// Watching sessions (one watch each).
    #[arg(long, default_value_t = 10_000)]
    watchers: usize,
    /// Times to arm and fire.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Longest wait for one round's notifications.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    max_wait: Duration,
}

/// Arguments of `failover`.
#[derive(Debug, Args)]
pub struct FailoverArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    out: Output,
    /// Process ids of the servers, in `--servers` order (the leader's gets SIGKILL).
    #[arg(long, value_delimiter = ',', required = true)]
    pids: Vec<u32>,
    /// Writes in flight.
    #[arg(long, short = 'k', default_value_t = 1)]
    in_flight: usize,
    /// Writing before the kill.
    #[arg(long, value_parser = parse_duration, default_value = "3s")]
    warmup: Duration,
    /// Writing after recovery.
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    tail: Duration,
    /// Longest wait for a new leader and for the writer.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    max_wait: Duration,
}

/// Arguments of `first-write`.
#[derive(Debug, Args)]
pub struct FirstWriteArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    out: Output,
    /// Wall-clock time just before the servers were spawned, ns since the Unix epoch
    /// (`date +%s%N`).
    #[arg(long)]
    since_ns: u128,
    /// Scenario name in the output.
    #[arg(long, default_value = "coldstart")]
    name: String,
    /// Give up this long after `--since-ns`.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    timeout: Duration,
}

/// Arguments of `ratio`.
#[derive(Debug, Args)]
pub struct RatioArgs {
    /// JSON-lines files written with `--json`.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// The label of the reference server.
    #[arg(long, default_value = "zookeeper")]
    baseline: String,
    /// The label of the server compared with it.
    #[arg(long, default_value = "corral")]
    candidate: String,
}

/// Arguments of `wait`.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// `host:port` of the server.
    #[arg(long, default_value = "127.0.0.1:2181")]
    server: String,
    /// How long to wait.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    timeout: Duration,
}

/// Parses `1.5`, `10s`, `500ms`, `2m` or `1h` (bare numbers are seconds).
///
/// # Errors
///
/// A message for anything else.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("not a duration: {s:?} (try 10s, 500ms, 2m)"))?;
    if !v.is_finite() || v < 0.0 || v * scale > 1e7 {
        return Err(format!("duration out of range: {s:?}"));
    }
    Ok(Duration::from_secs_f64(v * scale))
}

/// Prints and stores records as they come.
struct Printer {
    out: Output,
    header_done: bool,
}

impl Printer {
    fn new(out: Output) -> Self {
        Printer {
            out,
            header_done: false,
        }
    }

    fn emit(&mut self, r: &Record) -> Result<()> {
        let mut stdout = std::io::stdout().lock();
        match &self.out.json {
            Some(p) if p.as_os_str() == "-" => writeln!(stdout, "{}", r.to_json_line())?,
            other => {
                if !self.header_done {
                    writeln!(stdout, "{}", table_header())?;
                    self.header_done = true;
                }
                writeln!(stdout, "{}", table_row(r))?;
                if let Some(p) = other {
                    r.append_to(p)?;
                }
            }
        }
        stdout.flush()?;
        Ok(())
    }
}

/// Runs a parsed command line.
///
/// # Errors
///
/// Whatever the command fails with; see each scenario's `run_*`.
pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Load(a) => {
            let cfg = LoadConfig {
                name: a.name,
                op: a.op,
                sessions: a.sessions,
                in_flight: a.in_flight,
                read_ratio: a.read_ratio,
                payload_bytes: a.payload_bytes,
                keys: a.keys,
                duration: a.duration,
                warmup: a.warmup,
                seed: a.seed,
            };
            let r = load::run_load(&a.target, &cfg).await?.record;
            Printer::new(a.out).emit(&r)
        }
        Command::Suite(a) => {
            let base = if a.quick {
                SuiteConfig::quick()
            } else {
                SuiteConfig::full()
            };
            let cfg = SuiteConfig {
                duration: a.duration.unwrap_or(base.duration),
                warmup: a.warmup.unwrap_or(base.warmup),
                sessions: a.sessions,
                in_flight: a.in_flight,
                watchers: a.watchers.unwrap_or(base.watchers),
                fill_nodes: a.fill_nodes.unwrap_or(base.fill_nodes),
                only: a.only,
                ..base
            };
            let mut printer = Printer::new(a.out);
            suite::run_suite(&a.target, &cfg, &mut |r| printer.emit(r)).await?;
            Ok(())
        }
        Command::Fill(a) => {
            let cfg = FillConfig {
                nodes: a.nodes,
                sessions: a.sessions,
                in_flight: a.in_flight,
                payload_bytes: a.payload_bytes,
                fanout: a.fanout,
                max_time: a.max_time,
            };
            let r = fill::run_fill(&a.target, &cfg).await?;
            Printer::new(a.out).emit(&r)
        }
        Command::Watch(a) => {
            let cfg = FanoutConfig {
                watchers: a.watchers,
                rounds: a.rounds,
                max_wait: a.max_wait,
            };
            let r = fanout::run_fanout(&a.target, &cfg).await?;
            Printer::new(a.out).emit(&r)
        }
        Command::Failover(a) => {
            let cfg = FailoverConfig {
                pids: a.pids,
                in_flight: a.in_flight,
                warmup: a.warmup,
                tail: a.tail,
                max_wait: a.max_wait,
                ..FailoverConfig::default()
            };
            let r = failover::run_failover(&a.target, &cfg).await?;
            Printer::new(a.out).emit(&r)
        }
        Command::FirstWrite(a) => {
            let cfg = ColdStartConfig {
                since_ns: a.since_ns,
                name: a.name,
                timeout: a.timeout,
            };
            let r = coldstart::run_coldstart(&a.target, &cfg).await?;
            Printer::new(a.out).emit(&r)
        }
        Command::Ratio(a) => {
            let records = ratio::read_records(&a.files)?;
            print!("{}", ratio::report(&records, &a.baseline, &a.candidate)?);
            Ok(())
        }
        Command::Wait(a) => {
            if a.server.contains(',') {
                bail!("--server takes one host:port");
            }
            let mode = fourlw::wait_serving(&a.server, a.timeout).await?;
            println!("{mode:?}");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn command_line_parses() {
        let cli = Cli::try_parse_from([
            "corral-bench",
            "load",
            "--servers",
            "127.0.0.1:2181",
            "--op",
            "mixed",
            "-n",
            "4",
            "-k",
            "8",
            "--duration",
            "2s",
            "--json",
            "-",
        ])
        .unwrap();
        let Command::Load(a) = cli.command else {
            panic!("not load")
        };
        assert_eq!((a.op, a.sessions, a.in_flight), (Op::Mixed, 4, 8));
        assert!(Cli::try_parse_from(["corral-bench", "failover"]).is_err());
    }
}
