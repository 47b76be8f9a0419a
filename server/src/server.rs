//! Assembly: binds the listener, starts the node loop and the connection tasks, and stops
//! them on request.

use crate::config::ServerConfig;
use crate::net::{self, NetConfig};
use crate::node::{Node, Quorum, PEER_TICK_MS};
use crate::peer::link::{FaultHook, LinkConfig};
use crate::session::SessionTracker;
use crate::storage::{self, StorageConfig};
use corral_zab::{Config as ZabConfig, Durable, Peer};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// Why a server could not start or had to stop.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The client port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The stored state could not be recovered.
    #[error("storage: {0}")]
    Storage(#[from] crate::storage::StorageError),
    /// The quorum settings are unusable (no myid, own server missing, bad address).
    #[error("ensemble configuration: {0}")]
    Quorum(String),
    /// The data directory could not be prepared.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// A running server.
///
/// ```no_run
/// # async fn demo() -> Result<(), corral_server::server::ServerError> {
/// use corral_server::{config::ServerConfig, server::Server};
/// let mut cfg = ServerConfig::default();
/// cfg.client_port = 0; // any free port
/// let server = Server::start(cfg).await?;
/// println!("serving on {}", server.addr());
/// server.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    shutdown: CancellationToken,
    node: JoinHandle<()>,
    listener: JoinHandle<()>,
}

impl Server {
    /// Binds the client port and starts serving.
    ///
    /// # Errors
    /// [`ServerError::Bind`] when the port is taken, [`ServerError::DataDir`] when the data
    /// directory cannot be created.
    pub async fn start(cfg: ServerConfig) -> Result<Server, ServerError> {
        Self::start_with_faults(cfg, None).await
    }

    /// As [`Server::start`], with a fault hook on the peer links (for ensemble tests).
    ///
    /// # Errors
    /// As [`Server::start`].
    pub async fn start_with_faults(
        cfg: ServerConfig,
        faults: Option<Arc<crate::peer::link::FaultHook>>,
    ) -> Result<Server, ServerError> {
        for dir in std::iter::once(&cfg.data_dir).chain(cfg.data_log_dir.as_ref()) {
            std::fs::create_dir_all(dir).map_err(|source| ServerError::DataDir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let addr = cfg.client_addr();
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| ServerError::Bind { addr, source })?;
        let shutdown = CancellationToken::new();
        let clock_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let (log_tx, log_rx) = mpsc::unbounded_channel();
        let storage_cfg = StorageConfig::from_server_config(&cfg);
        let (log, recovered) = storage::open(&storage_cfg, log_tx.clone())?;
        let quorum_setup = if cfg.is_quorum() {
            Some(quorum_setup(&cfg, &recovered, faults).await?)
        } else {
            None
        };
        let my_id = quorum_setup.as_ref().map_or(1, |q| q.my_id);
        let mut sessions = SessionTracker::new(cfg.tick_time_ms, my_id, clock_ms);
        // Recovered sessions get a full timeout from now to reconnect.
        for (id, timeout) in &recovered.sessions {
            sessions.add(*id, *timeout, 0);
        }
        info!(
            zxid = format_args!("0x{:x}", recovered.tree.last_zxid()),
            nodes = recovered.tree.node_count(),
            sessions = recovered.sessions.len(),
            "state recovered"
        );
        let (node_tx, node_rx) = mpsc::channel(4096);
        let wl_cfg = cfg.clone();
        let net_cfg = NetConfig {
            max_buffer: cfg.max_buffer,
            max_client_cnxns: cfg.max_client_cnxns,
            allows: Arc::new(move |w: &str| wl_cfg.allows_four_letter_word(w)),
            outstanding_per_conn: (cfg.global_outstanding_limit as usize).max(1),
            sessionless_timeout: Duration::from_secs(10),
        };
        let (quorum, links) = match quorum_setup {
            Some(q) => (Some(q.quorum), Some((q.listener, q.link_cfg))),
            None => (None, None),
        };
        if let Some((listener, link_cfg)) = links {
            tokio::spawn(crate::peer::link::run(
                listener,
                link_cfg,
                node_tx.clone(),
                shutdown.clone(),
            ));
        }
        let node = Node::new(
            cfg,
            recovered.tree,
            sessions,
            log,
            log_tx,
            quorum,
            node_tx.clone(),
        );
        let node = tokio::spawn(node.run(node_rx, log_rx, shutdown.clone()));
        let listener = tokio::spawn(net::serve(listener, node_tx, net_cfg, shutdown.clone()));
        info!(%addr, "serving clients");
        Ok(Server {
            addr,
            shutdown,
            node,
            listener,
        })
    }

    /// The bound client address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A token that stops the server when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops accepting, closes every connection and waits for the loops to end.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.listener.await;
        let _ = self.node.await;
    }

