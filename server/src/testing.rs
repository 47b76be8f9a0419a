//! In-process servers for integration tests (ours and our users').
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let server = corral_server::testing::TestingServer::start().await?;
//! let connect_string = server.connect_string(); // "127.0.0.1:<port>"
//! // ... point a client at it ...
//! server.stop().await;
//! # Ok(()) }
//! ```

use crate::config::ServerConfig;
use crate::server::Server;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A standalone server on a free loopback port with its own temporary data directory,
/// which can be stopped and restarted on the same port.
#[derive(Debug)]
pub struct TestingServer {
    cfg: ServerConfig,
    addr: SocketAddr,
    server: Option<Server>,
    _dir: Option<TempDir>,
}

/// A directory removed on drop.
#[derive(Debug)]
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl TestingServer {
    /// Starts a server with the default test settings (tickTime 2000, every four-letter
    /// word allowed, TTL nodes enabled, containers swept every 100 ms).
    ///
    /// # Errors
    /// When no port can be bound or the data directory cannot be created.
    pub async fn start() -> std::io::Result<TestingServer> {
        Self::start_with(|_| {}).await
    }

    /// Starts a server after `tweak` adjusted the test settings.
    ///
    /// # Errors
    /// As [`TestingServer::start`].
    pub async fn start_with(
        tweak: impl FnOnce(&mut ServerConfig),
    ) -> std::io::Result<TestingServer> {
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("corral-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let mut cfg = ServerConfig {
            client_port: 0,
            data_dir: dir.clone(),
            four_letter_whitelist: crate::config::FourLetterWhitelist::All,
            extended_types_enabled: true,
            container_check_interval_ms: 100,
            ..ServerConfig::default()
        };
        tweak(&mut cfg);
        let server = Server::start(cfg.clone()).await.map_err(io_err)?;
        let addr = server.addr();
        cfg.client_port = addr.port();
        Ok(TestingServer {
            cfg,
            addr,
            server: Some(server),
            _dir: Some(TempDir(dir)),
        })
    }

    /// The client address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `host:port`, for a client's connect string.
    pub fn connect_string(&self) -> String {
        self.addr.to_string()
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.cfg.data_dir
    }

    /// Whether the server is running.
    pub fn is_running(&self) -> bool {
        self.server.is_some()
    }

    /// Stops the server (connections are closed); [`TestingServer::restart`] brings it back.
    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }

    /// Starts the server again on the same port and data directory.
    ///
    /// # Errors
    /// When the port cannot be bound again.
    pub async fn restart(&mut self) -> std::io::Result<()> {
        self.stop().await;
        let server = Server::start(self.cfg.clone()).await.map_err(io_err)?;
        self.server = Some(server);
        Ok(())
    }
}

impl Drop for TestingServer {
    fn drop(&mut self) {
        if let Some(s) = &self.server {
            s.shutdown_token().cancel();
        }
    }
}
