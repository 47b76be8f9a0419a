//! Test support shared by Corral's suites (dev-only, not published): a private Apache
//! ZooKeeper 3.8 process from the Debian packages, to run a suite against the real thing,
//! and small helpers.
//!
//! ```no_run
//! # async fn demo() -> Result<(), String> {
//! let zk = corral_testkit::ZkProcess::start(corral_testkit::ZkOptions::default()).await?;
//! println!("Apache ZooKeeper serves on {}", zk.addr());
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ZK_JAR: &str = "/usr/share/java/zookeeper.jar";

/// How to run the private ZooKeeper.
#[derive(Debug, Clone, Default)]
pub struct ZkOptions {
    /// Enable TTL nodes (`zookeeper.extendedTypesEnabled`).
    pub extended_types: bool,
}

/// A private Apache ZooKeeper (standalone) process on a free loopback port and a temporary
/// data directory; killed on drop, restartable on the same port and data directory.
#[derive(Debug)]
pub struct ZkProcess {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    options: ZkOptions,
}

impl ZkProcess {
    /// Starts one and waits (bounded) until it serves.
    ///
    /// # Errors
    /// Why it cannot run here (no java, no ZooKeeper jar) or did not start.
    pub async fn start(options: ZkOptions) -> Result<ZkProcess, String> {
        if !Path::new(ZK_JAR).exists() {
            return Err(format!("{ZK_JAR} not found (apt install zookeeper)"));
        }
        if !command_works("java", &["-version"]) {
            return Err("no working `java` on PATH".into());
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let port = free_port()?;
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
        let mut cfg = format!(
            "tickTime=2000\ndataDir={}\nclientPortAddress=127.0.0.1\nclientPort={port}\n\
             admin.enableServer=false\n4lw.commands.whitelist=*\nmaxClientCnxns=0\n",
            data.display()
        );
        if options.extended_types {
            cfg.push_str("extendedTypesEnabled=true\n");
        }
        std::fs::write(dir.path().join("zoo.cfg"), cfg).map_err(|e| e.to_string())?;
        let mut zk = ZkProcess {
            child: None,
            port,
            dir,
            options,
        };
        zk.launch().await?;
        Ok(zk)
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("zookeeper.log")
    }

    /// Starts the JVM (again) and waits, bounded, until it answers `srvr` with a mode.
    ///
    /// # Errors
    /// It exited or did not serve within 60 s (with the end of its log).
    pub async fn launch(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "server already running");
        let mut classpath = ZK_JAR.to_string();
        if let Some(logger) = first_existing(&[
            "/usr/share/java/slf4j-nop.jar",
            "/usr/share/java/slf4j-simple.jar",
        ]) {
            classpath = format!("{classpath}:{logger}");
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| e.to_string())?;
        let mut cmd = Command::new("java");
        cmd.args(["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"]);
        if self.options.extended_types {
            cmd.arg("-Dzookeeper.extendedTypesEnabled=true");
        }
        let child = cmd
            .args([
                // Reap containers and TTL nodes quickly, so tests can wait for it.
                "-Dznode.container.checkIntervalMs=200",
                "-Dzookeeper.admin.enableServer=false",
                "-cp",
                &classpath,
                "org.apache.zookeeper.server.quorum.QuorumPeerMain",
            ])
            .arg(self.dir.path().join("zoo.cfg"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start java: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(reply) = four_letter_word(self.port, b"srvr").await {
                if reply.contains("Mode:") {
                    return Ok(());
                }
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return Err(format!("zookeeper exited ({status}): {}", self.log_tail()));
            }
            if Instant::now() > deadline {
                self.stop();
                return Err(format!(
                    "zookeeper did not start in 60 s: {}",
                    self.log_tail()
                ));
            }
            // A JVM has no readiness signal to wait on: poll, bounded by the deadline.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills the JVM (like a crash); the data directory and port are kept.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The last 2000 bytes of its log.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let start = log.len().saturating_sub(2000);
        log.get(start..).unwrap_or_default().to_string()
    }
}

impl Drop for ZkProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A free loopback port outside the ephemeral range, so that a stopped server can have it
/// back (see `corral_server::testing::free_port`).
///
/// # Errors
/// When no port can be bound.
pub fn free_port() -> Result<u16, String> {
    corral_server::testing::free_port().map_err(|e| e.to_string())
}

/// Sends a four-letter word; `None` if the server does not answer within 2 s.
pub async fn four_letter_word(port: u16, word: &[u8; 4]) -> Option<String> {
    let ask = async {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        s.write_all(word).await.ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).await.ok()?;
        Some(out)
    };
    tokio::time::timeout(Duration::from_secs(2), ask)
        .await
        .ok()
        .flatten()
}

/// A name unique to this process and call.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The first of `paths` that exists.
pub fn first_existing(paths: &[&str]) -> Option<String> {
    paths
        .iter()
        .find(|p| Path::new(p).exists())
        .map(|p| p.to_string())
}

/// Whether `program args` runs and exits successfully.
pub fn command_works(program: &str, args: &[&str]) -> bool {
    matches!(
        Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status(),
        Ok(s) if s.success()
    )
}