    /// Waits until the server stops (after [`Server::shutdown_token`] is cancelled, or a
    /// fatal error).
    pub async fn wait(self) {
        let _ = self.node.await;
        self.shutdown.cancel();
        let _ = self.listener.await;
    }
}

struct QuorumSetup {
    my_id: u64,
    quorum: Quorum,
    listener: TcpListener,
    link_cfg: LinkConfig,
}

fn resolve(host: &str, port: u16) -> Result<SocketAddr, ServerError> {
    let h = if host == "localhost" {
        "127.0.0.1"
    } else {
        host
    };
    h.parse::<std::net::IpAddr>()
        .map(|ip| SocketAddr::new(ip, port))
        .map_err(|_| ServerError::Quorum(format!("{host}: not an IP address")))
}

/// Prepares quorum mode: binds the election port, reads the epochs, builds the ZAB core.
async fn quorum_setup(
    cfg: &ServerConfig,
    recovered: &crate::storage::Recovered,
    faults: Option<Arc<FaultHook>>,
) -> Result<QuorumSetup, ServerError> {
    let my_id = cfg
        .my_id
        .ok_or_else(|| ServerError::Quorum("no myid: write it to <dataDir>/myid".into()))?;
    let me = cfg
        .servers
        .get(&my_id)
        .ok_or_else(|| ServerError::Quorum(format!("server.{my_id} is not configured")))?;
    let addr = resolve(&me.host, me.election_port)?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })?;
    let mut peers = BTreeMap::new();
    let mut voters = BTreeSet::new();
    let mut observers = BTreeSet::new();
    for (id, spec) in &cfg.servers {
        if spec.peer_type == crate::config::PeerType::Observer {
            observers.insert(*id);
        } else {
            voters.insert(*id);
        }
        if *id != my_id {
            peers.insert(*id, resolve(&spec.host, spec.election_port)?);
        }
    }
    let ticks = |n: u32| (u64::from(n) * u64::from(cfg.tick_time_ms) / PEER_TICK_MS).max(2);
    let zab = ZabConfig {
        id: my_id,
        voters,
        observers,
        init_limit: ticks(cfg.init_limit),
        sync_limit: ticks(cfg.sync_limit),
        finalize_wait: 2,
        resend: 5,
        log_window: cfg.commit_log_count,
    };
    let (accepted_epoch, current_epoch) =
        crate::peer::epochs::read(&cfg.data_dir).map_err(|e| {
            ServerError::Quorum(format!("epoch files in {}: {e}", cfg.data_dir.display()))
        })?;
    let durable = Durable {
        accepted_epoch,
        current_epoch,
        last_zxid: recovered.tree.last_zxid(),
        recent: Vec::new(),
    };
    info!(
        my_id,
        accepted_epoch,
        current_epoch,
        zxid = format_args!("0x{:x}", durable.last_zxid),
        "joining the ensemble"
    );
    let quorum = Quorum::new(Peer::new(zab, durable), cfg.data_dir.clone());
    Ok(QuorumSetup {
        my_id,
        quorum,
        listener,
        link_cfg: LinkConfig {
            my_id,
            peers,
            faults,
        },
    })
}
