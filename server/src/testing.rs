//! In-process servers for integration tests (ours and our users').
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let mut server = corral_server::testing::TestingServer::start().await?;
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
        let pick = cfg.client_port == 0;
        let mut attempt = 0;
        let server = loop {
            if pick {
                cfg.client_port = free_port()?;
            }
            match Server::start(cfg.clone()).await {
                Ok(server) => break server,
                // Another process bound the port between the check and now.
                Err(crate::server::ServerError::Bind { source, .. })
                    if pick && source.kind() == std::io::ErrorKind::AddrInUse && attempt < 5 =>
                {
                    attempt += 1;
                }
                Err(e) => return Err(io_err(e)),
            }
        };
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

/// An in-process ensemble of `corral-server`s on loopback: every member has its own data
/// directory, client port and election port, and can be stopped, restarted and isolated
/// from the others (its peer links cut, as a network partition would).
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// use std::time::Duration;
/// let mut cluster = corral_server::testing::TestingCluster::start(3).await?;
/// let leader = cluster.wait_for_leader(Duration::from_secs(10)).await?;
/// println!("clients connect to {}", cluster.connect_string());
/// cluster.stop(leader).await;                       // the others elect a new leader
/// let next = cluster.wait_for_leader(Duration::from_secs(10)).await?;
/// assert_ne!(next, leader);
/// cluster.restart(leader).await?;                   // it rejoins as a follower
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct TestingCluster {
    members: Vec<Member>,
    faults: std::sync::Arc<crate::peer::link::FaultHook>,
    _dir: TempDir,
}

#[derive(Debug)]
struct Member {
    id: u64,
    cfg: ServerConfig,
    server: Option<Server>,
}

