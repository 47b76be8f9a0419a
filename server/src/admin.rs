//! Four-letter words (`ruok`, `srvr`, `stat`, `mntr`, `conf`, `cons`, `envi`, `wchs`, `wchc`,
//! `wchp`, `dump`, `dirs`, `isro`, ...) with Apache ZooKeeper's output formats.

use crate::config::ServerConfig;
use crate::node::ServerStats;
use crate::session::SessionTracker;
use crate::tree::DataTree;
use crate::watch::WatchManager;
use std::fmt::Write;
use std::net::SocketAddr;
use std::time::Instant;

/// The ZooKeeper version we report, so version-sniffing clients enable 3.8 features.
pub const VERSION: &str = concat!(
    "3.8.0-corral-",
    env!("CARGO_PKG_VERSION"),
    ", built on 01/01/2026 00:00 GMT"
);

/// Every four-letter word ZooKeeper knows.
pub const WORDS: [&str; 18] = [
    "conf", "cons", "crst", "dirs", "dump", "envi", "gtmk", "ruok", "stmk", "srst", "srvr", "stat",
    "wchc", "wchp", "wchs", "mntr", "isro", "hash",
];

/// Per-connection figures for `cons` and `stat`.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// Connection id (watches are keyed by it).
    pub conn_id: u64,
    /// Remote address.
    pub peer: SocketAddr,
    /// Requests received.
    pub received: u64,
    /// Replies and events sent.
    pub sent: u64,
    /// Session id, 0 before the handshake.
    pub session: i64,
    /// Negotiated timeout.
    pub timeout_ms: i32,
    /// Short name of the last operation.
    pub last_op: &'static str,
    /// Last reply's xid.
    pub last_cxid: i32,
    /// Last reply's zxid.
    pub last_zxid: i64,
    /// When the connection was made, ms since the epoch.
    pub established_ms: i64,
}

impl Default for ConnInfo {
    fn default() -> Self {
        ConnInfo {
            conn_id: 0,
            peer: SocketAddr::from(([0, 0, 0, 0], 0)),
            received: 0,
            sent: 0,
            session: 0,
            timeout_ms: 0,
            last_op: "NA",
            last_cxid: 0,
            last_zxid: 0,
            established_ms: 0,
        }
    }
}

/// A read-only view of the server for rendering.
pub struct AdminView<'a> {
    /// Configuration.
    pub cfg: &'a ServerConfig,
    /// The tree.
    pub tree: &'a DataTree,
    /// Watches.
    pub watches: &'a WatchManager,
    /// Sessions.
    pub sessions: &'a SessionTracker,
    /// Counters.
    pub stats: &'a ServerStats,
    /// Connections.
    pub conns: Vec<ConnInfo>,
    /// Requests in flight.
    pub outstanding: usize,
    /// Start of the process.
    pub started: Instant,
    /// `standalone`, `leader`, `follower`, `observer`.
    pub mode: &'static str,
}

/// Renders the reply to `cmd` (whitelist already checked by the caller).
pub fn render(cmd: &str, v: &AdminView<'_>) -> String {
    match cmd {
        "ruok" => "imok".into(),
        "isro" => "rw".into(),
        "srvr" => format!("Zookeeper version: {VERSION}\n{}", server_block(v)),
        "stat" => {
            let mut s = format!("Zookeeper version: {VERSION}\nClients:\n");
            for c in &v.conns {
                let _ = writeln!(
                    s,
                    " /{}[1](queued=0,recved={},sent={})",
                    c.peer, c.received, c.sent
                );
            }
            s.push('\n');
            s.push_str(&server_block(v));
            s
        }
        "cons" => {
            let mut s = String::new();
            for c in &v.conns {
                if c.session == 0 {
                    let _ = writeln!(
                        s,
                        " /{}[0](queued=0,recved={},sent={})",
                        c.peer, c.received, c.sent
                    );
                } else {
                    let _ = writeln!(
                        s,
                        " /{}[1](queued=0,recved={},sent={},sid=0x{:x},lop={},est={},to={},lcxid=0x{:x},lzxid=0x{:x},lresp={},llat=0,minlat={},avglat={},maxlat={})",
                        c.peer, c.received, c.sent, c.session, c.last_op, c.established_ms,
                        c.timeout_ms, c.last_cxid, c.last_zxid, c.established_ms,
                        v.stats.min_latency, avg(v.stats) as u64, v.stats.max_latency
                    );
                }
            }
            s.push('\n');
            s
        }
        "conf" => v.cfg.render_conf(
            dir_size(&v.cfg.data_dir),
            dir_size(v.cfg.data_log_dir.as_ref().unwrap_or(&v.cfg.data_dir)),
        ),
        "envi" => envi(v),
        "mntr" => mntr(v),
        "wchs" => {
            let (conns, paths, total) = v.watches.data_summary();
            format!("{conns} connections watching {paths} paths\nTotal watches:{total}\n")
        }
        "wchc" => {
            let mut s = String::new();
            for (conn, paths) in v.watches.by_connection() {
                let _ = writeln!(s, "0x{:x}", session_of(v, conn));
                for p in paths {
                    let _ = writeln!(s, "\t{p}");
                }
            }
            s.push('\n');
            s
        }
        "wchp" => {
            let mut s = String::new();
            for (path, conns) in v.watches.by_path() {
                let _ = writeln!(s, "{path}");
                for c in conns {
                    let _ = writeln!(s, "\t0x{:x}", session_of(v, c));
                }
            }
            s.push('\n');
            s
        }
        "dump" => {
            let mut s = String::from("SessionTracker dump:\n");
            let buckets = v.sessions.buckets();
            let _ = writeln!(
                s,
                "Session Sets ({})/({}):",
                buckets.len(),
                v.sessions.len()
            );
            for (at, ids) in buckets {
                let _ = writeln!(s, "{} expire at {}:", ids.len(), at);
                for id in ids {
                    let _ = writeln!(s, "\t0x{id:x}");
                }
            }
            let _ = writeln!(s, "ephemeral nodes dump:");
            let eph = v.tree.all_ephemerals();
            let _ = writeln!(s, "Sessions with Ephemerals ({}):", eph.len());
            let mut owners: Vec<_> = eph.iter().collect();
            owners.sort();
            for (id, paths) in owners {
                let _ = writeln!(s, "0x{id:x}:");
                for p in paths {
                    let _ = writeln!(s, "\t{p}");
                }
            }
            let _ = writeln!(s, "Connections dump:");
            let _ = writeln!(s, "Connections Sets (0)/(0):");
            s
        }
        "dirs" => format!(
            "datadir_size: {}\nlogdir_size: {}\n",
            dir_size(&v.cfg.data_dir),
            dir_size(v.cfg.data_log_dir.as_ref().unwrap_or(&v.cfg.data_dir))
        ),
        "crst" => "Connection stats reset.\n".into(),
        "srst" => "Server stats reset.\n".into(),
        "gtmk" | "stmk" => "0\n".into(),
        "hash" => String::new(),
        _ => String::new(),
    }
}

