//! `corral-server`: run a ZooKeeper-compatible server.
//!
//! With no arguments it serves 127.0.0.1:2181 with its data in ./corral-data.
//! `corral-server --config zoo.cfg` reads an Apache ZooKeeper configuration file unchanged.
//!
//! Maintenance subcommands work on the files of a stopped or running server:
//! `corral-server purge [--config F | --data-dir D [--data-log-dir L]] [-n N]` keeps the N
//! newest snapshots and the log segments they need; `corral-server log-dump <log.X> [--json]`
//! prints each logged transaction; `corral-server snapshot-dump <snapshot.X> [--json]` prints
//! a snapshot's summary.

use clap::{Parser, Subcommand};
use corral_server::config::ServerConfig;
use corral_server::server::Server;
use corral_server::storage::{self, StorageConfig};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// Allocations cross threads on the write path (a request is decoded on one worker and
/// freed after it is applied on another, peer links hand buffers to the node loop); glibc's
/// arenas pay for that with consolidation and locking, which the ensemble benchmarks show
/// as a fifth of the server's CPU. mimalloc's per-page free lists do not.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A ZooKeeper-compatible coordination server.
#[derive(Debug, Parser)]
#[command(
    name = "corral-server",
    version,
    args_conflicts_with_subcommands = true
)]
struct Args {
    /// A maintenance command instead of running the server.
    #[command(subcommand)]
    command: Option<Command>,
    /// A zoo.cfg-format configuration file.
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// The configuration file, as Apache ZooKeeper's QuorumPeerMain takes it.
    #[arg(value_name = "ZOO_CFG", conflicts_with = "config")]
    config_positional: Option<PathBuf>,
    /// Client port (overrides clientPort).
    #[arg(long)]
    port: Option<u16>,
    /// Address to listen on (overrides clientPortAddress).
    #[arg(long)]
    address: Option<IpAddr>,
    /// Data directory (overrides dataDir).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Tick length in ms (overrides tickTime).
    #[arg(long)]
    tick_time: Option<u32>,
    /// Connections allowed per client address, 0 for no limit (overrides maxClientCnxns).
    #[arg(long)]
    max_client_cnxns: Option<u32>,
    /// Run an ensemble of N servers in this process on 127.0.0.1 (client ports from --port,
    /// default 2181, upwards; quorum ports from 2888, election ports from 3888), each with its
    /// data in <data-dir>/serverN. For development; production members run one per host.
    #[arg(long, value_name = "N", conflicts_with_all = ["config", "config_positional"])]
    local_ensemble: Option<u16>,
}

