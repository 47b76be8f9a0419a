//! `corral-server`: run a ZooKeeper-compatible server.
//!
//! With no arguments it serves 127.0.0.1:2181 with its data in ./corral-data.
//! `corral-server --config zoo.cfg` reads an Apache ZooKeeper configuration file unchanged.

use clap::Parser;
use corral_server::config::ServerConfig;
use corral_server::server::Server;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// A ZooKeeper-compatible coordination server.
#[derive(Debug, Parser)]
#[command(name = "corral-server", version)]
struct Args {
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