fn session_of(v: &AdminView<'_>, conn: u64) -> i64 {
    v.conns
        .iter()
        .find(|c| c.conn_id == conn)
        .map_or(0, |c| c.session)
}

fn avg(s: &ServerStats) -> f64 {
    if s.count == 0 {
        0.0
    } else {
        s.total_latency as f64 / s.count as f64
    }
}

fn server_block(v: &AdminView<'_>) -> String {
    format!(
        "Latency min/avg/max: {}/{:.4}/{}\nReceived: {}\nSent: {}\nConnections: {}\nOutstanding: {}\nZxid: 0x{:x}\nMode: {}\nNode count: {}\n",
        v.stats.min_latency,
        avg(v.stats),
        v.stats.max_latency,
        v.stats.received,
        v.stats.sent,
        v.conns.len(),
        v.outstanding,
        v.tree.last_zxid(),
        v.mode,
        v.tree.node_count()
    )
}

fn envi(v: &AdminView<'_>) -> String {
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_else(|_| "localhost".into());
    let mut s = String::from("Environment:\n");
    let _ = writeln!(s, "zookeeper.version={VERSION}");
    let _ = writeln!(s, "host.name={}", host.trim());
    let _ = writeln!(
        s,
        "java.version=none (corral {})",
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(s, "java.vendor=none");
    let _ = writeln!(s, "java.home=none");
    let _ = writeln!(s, "java.class.path=none");
    let _ = writeln!(s, "java.library.path=none");
    let _ = writeln!(s, "java.io.tmpdir={}", std::env::temp_dir().display());
    let _ = writeln!(s, "java.compiler=<NA>");
    let _ = writeln!(s, "os.name={}", std::env::consts::OS);
    let _ = writeln!(s, "os.arch={}", std::env::consts::ARCH);
    let _ = writeln!(s, "os.version=");
    let _ = writeln!(s, "user.name={}", std::env::var("USER").unwrap_or_default());
    let _ = writeln!(s, "user.home={}", std::env::var("HOME").unwrap_or_default());
    let _ = writeln!(s, "user.dir={cwd}");
    let rss = rss_bytes();
    let _ = writeln!(s, "os.memory.free=0MB");
    let _ = writeln!(s, "os.memory.max={}MB", rss / (1 << 20));
    let _ = writeln!(s, "os.memory.total={}MB", rss / (1 << 20));
    let _ = v;
    s
}

fn mntr(v: &AdminView<'_>) -> String {
    let (_, _, watch_count) = v.watches.data_summary();
    let (open_fds, max_fds) = fd_counts();
    let rows: Vec<(&str, String)> = vec![
        ("version", VERSION.into()),
        ("server_state", v.mode.into()),
        ("ephemerals_count", v.tree.ephemeral_count().to_string()),
        ("num_alive_connections", v.conns.len().to_string()),
        ("avg_latency", format!("{:.4}", avg(v.stats))),
        ("outstanding_requests", v.outstanding.to_string()),
        ("znode_count", v.tree.node_count().to_string()),
        ("global_sessions", v.sessions.len().to_string()),
        ("non_mtls_remote_conn_count", "0".into()),
        ("last_client_response_size", "-1".into()),
        ("packets_sent", v.stats.sent.to_string()),
        ("packets_received", v.stats.received.to_string()),
        ("max_client_response_size", "-1".into()),
        ("connection_drop_probability", "0.0".into()),
        ("watch_count", watch_count.to_string()),
        ("auth_failed_count", "0".into()),
        ("min_latency", v.stats.min_latency.to_string()),
        ("max_file_descriptor_count", max_fds.to_string()),
        (
            "approximate_data_size",
            v.tree.approximate_data_size().to_string(),
        ),
        ("open_file_descriptor_count", open_fds.to_string()),
        ("local_sessions", "0".into()),
        ("uptime", v.started.elapsed().as_millis().to_string()),
        ("max_latency", v.stats.max_latency.to_string()),
        ("outstanding_tls_handshake", "0".into()),
        ("min_client_response_size", "-1".into()),
        ("fsync_threshold_exceed_count", "0".into()),
    ];
    let mut s = String::new();
    for (k, val) in rows {
        let _ = writeln!(s, "zk_{k}\t{val}");
    }
    s
}

fn dir_size(p: &std::path::Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn fd_counts() -> (usize, u64) {
    let open = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0);
    let max = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0);
    (open, max)
}

/// Resident set size of this process, from /proc.
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}