/// Maintenance commands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Remove old snapshots and log segments, keeping the N newest snapshots and the logs
    /// they need.
    Purge {
        /// Take dataDir, dataLogDir and autopurge.snapRetainCount from this zoo.cfg.
        #[arg(long, short = 'c', conflicts_with_all = ["data_dir", "data_log_dir"])]
        config: Option<PathBuf>,
        /// The data directory (snapshots, and the log unless --data-log-dir is given).
        #[arg(long, required_unless_present = "config")]
        data_dir: Option<PathBuf>,
        /// The transaction log directory.
        #[arg(long, requires = "data_dir")]
        data_log_dir: Option<PathBuf>,
        /// Snapshots to keep (at least 3, as ZooKeeper's PurgeTxnLog); default
        /// autopurge.snapRetainCount from the configuration, else 3.
        #[arg(short = 'n', long = "count")]
        count: Option<u32>,
    },
    /// Print every transaction in a log segment.
    LogDump {
        /// A `log.<zxid>` file.
        file: PathBuf,
        /// One JSON document instead of text lines.
        #[arg(long)]
        json: bool,
    },
    /// Print a snapshot's summary: zxid, nodes, sessions, digest, data size.
    SnapshotDump {
        /// A `snapshot.<zxid>` file.
        file: PathBuf,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn run_command(cmd: Command) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    let result = match cmd {
        Command::LogDump { file, json } => storage::inspect::dump_log(&file, json, &mut stdout),
        Command::SnapshotDump { file, json } => {
            storage::inspect::dump_snapshot(&file, json, &mut stdout)
        }
        Command::Purge {
            config,
            data_dir,
            data_log_dir,
            count,
        } => {
            let cfg = match config {
                Some(path) => match ServerConfig::from_file(&path) {
                    Ok(parsed) => parsed.config,
                    Err(e) => {
                        eprintln!("corral-server: {e}");
                        return ExitCode::from(2);
                    }
                },
                None => ServerConfig {
                    data_dir: data_dir.unwrap_or_default(),
                    data_log_dir,
                    ..ServerConfig::default()
                },
            };
            let storage_cfg = StorageConfig::from_server_config(&cfg);
            let n = count.unwrap_or(storage_cfg.snap_retain_count);
            if n < 3 {
                eprintln!("corral-server: purge needs -n of at least 3 (got {n})");
                return ExitCode::from(2);
            }
            storage::purge::purge(&storage_cfg.data_dir, &storage_cfg.data_log_dir, n as usize).map(
                |report| {
                    for f in &report.removed {
                        println!("removed {}", f.display());
                    }
                    println!(
                        "kept {} snapshot(s); removed {} file(s)",
                        report.kept_snapshots.len(),
                        report.removed.len()
                    );
                },
            )
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("corral-server: {e}");
            ExitCode::from(1)
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CORRAL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if let Some(cmd) = args.command {
        return run_command(cmd);
    }
    let mut cfg = match args.config.as_ref().or(args.config_positional.as_ref()) {
        Some(path) => match ServerConfig::from_file(path) {
            Ok(parsed) => parsed.config,
            Err(e) => {
                eprintln!("corral-server: {e}");
                return ExitCode::from(2);
            }
        },
        None => ServerConfig::default(),
    };
    if let Some(p) = args.port {
        cfg.client_port = p;
    }
    if let Some(a) = args.address {
        cfg.client_port_address = a;
    }
    if let Some(d) = args.data_dir {
        cfg.data_dir = d;
    }
    if let Some(t) = args.tick_time {
        cfg.tick_time_ms = t;
    }
    if let Some(m) = args.max_client_cnxns {
        cfg.max_client_cnxns = m;
    }
    if let Some(n) = args.local_ensemble {
        return run_local_ensemble(n, cfg);
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("corral-server: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(async move {
        let server = match Server::start(cfg).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("corral-server: {e}");
                return ExitCode::from(1);
            }
        };
        let token = server.shutdown_token();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("signal received; shutting down");
            token.cancel();
        });
        server.wait().await;
        ExitCode::SUCCESS
    })
}

/// The configurations of a local pseudo-ensemble of `n` members derived from `base`.
fn local_ensemble_configs(n: u16, base: &ServerConfig) -> Vec<ServerConfig> {
    use corral_server::config::{PeerType, ServerSpec};
    let servers: std::collections::BTreeMap<u64, ServerSpec> = (1..=n)
        .map(|i| {
            (
                u64::from(i),
                ServerSpec {
                    host: "127.0.0.1".into(),
                    quorum_port: 2887 + i,
                    election_port: 3887 + i,
                    peer_type: PeerType::Participant,
                    client: None,
                },
            )
        })
        .collect();
    (1..=n)
        .map(|i| {
            let mut cfg = base.clone();
            cfg.client_port = base.client_port + i - 1;
            cfg.client_port_address = "127.0.0.1".parse().expect("loopback");
            cfg.data_dir = base.data_dir.join(format!("server{i}"));
            cfg.data_log_dir = None;
            cfg.servers = servers.clone();
            cfg.my_id = Some(u64::from(i));
            cfg
        })
        .collect()
}

fn run_local_ensemble(n: u16, base: ServerConfig) -> ExitCode {
    if n == 0 || u32::from(base.client_port) + u32::from(n) > 65_536 {
        eprintln!("corral-server: --local-ensemble needs 1 or more servers and free client ports");
        return ExitCode::from(2);
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("corral-server: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(async move {
        let mut servers = Vec::new();
        for cfg in local_ensemble_configs(n, &base) {
            let port = cfg.client_port;
            match Server::start(cfg).await {
                Ok(s) => servers.push(s),
                Err(e) => {
                    eprintln!("corral-server: server on port {port}: {e}");
                    for s in servers {
                        s.shutdown().await;
                    }
                    return ExitCode::from(1);
                }
            }
        }
        let list: Vec<String> = servers.iter().map(|s| s.addr().to_string()).collect();
        tracing::info!(connect = %list.join(","), "local ensemble started");
        let tokens: Vec<_> = servers.iter().map(|s| s.shutdown_token()).collect();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("signal received; shutting down");
            for t in tokens {
                t.cancel();
            }
        });
        for s in servers {
            s.wait().await;
        }
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