/// A loopback port that is free now and that a restarted server can bind again later.
///
/// Ports the kernel hands out for `bind(0)` come from the ephemeral range, which is also
/// where outgoing connections get their local ports: while a test server is stopped, a
/// client reconnecting elsewhere may take its port number and keep it for as long as that
/// connection lives. So the ports come from just below the ephemeral range (read from
/// `/proc/sys/net/ipv4/ip_local_port_range`), handed out in turn from a point that depends
/// on the process id, each checked by binding it. Where no such range can be had, the
/// kernel picks.
///
/// ```
/// let port = corral_server::testing::free_port()?;
/// let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
/// # drop(listener);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
/// When no port can be bound at all.
pub fn free_port() -> std::io::Result<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let low = ephemeral_low.saturating_sub(16384).max(10000);
    if ephemeral_low > 65535 || ephemeral_low < low + 1024 {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        return Ok(l.local_addr()?.port());
    }
    let span = ephemeral_low - low;
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(2_654_435_761) % span,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..span.min(4096) {
        let port = (low + NEXT.fetch_add(1, Ordering::Relaxed) % span) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl TestingCluster {
    /// Starts `voters` voting members (ids 1..=voters).
    ///
    /// # Errors
    /// When ports or directories cannot be had.
    pub async fn start(voters: usize) -> std::io::Result<TestingCluster> {
        Self::start_with(voters, 0, |_| {}).await
    }

    /// Starts `voters` voting members and `observers` observers (ids after the voters),
    /// after `tweak` adjusted each member's settings.
    ///
    /// # Errors
    /// When ports or directories cannot be had.
    pub async fn start_with(
        voters: usize,
        observers: usize,
        tweak: impl Fn(&mut ServerConfig),
    ) -> std::io::Result<TestingCluster> {
        // Ports are picked free and bound a moment later; another process may take one in
        // between. Then start over with fresh ports.
        let mut attempt = 0;
        loop {
            match Self::try_start(voters, observers, &tweak).await {
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && attempt < 5 => {
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn try_start(
        voters: usize,
        observers: usize,
        tweak: &impl Fn(&mut ServerConfig),
    ) -> std::io::Result<TestingCluster> {
        use crate::config::{PeerType, ServerSpec};
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let root = std::env::temp_dir().join(format!("corral-cluster-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&root)?;
        let total = voters + observers;
        let mut servers = std::collections::BTreeMap::new();
        let mut client_ports = Vec::new();
        for i in 0..total {
            let id = (i + 1) as u64;
            servers.insert(
                id,
                ServerSpec {
                    host: "127.0.0.1".into(),
                    quorum_port: free_port()?,
                    election_port: free_port()?,
                    peer_type: if i < voters {
                        PeerType::Participant
                    } else {
                        PeerType::Observer
                    },
                    client: None,
                },
            );
            client_ports.push(free_port()?);
        }
        let faults = std::sync::Arc::new(crate::peer::link::FaultHook::default());
        let mut members = Vec::new();
        for (i, client_port) in client_ports.into_iter().enumerate() {
            let id = (i + 1) as u64;
            let dir = root.join(format!("server{id}"));
            std::fs::create_dir_all(&dir)?;
            let mut cfg = ServerConfig {
                client_port,
                data_dir: dir,
                four_letter_whitelist: crate::config::FourLetterWhitelist::All,
                extended_types_enabled: true,
                container_check_interval_ms: 100,
                servers: servers.clone(),
                my_id: Some(id),
                init_limit: 10,
                sync_limit: 5,
                ..ServerConfig::default()
            };
            if i >= voters {
                cfg.peer_type = PeerType::Observer;
            }
            tweak(&mut cfg);
            members.push(Member {
                id,
                cfg,
                server: None,
            });
        }
        let mut cluster = TestingCluster {
            members,
            faults,
            _dir: TempDir(root),
        };
        for id in 1..=total as u64 {
            cluster.restart(id).await?;
        }
        Ok(cluster)
    }

    fn member(&self, id: u64) -> &Member {
        &self.members[(id - 1) as usize]
    }

    /// Ids of every member.
    pub fn ids(&self) -> Vec<u64> {
        self.members.iter().map(|m| m.id).collect()
    }

    /// The client address of member `id`.
    pub fn addr(&self, id: u64) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.member(id).cfg.client_port))
    }

    /// `host:port,host:port,...` of every member, for a client's connect string.
    pub fn connect_string(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.cfg.client_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The data directory of member `id`.
    pub fn data_dir(&self, id: u64) -> &Path {
        &self.member(id).cfg.data_dir
    }

    /// Whether member `id` runs.
    pub fn is_running(&self, id: u64) -> bool {
        self.member(id).server.is_some()
    }

    /// Stops member `id` (its connections and links close at once).
    pub async fn stop(&mut self, id: u64) {
        if let Some(s) = self.members[(id - 1) as usize].server.take() {
            s.shutdown().await;
        }
    }

    /// Starts member `id` again on its ports and data directory.
    ///
    /// # Errors
    /// When its ports cannot be bound again.
    pub async fn restart(&mut self, id: u64) -> std::io::Result<()> {
        self.stop(id).await;
        let cfg = self.member(id).cfg.clone();
        let server = Server::start_with_faults(cfg, Some(self.faults.clone()))
            .await
            .map_err(|e| match e {
                crate::server::ServerError::Bind { source, .. }
                    if source.kind() == std::io::ErrorKind::AddrInUse =>
                {
                    source
                }
                other => io_err(other),
            })?;
        self.members[(id - 1) as usize].server = Some(server);
        Ok(())
    }

    /// Cuts member `id` off from the other members (clients can still reach it).
    pub fn isolate(&self, id: u64) {
        self.faults.isolate(id);
    }

    /// Reconnects member `id` to the others.
    pub fn heal(&self, id: u64) {
        self.faults.heal(id);
    }

    /// Silently drops every message between member `id` and the others, its connections
    /// staying open (only timeouts notice), until [`TestingCluster::unmute`].
    pub fn mute(&self, id: u64) {
        self.faults.mute(id);
    }

    /// Stops dropping member `id`'s messages.
    pub fn unmute(&self, id: u64) {
        self.faults.unmute(id);
    }

    /// The `Mode:` member `id` reports (`leader`, `follower`, `observer`), or `None` while it
    /// is not serving or not running.
    pub async fn mode(&self, id: u64) -> Option<String> {
        if !self.is_running(id) {
            return None;
        }
        let text = four_letter(self.addr(id), "srvr").await.ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("Mode: "))
            .map(str::to_owned)
    }

    /// The serving leader, if one member reports `Mode: leader`.
    pub async fn leader(&self) -> Option<u64> {
        for m in &self.members {
            if self.mode(m.id).await.as_deref() == Some("leader") {
                return Some(m.id);
            }
        }
        None
    }

    /// Waits until a leader serves and every running member serves too.
    ///
    /// # Errors
    /// `TimedOut` naming what each member reported.
    pub async fn wait_for_leader(&self, timeout: std::time::Duration) -> std::io::Result<u64> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mut modes = Vec::new();
            for m in &self.members {
                modes.push((m.id, self.is_running(m.id), self.mode(m.id).await));
            }
            let leader = modes
                .iter()
                .find(|(_, _, md)| md.as_deref() == Some("leader"))
                .map(|(id, _, _)| *id);
            let all_serving = modes
                .iter()
                .all(|(_, running, md)| !running || md.is_some());
            if let (Some(l), true) = (leader, all_serving) {
                return Ok(l);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no serving leader within {timeout:?}: {modes:?}"),
                ));
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

impl Drop for TestingCluster {
    fn drop(&mut self) {
        for m in &self.members {
            if let Some(s) = &m.server {
                s.shutdown_token().cancel();
            }
        }
    }
}

/// Sends a four-letter word to `addr` and returns the answer.
///
/// # Errors
/// Connection errors or no answer within two seconds.
pub async fn four_letter(addr: SocketAddr, word: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(word.as_bytes()).await?;
        let mut out = String::new();
        s.read_to_string(&mut out).await?;
        Ok::<_, std::io::Error>(out)
    };
    tokio::time::timeout(std::time::Duration::from_secs(2), fut)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer"))?
}
