//! corral-bench: a load generator for any ZooKeeper-compatible server, driven through
//! `corral-client`.
//!
//! It sits at the top of the dependency graph (`bench → client → proto`) and talks to
//! servers only over the network, so Apache ZooKeeper and Corral are measured the same way.
//!
//! ```text
//!   cli::run ─► load / suite / fill / fanout / failover ─► Record ─► table row
//!                   │  N sessions (corral-client),             └─► JSON line ─► ratio
//!                   │  K requests in flight each
//!                   └─► /proc/<pid> (RSS, CPU) and four-letter words (srvr, mntr)
//! ```
//!
//! Scenarios: [`load`] (create / set / get / exists / mixed at N x K), [`fill`] (1M znodes:
//! fill time, RSS), [`fanout`] (10k watchers on one node), [`failover`] (SIGKILL the leader
//! under a writer; needs an ensemble) and the standard set in [`suite`]. `bench/compare.sh`
//! runs the set against Apache ZooKeeper and Corral and prints [`ratio`] tables.
//!
//! The binary is a thin `main` over [`cli::run`]; tests call the `run_*` functions.

pub mod cli;
pub mod coldstart;
pub mod failover;
pub mod fanout;
pub mod fill;
pub mod fourlw;
pub mod load;
pub mod procfs;
pub mod ratio;
pub mod record;
pub mod sessions;
pub mod stats;
pub mod suite;

pub use cli::{run, Cli};
pub use load::{run_load, LoadConfig, LoadReport, Op};
pub use record::Record;

/// The server under test, as every scenario takes it.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct Target {
    /// Connect string of the server(s): `host:port[,host:port...]`.
    #[arg(long, default_value = "127.0.0.1:2181")]
    pub servers: String,
    /// PIDs of the (local) server processes, to report their RSS and CPU time from /proc
    /// (comma-separated; an ensemble's figures are the sums over its members).
    #[arg(long, value_delimiter = ',')]
    pub server_pid: Vec<u32>,
    /// Label of the server in the output (`zookeeper`, `corral`, ...).
    #[arg(long, default_value = "server")]
    pub label: String,
    /// Round number in the output, for repeated A/B runs.
    #[arg(long, default_value_t = 0)]
    pub round: u32,
}

impl Target {
    /// A target of `servers` with no PID, label `server`, round 0.
    pub fn new(servers: impl Into<String>) -> Self {
        Target {
            servers: servers.into(),
            server_pid: Vec::new(),
            label: "server".to_owned(),
            round: 0,
        }
    }

    /// The summed RSS and CPU time of the server processes (`None` without PIDs).
    ///
    /// # Errors
    ///
    /// When a PID names no readable process.
    pub fn sample_servers(&self) -> anyhow::Result<Option<procfs::ProcessSample>> {
        procfs::sample_sum(&self.server_pid)
    }

    /// The first `host:port` of the connect string (for four-letter words).
    pub fn first_server(&self) -> &str {
        self.servers
            .split(['/', ','])
            .next()
            .unwrap_or(&self.servers)
    }
}
