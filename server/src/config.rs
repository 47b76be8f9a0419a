//! Server configuration, read from Apache ZooKeeper's `zoo.cfg` format.
//!
//! A real `zoo.cfg` parses unchanged. The file is read with `java.util.Properties` rules, the
//! keys are interpreted as `QuorumPeerConfig` interprets them, and the Java system properties
//! ZooKeeper operators put in `zoo.cfg` (`jute.maxbuffer`, `4lw.commands.whitelist`, ...) are
//! accepted with or without their `zookeeper.` prefix.
//!
//! ```text
//!  zoo.cfg ──properties──▶ (line, key, value)* ──apply──▶ ServerConfig ──validate──▶ ParsedConfig
//!           `=` `:` or ws,          known key: value checked,     cross-key rules   { config,
//!           `#` `!` comments,       other key: a warning                              warnings }
//!           `\` continuation
//!
//!  from_file = read the file, parse, and (when server.N lines exist) read <dataDir>/myid
//! ```
//!
//! Everything here is pure except [`ServerConfig::from_file`] and [`ServerConfig::load_myid`],
//! which read files. Nothing resolves host names: addresses are kept as text or must be IP
//! literals (`localhost` is taken as `127.0.0.1`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// `tickTime` when the key is absent. ZooKeeper's own code default is 3000, but every shipped
/// `zoo.cfg` sets 2000, and 2000 is what clients expect.
const DEFAULT_TICK_TIME_MS: u32 = 2000;
const DEFAULT_DATA_DIR: &str = "./corral-data";
const DEFAULT_CLIENT_PORT: u16 = 2181;
/// ZooKeeper keeps at least this many snapshots (`PurgeTxnLog`).
const MIN_SNAP_RETAIN_COUNT: u32 = 3;
/// `SyncRequestProcessor` raises smaller `snapCount` values to 2.
const MIN_SNAP_COUNT: u64 = 2;
/// Java's `Integer.MAX_VALUE`: ZooKeeper reads most keys with `Integer.parseInt`.
const JAVA_INT_MAX: i128 = i32::MAX as i128;
/// Java's `Long.MAX_VALUE`.
const JAVA_LONG_MAX: i128 = i64::MAX as i128;

/// The four-letter words ZooKeeper 3.8 knows (`FourLetterCommands`).
const FOUR_LETTER_WORDS: [&str; 18] = [
    "conf", "cons", "crst", "dirs", "dump", "envi", "gtmk", "ruok", "stmk", "srst", "srvr", "stat",
    "wchc", "wchp", "wchs", "mntr", "isro", "hash",
];

/// Java system properties that we interpret; also accepted as `zookeeper.<key>`.
const SYSPROP_KEYS: [&str; 12] = [
    "extendedTypesEnabled",
    "DigestAuthenticationProvider.superDigest",
    "znode.container.checkIntervalMs",
    "jute.maxbuffer",
    "4lw.commands.whitelist",
    "snapCount",
    "commitLogCount",
    "forceSync",
    "globalOutstandingLimit",
    "preAllocSize",
    "readonlymode.enabled",
    "admin.enableServer",
];

/// Keys ZooKeeper understands that do not change what Corral does; accepted silently.
const IGNORED_KEYS: [&str; 13] = [
    "clientPortListenBacklog",
    "syncEnabled",
    "quorumListenOnAllIPs",
    "connectToLearnerMasterLimit",
    "localSessionsUpgradingEnabled",
    "quorum.cnxn.threads.size",
    "jvm.pause.info-threshold.ms",
    "jvm.pause.warn-threshold.ms",
    "jvm.pause.sleep.time.ms",
    "jvm.pause.monitor",
    "multiAddress.reachabilityCheckTimeoutMs",
    "multiAddress.reachabilityCheckEnabled",
    // The version of a dynamic configuration embedded in the static file.
    "version",
];

/// System properties that only tune ZooKeeper's JVM implementation; accepted silently, with or
/// without the `zookeeper.` prefix.
const IGNORED_SYSPROPS: [&str; 17] = [
    "admin.serverPort",
    "admin.serverAddress",
    "admin.commandURL",
    "admin.idleTimeout",
    "snapshot.trust.empty",
    "snapshot.compression.method",
    "fsync.warningthresholdms",
    "maxResponseCacheSize",
    "maxGetChildrenResponseCacheSize",
    "digest.enabled",
    "audit.enable",
    "serverCnxnFactory",
    "commitLogCount",
    "snapSizeLimitInKb",
    "txnLogSizeLimitInKb",
    "flushDelay",
    "maxCnxns",
];

/// Prefixes of keys for other metrics back ends; accepted silently.
const IGNORED_PREFIXES: [&str; 1] = ["metricsProvider."];

/// Keys that change semantics (security, membership) in ZooKeeper but that Corral does not
/// implement: accepted, with a warning, so nobody believes they are in effect.
const UNSUPPORTED_KEYS: [&str; 9] = [
    "secureClientPort",
    "secureClientPortAddress",
    "sslQuorum",
    "portUnification",
    "sslQuorumReloadCertFiles",
    "observerMasterPort",
    "dynamicConfigFile",
    "oraclePath",
    "multiAddress.enabled",
];

/// Prefixes of unsupported keys (hierarchical quorums, SASL, TLS, auth plug-ins).
const UNSUPPORTED_PREFIXES: [&str; 4] = ["group.", "weight.", "quorum.auth.", "kerberos."];

/// Unsupported system properties; also accepted as `zookeeper.<key>`.
const UNSUPPORTED_SYSPROP_PREFIXES: [&str; 3] = ["ssl.", "authProvider.", "skipACL"];

/// What went wrong while reading a configuration.
///
/// Errors name the key, the value and the (1-based) line where they can; a logical line that
/// continues over several physical lines is reported at its first one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration file or the `myid` file could not be read.
    #[error("cannot read {}: {message}", path.display())]
    Io {
        /// The file that could not be read.
        path: PathBuf,
        /// The I/O error's kind, so callers can tell "not found" apart.
        kind: io::ErrorKind,
        /// The I/O error's text.
        message: String,
    },
    /// The text breaks the Java properties syntax (only a malformed `\uXXXX` escape can).
    #[error("line {line}: {message}")]
    Syntax {
        /// Line of the offending escape.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// A known key has a value that cannot be used.
    #[error("line {line}: invalid value {value:?} for {key}: {reason}")]
    InvalidValue {
        /// Line of the key.
        line: usize,
        /// The key as written in the file.
        key: String,
        /// The value after trimming.
        value: String,
        /// Why the value is refused.
        reason: String,
    },
    /// A `server.N` value given outside a file (e.g. to [`ServerSpec::from_str`]) is malformed.
    #[error("invalid server spec {spec:?}: {reason}")]
    InvalidServerSpec {
        /// The text that was parsed.
        spec: String,
        /// Why it was refused.
        reason: String,
    },
    /// `<dataDir>/myid` is missing in an ensemble, or does not hold a server id.
    #[error("myid file {}: {reason}", path.display())]
    InvalidMyId {
        /// Path of the `myid` file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Settings that are valid one by one contradict each other.
    #[error("invalid configuration: {reason}")]
    Invalid {
        /// The contradiction, naming the keys involved.
        reason: String,
    },
}

impl ConfigError {
    fn io(path: &Path, err: &io::Error) -> Self {
        ConfigError::Io {
            path: path.to_path_buf(),
            kind: err.kind(),
            message: err.to_string(),
        }
    }

    fn invalid(reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            reason: reason.into(),
        }
    }
}

/// The four-letter words a client may run (`4lw.commands.whitelist`).
///
/// # Notable behaviors
///
/// As in ZooKeeper 3.5+, the default allows only `srvr`, and `srvr` is allowed whatever the
/// list says (`zkServer.sh status` depends on it). `isro` is added by
/// [`ServerConfig::allows_four_letter_word`] when read-only mode is enabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FourLetterWhitelist {
    /// `*`: every command.
    All,
    /// Only these commands, plus `srvr`.
    Only(BTreeSet<String>),
}

impl Default for FourLetterWhitelist {
    fn default() -> Self {
        FourLetterWhitelist::Only(BTreeSet::from(["srvr".to_owned()]))
    }
}

impl FourLetterWhitelist {
    /// Parses a `4lw.commands.whitelist` value: a comma list, items trimmed, empty items
    /// skipped, `*` anywhere meaning every command. Never fails, as in ZooKeeper; words are
    /// case-sensitive.
    pub fn parse(value: &str) -> Self {
        let mut words = BTreeSet::from(["srvr".to_owned()]);
        for item in value.split(',').map(java_trim) {
            if item == "*" {
                return FourLetterWhitelist::All;
            }
            if !item.is_empty() {
                words.insert(item.to_owned());
            }
        }
        FourLetterWhitelist::Only(words)
    }

    /// Whether the command `cmd` (e.g. `"ruok"`) may run. `All` answers yes to any word; the
    /// caller decides first whether the 4 bytes are a command at all.
    pub fn allows(&self, cmd: &str) -> bool {
        cmd == "srvr"
            || match self {
                FourLetterWhitelist::All => true,
                FourLetterWhitelist::Only(words) => words.contains(cmd),
            }
    }
}

impl fmt::Display for FourLetterWhitelist {
    /// The value as `4lw.commands.whitelist` would take it: `*` or a comma list.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FourLetterWhitelist::All => f.write_str("*"),
            FourLetterWhitelist::Only(words) => {
                let list: Vec<&str> = words.iter().map(String::as_str).collect();
                f.write_str(&list.join(","))
            }
        }
    }
}

/// Whether a server votes (`participant`) or only follows (`observer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PeerType {
    /// Votes in elections and in write quorums.
    #[default]
    Participant,
    /// Receives the committed stream without voting.
    Observer,
}

impl PeerType {
    /// ZooKeeper's spelling: `participant` or `observer`.
    pub fn as_str(self) -> &'static str {
        match self {
            PeerType::Participant => "participant",
            PeerType::Observer => "observer",
        }
    }

    /// Parses trimmed, case-insensitive `participant` / `observer`, as ZooKeeper does.
    fn parse(s: &str) -> Option<Self> {
        match java_trim(s).to_ascii_lowercase().as_str() {
            "participant" => Some(PeerType::Participant),
            "observer" => Some(PeerType::Observer),
            _ => None,
        }
    }

    /// The `LearnerType` ordinal that the `conf` command prints as `peerType`.
    fn ordinal(self) -> u8 {
        match self {
            PeerType::Participant => 0,
            PeerType::Observer => 1,
        }
    }
}

impl fmt::Display for PeerType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A host (name or IP literal, never resolved here) and a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// Host name or IP literal, IPv6 without brackets.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl fmt::Display for HostPort {
    /// `host:port`, with IPv6 literals in brackets as ZooKeeper writes them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// One ensemble member, from
/// `server.N=host:quorumPort:electionPort[:type][;[clientHost:]clientPort]`.
///
/// `Display` writes ZooKeeper's own form (as in `/zookeeper/config` and the `conf` command):
/// `host:quorumPort:electionPort:participant[;clientHost:clientPort]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerSpec {
    /// Host of the quorum and election ports (name or IP literal, not resolved).
    pub host: String,
    /// Port followers connect to on the leader.
    pub quorum_port: u16,
    /// Port for leader election.
    pub election_port: u16,
    /// Voting member or observer.
    pub peer_type: PeerType,
    /// Client address from the part after `;`; a lone port means host `0.0.0.0`, as in
    /// ZooKeeper. `None` when the line has no client part.
    pub client: Option<HostPort>,
}

impl FromStr for ServerSpec {
    type Err = ConfigError;

    /// Parses the value of a `server.N` line (or one reconfig member).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidServerSpec`] for the cases ZooKeeper's `QuorumServer` refuses: not
    /// 3 or 4 `:` parts, a port that is not 0..=65535, equal quorum and election ports, an
    /// unknown type, a bad client part, several `|`-separated addresses (ZooKeeper's default
    /// `multiAddress.enabled=false` refuses them too).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_server_spec(s).map_err(|reason| ConfigError::InvalidServerSpec {
            spec: s.to_owned(),
            reason,
        })
    }
}

impl fmt::Display for ServerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let quorum = HostPort {
            host: self.host.clone(),
            port: self.quorum_port,
        };
        write!(f, "{quorum}:{}:{}", self.election_port, self.peer_type)?;
        if let Some(client) = &self.client {
            write!(f, ";{client}")?;
        }
        Ok(())
    }
}

/// The configuration of one server: ZooKeeper's `zoo.cfg` keys, in Rust types.
///
/// [`ServerConfig::default`] is the zero-config standalone server (127.0.0.1:2181,
/// `./corral-data`); a parsed `zoo.cfg` starts from the same values except that the client
/// address is `0.0.0.0`, as ZooKeeper binds when `clientPortAddress` is absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// `tickTime`: the unit of every timeout below (heartbeats, session bounds, init/sync).
    pub tick_time_ms: u32,
    /// `dataDir`: snapshots (and `myid`); the transaction log too unless `dataLogDir` is set.
    /// A relative path is kept as written, relative to the working directory, as ZooKeeper does.
    pub data_dir: PathBuf,
    /// `dataLogDir`: a separate device for the transaction log, so fsync latency is not shared
    /// with snapshot writes. `None` means `data_dir`.
    pub data_log_dir: Option<PathBuf>,
    /// `clientPort`. 0 asks the OS for a free port (ZooKeeper would treat 0 as unset).
    pub client_port: u16,
    /// `clientPortAddress`: the interface the client port binds to.
    pub client_port_address: IpAddr,
    /// `maxClientCnxns`: concurrent connections allowed from one IP address; 0 = unlimited.
    pub max_client_cnxns: u32,
    /// `minSessionTimeout`; `None` means 2 ticks. Use [`ServerConfig::min_session_timeout`].
    pub min_session_timeout_ms: Option<u32>,
    /// `maxSessionTimeout`; `None` means 20 ticks. Use [`ServerConfig::max_session_timeout`].
    pub max_session_timeout_ms: Option<u32>,
    /// `4lw.commands.whitelist`: which four-letter words answer.
    pub four_letter_whitelist: FourLetterWhitelist,
    /// `extendedTypesEnabled`: TTL nodes. Needs server ids 1..=254, because the TTL encoding
    /// reserves the top byte of an ephemeral owner.
    pub extended_types_enabled: bool,
    /// `DigestAuthenticationProvider.superDigest`: `user:base64(sha1(user:password))` of the
    /// super user, who bypasses every ACL.
    pub super_digest: Option<String>,
    /// `znode.container.checkIntervalMs`: how often empty containers and expired TTL nodes
    /// are collected.
    pub container_check_interval_ms: u64,
    /// `jute.maxbuffer`: the largest packet (and znode payload) in bytes; larger frames close
    /// the connection.
    pub max_buffer: usize,
    /// `globalOutstandingLimit`: requests in flight before the server stops reading sockets.
    pub global_outstanding_limit: u32,
    /// `forceSync`: fsync the log before acknowledging. `no` trades durability for latency.
    pub force_sync: bool,
    /// `snapCount`: transactions between snapshots (ZooKeeper randomizes around it).
    pub snap_count: u64,
    /// `commitLogCount`: committed transactions a leader keeps in memory to bring a learner
    /// up to date by DIFF; a learner further behind gets a snapshot.
    pub commit_log_count: usize,
    /// `autopurge.snapRetainCount`: snapshots kept by the purge task (at least 3).
    pub autopurge_snap_retain_count: u32,
    /// `autopurge.purgeInterval`: hours between purges; 0 disables purging.
    pub autopurge_purge_interval_hours: u32,
    /// `preAllocSize`: log files grow in steps of this many KiB, so appends do not change the
    /// file size (and fdatasync need not write metadata).
    pub pre_alloc_size_kb: u64,
    /// `initLimit`: ticks a follower may take to connect and sync with the leader.
    pub init_limit: u32,
    /// `syncLimit`: ticks a follower may lag before the leader drops it.
    pub sync_limit: u32,
    /// `server.N` lines, by server id. Empty for a standalone server.
    pub servers: BTreeMap<u64, ServerSpec>,
    /// `peerType` of this server; the server list wins when the two disagree.
    pub peer_type: PeerType,
    /// This server's id, from `<dataDir>/myid` (see [`ServerConfig::load_myid`]).
    pub my_id: Option<u64>,
    /// `standaloneEnabled`: with one participant, run standalone instead of as an ensemble.
    pub standalone_enabled: bool,
    /// `reconfigEnabled`: whether the reconfig operation is allowed.
    pub reconfig_enabled: bool,
    /// `admin.enableServer`: recorded only; Corral has no Jetty admin server.
    pub admin_enable_server: bool,
    /// `readonlymode.enabled`: serve reads while partitioned from the quorum.
    pub read_only_mode: bool,
    /// `localSessionsEnabled`: sessions that live on one server only.
    pub local_sessions_enabled: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            tick_time_ms: DEFAULT_TICK_TIME_MS,
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            data_log_dir: None,
            client_port: DEFAULT_CLIENT_PORT,
            client_port_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            max_client_cnxns: 60,
            min_session_timeout_ms: None,
            max_session_timeout_ms: None,
            four_letter_whitelist: FourLetterWhitelist::default(),
            extended_types_enabled: false,
            super_digest: None,
            container_check_interval_ms: 60_000,
            max_buffer: 0xF_FFFF,
            global_outstanding_limit: 1000,
            force_sync: true,
            snap_count: 100_000,
            commit_log_count: 10_000,
            autopurge_snap_retain_count: MIN_SNAP_RETAIN_COUNT,
            autopurge_purge_interval_hours: 0,
            pre_alloc_size_kb: 65_536,
            init_limit: 10,
            sync_limit: 5,
            servers: BTreeMap::new(),
            peer_type: PeerType::Participant,
            my_id: None,
            standalone_enabled: true,
            reconfig_enabled: false,
            admin_enable_server: true,
            read_only_mode: false,
            local_sessions_enabled: false,
        }
    }
}

/// A configuration together with the warnings found while reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedConfig {
    /// The configuration.
    pub config: ServerConfig,
    /// Unknown or unsupported keys, values that were adjusted, and topology advice. Each one
    /// was also emitted with `tracing::warn!`.
    pub warnings: Vec<String>,
}

impl ServerConfig {
    /// Parses `zoo.cfg` text. Pure: unlike [`ServerConfig::from_file`] it does not read `myid`.
    ///
    /// ```
    /// use corral_server::config::ServerConfig;
    ///
    /// let parsed = ServerConfig::parse_str(
    ///     "tickTime=2000\n\
    ///      dataDir=/var/lib/zookeeper\n\
    ///      clientPort=2181\n\
    ///      4lw.commands.whitelist=ruok, stat\n\
    ///      colour=blue\n",
    /// )?;
    /// let cfg = &parsed.config;
    /// assert_eq!(cfg.client_addr().to_string(), "0.0.0.0:2181");
    /// assert_eq!(cfg.max_session_timeout(), 40_000);
    /// assert!(cfg.four_letter_whitelist.allows("ruok"));
    /// assert!(!cfg.four_letter_whitelist.allows("dump"));
    /// assert_eq!(parsed.warnings, ["line 5: unknown key \"colour\" ignored"]);
    /// # Ok::<(), corral_server::config::ConfigError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidValue`] (with line, key and value) for a known key whose value is
    /// unusable; [`ConfigError::Syntax`] for a malformed `\uXXXX` escape;
    /// [`ConfigError::Invalid`] when [`ServerConfig::validate`] fails.
    ///
    /// # Notable behaviors
    ///
    /// Unknown keys are warnings, never errors. Keys are case-sensitive. When a key appears
    /// twice the last value wins (as with `java.util.Properties`), with a warning. A few
    /// values are adjusted as ZooKeeper adjusts them, with a warning:
    /// `autopurge.snapRetainCount` < 3 becomes 3, `snapCount` < 2 becomes 2. `dataDir` may be
    /// absent (ZooKeeper refuses that; we warn and use `./corral-data`).
    pub fn parse_str(text: &str) -> Result<ParsedConfig, ConfigError> {
        let (parsed, _) = parse_text(text)?;
        emit_warnings(&parsed.warnings);
        Ok(parsed)
    }

    /// Reads and parses a `zoo.cfg` file; when it lists `server.N` lines, also reads
    /// `<dataDir>/myid` (see [`ServerConfig::load_myid`]).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Io`] when the file cannot be read, then everything
    /// [`ServerConfig::parse_str`] and [`ServerConfig::load_myid`] return.
    ///
    /// # Notable behaviors
    ///
    /// Text that is not UTF-8 is decoded as ISO-8859-1, which is what Java's
    /// `Properties.load(InputStream)` assumes. As in ZooKeeper, a `clientPort` set in the file
    /// must agree with the client part of this server's own `server.N` line.
    pub fn from_file(path: impl AsRef<Path>) -> Result<ParsedConfig, ConfigError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| ConfigError::io(path, &e))?;
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => e.into_bytes().iter().map(|&b| char::from(b)).collect(),
        };
        let (mut parsed, client_port_in_file) = parse_text(&text)?;
        if !parsed.config.servers.is_empty() {
            let (_, more) = parsed.config.load_myid_inner(client_port_in_file)?;
            parsed.warnings.extend(more);
        }
        emit_warnings(&parsed.warnings);
        Ok(parsed)
    }

    /// Reads `<data_dir>/myid` into [`ServerConfig::my_id`] and returns the id read, or `None`
    /// when the file does not exist (then `my_id` is left as it was).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidMyId`] when the file is missing although [`is_quorum`] is true
    /// (ZooKeeper: "myid file is missing"), or its first line is not an unsigned integer;
    /// [`ConfigError::Io`] when it exists but cannot be read; [`ConfigError::Invalid`] when
    /// [`ServerConfig::validate`] then fails (e.g. the id is not in the server list).
    ///
    /// # Notable behaviors
    ///
    /// The first line is trimmed (ZooKeeper is stricter). When this server's `server.N` line
    /// has a client part, it sets `client_port` and, for an IP literal, `client_port_address`,
    /// as ZooKeeper's `setupClientPort` does. When it says `observer` or `participant`, that
    /// wins over `peerType`, with a warning.
    ///
    /// [`is_quorum`]: ServerConfig::is_quorum
    pub fn load_myid(&mut self) -> Result<Option<u64>, ConfigError> {
        let (id, warnings) = self.load_myid_inner(false)?;
        emit_warnings(&warnings);
        Ok(id)
    }

    /// Checks the rules that involve several settings. Parsing calls it; call it yourself after
    /// building or changing a configuration in code.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] when: `tickTime` is 0; the effective `minSessionTimeout` is
    /// above the effective `maxSessionTimeout`; `jute.maxbuffer` or the container interval is 0;
    /// the server list has observers but no participant, or observers next to a single
    /// participant with `standaloneEnabled=true`; `standaloneEnabled=false` without a
    /// participant; an ensemble has `initLimit` or `syncLimit` 0; `extendedTypesEnabled=true`
    /// with a server id outside 1..=254; an ensemble member's `myid` is not in the list.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.tick_time_ms == 0 {
            return Err(ConfigError::invalid("tickTime must be greater than 0"));
        }
        let (min, max) = (self.min_session_timeout(), self.max_session_timeout());
        if min > max {
            return Err(ConfigError::invalid(format!(
                "minSessionTimeout ({min} ms) must not be larger than maxSessionTimeout ({max} ms)"
            )));
        }
        if self.max_buffer == 0 {
            return Err(ConfigError::invalid(
                "jute.maxbuffer must be greater than 0",
            ));
        }
        if self.container_check_interval_ms == 0 {
            return Err(ConfigError::invalid(
                "znode.container.checkIntervalMs must be greater than 0",
            ));
        }
        let (participants, observers) = self.member_counts();
        if participants == 0 {
            if !self.standalone_enabled {
                return Err(ConfigError::invalid(
                    "standaloneEnabled=false needs at least one participant in the server.N lines",
                ));
            }
            if observers > 0 {
                return Err(ConfigError::invalid(
                    "observers without participants is an invalid configuration",
                ));
            }
        } else if participants == 1 && self.standalone_enabled && observers > 0 {
            return Err(ConfigError::invalid(
                "observers without a quorum is an invalid configuration (one participant and \
                 standaloneEnabled=true)",
            ));
        }
        if self.is_quorum() {
            if self.init_limit == 0 {
                return Err(ConfigError::invalid(
                    "initLimit must be greater than 0 in an ensemble",
                ));
            }
            if self.sync_limit == 0 {
                return Err(ConfigError::invalid(
                    "syncLimit must be greater than 0 in an ensemble",
                ));
            }
        }
        if self.extended_types_enabled {
            let mut ids = self.servers.keys().copied().chain(self.my_id);
            if let Some(id) = ids.find(|id| !(1..=254).contains(id)) {
                return Err(ConfigError::invalid(format!(
                    "server id {id} is out of range: with extendedTypesEnabled=true server ids \
                     must be between 1 and 254"
                )));
            }
        }
        if let Some(id) = self.my_id {
            if self.is_quorum() && !self.servers.contains_key(&id) {
                return Err(ConfigError::invalid(format!(
                    "myid is {id} but there is no server.{id} line"
                )));
            }
        }
        Ok(())
    }

    /// The smallest session timeout granted: `minSessionTimeout`, or 2 ticks.
    pub fn min_session_timeout(&self) -> u32 {
        self.min_session_timeout_ms
            .unwrap_or_else(|| self.tick_time_ms.saturating_mul(2))
    }

    /// The largest session timeout granted: `maxSessionTimeout`, or 20 ticks.
    pub fn max_session_timeout(&self) -> u32 {
        self.max_session_timeout_ms
            .unwrap_or_else(|| self.tick_time_ms.saturating_mul(20))
    }

    /// The address the client listener binds: `clientPortAddress:clientPort`.
    pub fn client_addr(&self) -> SocketAddr {
        SocketAddr::new(self.client_port_address, self.client_port)
    }

    /// Whether this server runs as an ensemble member: there are `server.N` lines and either
    /// more than one participant or `standaloneEnabled=false` (ZooKeeper's `isDistributed`).
    /// A single `server.1` line with `standaloneEnabled=true` runs standalone.
    pub fn is_quorum(&self) -> bool {
        !self.servers.is_empty() && (!self.standalone_enabled || self.member_counts().0 > 1)
    }

    /// Where the transaction log lives: `dataLogDir`, or `dataDir` when it is not set.
    pub fn effective_data_log_dir(&self) -> &Path {
        self.data_log_dir.as_deref().unwrap_or(&self.data_dir)
    }

    /// This server's own `server.N` entry, when `my_id` is known and listed.
    pub fn own_server(&self) -> Option<&ServerSpec> {
        self.my_id.and_then(|id| self.servers.get(&id))
    }

    /// Whether the four-letter word `cmd` may run: the whitelist, plus `isro` when read-only
    /// mode is enabled (as ZooKeeper adds it).
    pub fn allows_four_letter_word(&self, cmd: &str) -> bool {
        self.four_letter_whitelist.allows(cmd) || (cmd == "isro" && self.read_only_mode)
    }

    /// The body of the `conf` four-letter word, in ZooKeeper 3.8's format.
    ///
    /// `data_dir_size` and `data_log_size` are the byte sizes of the snapshot and log
    /// directories, which the caller measures. Directories are printed absolute with
    /// `/version-2` appended, as ZooKeeper prints its snapshot and log directories.
    ///
    /// # Notable behaviors
    ///
    /// Standalone prints `serverId=0`, as ZooKeeper does even when `myid` exists. An ensemble
    /// member adds `initLimit` ... `peerType` (the `LearnerType` ordinal: 0 participant,
    /// 1 observer), then `membership: ` and the `server.N` lines and `version=0`, with no
    /// newline after the last line (observed on 3.8.0). Ports of an unknown own server print
    /// as `-1`.
    pub fn render_conf(&self, data_dir_size: u64, data_log_size: u64) -> String {
        let mut lines: Vec<(&str, String)> = vec![
            ("clientPort", self.client_port.to_string()),
            ("secureClientPort", "-1".to_owned()),
            ("dataDir", version_dir(&self.data_dir)),
            ("dataDirSize", data_dir_size.to_string()),
            ("dataLogDir", version_dir(self.effective_data_log_dir())),
            ("dataLogSize", data_log_size.to_string()),
            ("tickTime", self.tick_time_ms.to_string()),
            ("maxClientCnxns", self.max_client_cnxns.to_string()),
            ("minSessionTimeout", self.min_session_timeout().to_string()),
            ("maxSessionTimeout", self.max_session_timeout().to_string()),
            ("clientPortListenBacklog", "-1".to_owned()),
        ];
        let quorum = self.is_quorum();
        let server_id = if quorum { self.my_id.unwrap_or(0) } else { 0 };
        lines.push(("serverId", server_id.to_string()));
        if quorum {
            let own = self.own_server();
            let port = |p: Option<u16>| p.map_or_else(|| "-1".to_owned(), |p| p.to_string());
            lines.push(("initLimit", self.init_limit.to_string()));
            lines.push(("syncLimit", self.sync_limit.to_string()));
            lines.push(("electionAlg", "3".to_owned()));
            lines.push(("electionPort", port(own.map(|s| s.election_port))));
            lines.push(("quorumPort", port(own.map(|s| s.quorum_port))));
            lines.push(("peerType", self.peer_type.ordinal().to_string()));
        }
        let mut out = String::new();
        for (key, value) in lines {
            out.push_str(key);
            out.push('=');
            out.push_str(&value);
            out.push('\n');
        }
        if quorum {
            out.push_str("membership: \n");
            for (id, server) in &self.servers {
                out.push_str(&format!("server.{id}={server}\n"));
            }
            out.push_str("version=0");
        }
        out
    }

    /// Counts (participants, observers) in the server list.
    fn member_counts(&self) -> (usize, usize) {
        let observers = self
            .servers
            .values()
            .filter(|s| s.peer_type == PeerType::Observer)
            .count();
        (self.servers.len() - observers, observers)
    }

    /// Reads `<data_dir>/myid`: `None` when absent.
    fn read_myid(&self) -> Result<Option<u64>, ConfigError> {
        let path = self.data_dir.join("myid");
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let first = text.lines().next().unwrap_or("").trim();
                match first.parse::<u64>() {
                    Ok(id) => Ok(Some(id)),
                    Err(_) => Err(ConfigError::InvalidMyId {
                        path,
                        reason: format!("{first:?} is not a server id (a non-negative integer)"),
                    }),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ConfigError::io(&path, &e)),
        }
    }

    /// [`ServerConfig::load_myid`], returning warnings instead of emitting them.
    /// `client_port_in_file`: the file set `clientPort`, so it must agree with the own line.
    fn load_myid_inner(
        &mut self,
        client_port_in_file: bool,
    ) -> Result<(Option<u64>, Vec<String>), ConfigError> {
        let mut warnings = Vec::new();
        let Some(id) = self.read_myid()? else {
            if self.is_quorum() && self.my_id.is_none() {
                return Err(ConfigError::InvalidMyId {
                    path: self.data_dir.join("myid"),
                    reason: "missing; every member of an ensemble needs its server id there"
                        .to_owned(),
                });
            }
            return Ok((None, warnings));
        };
        self.my_id = Some(id);
        if let Some(own) = self.servers.get(&id).cloned() {
            if own.peer_type != self.peer_type {
                warnings.push(format!(
                    "peerType={} disagrees with server.{id} ({}); following the server list",
                    self.peer_type, own.peer_type
                ));
                self.peer_type = own.peer_type;
            }
            if let Some(client) = &own.client {
                self.adopt_client_addr(id, client, client_port_in_file, &mut warnings)?;
            }
        }
        self.validate()?;
        Ok((Some(id), warnings))
    }

    /// Takes the client address from this server's `server.N` line (ZooKeeper's
    /// `setupClientPort`), refusing a contradicting `clientPort`/`clientPortAddress`.
    fn adopt_client_addr(
        &mut self,
        id: u64,
        client: &HostPort,
        client_port_in_file: bool,
        warnings: &mut Vec<String>,
    ) -> Result<(), ConfigError> {
        let ip = parse_ip(&client.host);
        if client_port_in_file {
            let conflict = match ip {
                Some(_) if self.client_port_address.is_unspecified() => {
                    self.client_port != client.port
                }
                Some(ip) => self.client_addr() != SocketAddr::new(ip, client.port),
                None => false,
            };
            if conflict {
                return Err(ConfigError::invalid(format!(
                    "clientPort/clientPortAddress give {} but server.{id} gives client address {}",
                    self.client_addr(),
                    client
                )));
            }
        }
        self.client_port = client.port;
        match ip {
            Some(ip) => self.client_port_address = ip,
            None => warnings.push(format!(
                "server.{id}: client host {:?} is not an IP address; binding {} instead",
                client.host, self.client_port_address
            )),
        }
        Ok(())
    }
}

/// One `key=value` pair of the properties text.
struct Entry {
    /// First physical line of the logical line, 1-based.
    line: usize,
    /// Key as written (unescaped, trimmed).
    key: String,
    /// Value (unescaped, trimmed).
    value: String,
}

impl Entry {
    fn bad(&self, reason: impl Into<String>) -> ConfigError {
        ConfigError::InvalidValue {
            line: self.line,
            key: self.key.clone(),
            value: self.value.clone(),
            reason: reason.into(),
        }
    }

    /// An integer in `min..=max`; `hex` also allows `0x`/`#` hex, as `Integer.getInteger`
    /// (which reads ZooKeeper's system properties) does.
    fn int<T: TryFrom<i128>>(&self, min: i128, max: i128, hex: bool) -> Result<T, ConfigError> {
        let v = parse_java_int(&self.value, hex).ok_or_else(|| self.bad("expected an integer"))?;
        if v < min || v > max {
            return Err(self.bad(format!("must be between {min} and {max}")));
        }
        T::try_from(v).map_err(|_| self.bad(format!("must be between {min} and {max}")))
    }

    /// `true` / `false`, any case, as ZooKeeper's `parseBoolean`.
    fn bool(&self) -> Result<bool, ConfigError> {
        if self.value.eq_ignore_ascii_case("true") {
            Ok(true)
        } else if self.value.eq_ignore_ascii_case("false") {
            Ok(false)
        } else {
            Err(self.bad("expected true or false"))
        }
    }

    fn path(&self) -> Result<PathBuf, ConfigError> {
        if self.value.is_empty() {
            return Err(self.bad("must not be empty"));
        }
        Ok(PathBuf::from(&self.value))
    }
}

/// Parses the text; also says whether `clientPort` was set (for [`ServerConfig::load_myid`]).
fn parse_text(text: &str) -> Result<(ParsedConfig, bool), ConfigError> {
    let entries = parse_properties(text)?;
    let mut warnings = Vec::new();
    let mut last: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, e) in entries.iter().enumerate() {
        if let Some(prev) = last.insert(canonical_key(&e.key), i) {
            warnings.push(format!(
                "line {}: {} is set again (first on line {}); the last value wins",
                e.line, e.key, entries[prev].line
            ));
        }
    }
    let mut config = ServerConfig {
        client_port_address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        ..ServerConfig::default()
    };
    let mut seen = Seen::default();
    for (i, e) in entries.iter().enumerate() {
        if last.get(canonical_key(&e.key)) == Some(&i) {
            apply(&mut config, e, &mut seen, &mut warnings)?;
        }
    }
    if !seen.data_dir {
        warnings.push(format!(
            "dataDir is not set; using {DEFAULT_DATA_DIR} (ZooKeeper requires dataDir)"
        ));
    }
    config.validate()?;
    warnings.extend(topology_warnings(&config));
    Ok((ParsedConfig { config, warnings }, seen.client_port))
}

/// Keys whose presence matters after all entries are applied.
#[derive(Default)]
struct Seen {
    data_dir: bool,
    client_port: bool,
}

/// Applies one entry to the configuration.
fn apply(
    cfg: &mut ServerConfig,
    e: &Entry,
    seen: &mut Seen,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let key = canonical_key(&e.key);
    match key {
        "dataDir" => {
            cfg.data_dir = e.path()?;
            seen.data_dir = true;
        }
        "dataLogDir" => cfg.data_log_dir = Some(e.path()?),
        "clientPort" => {
            cfg.client_port = e.int(0, u16::MAX.into(), false)?;
            seen.client_port = true;
        }
        "clientPortAddress" => {
            cfg.client_port_address = parse_ip(&e.value).ok_or_else(|| {
                e.bad("expected an IP address or localhost (host names are not resolved)")
            })?;
        }
        "tickTime" => cfg.tick_time_ms = e.int(1, JAVA_INT_MAX, false)?,
        "maxClientCnxns" => cfg.max_client_cnxns = e.int(0, JAVA_INT_MAX, false)?,
        "minSessionTimeout" => cfg.min_session_timeout_ms = session_timeout(e)?,
        "maxSessionTimeout" => cfg.max_session_timeout_ms = session_timeout(e)?,
        "initLimit" => cfg.init_limit = e.int(0, JAVA_INT_MAX, false)?,
        "syncLimit" => cfg.sync_limit = e.int(0, JAVA_INT_MAX, false)?,
        "electionAlg" => {
            if e.int::<i32>(i32::MIN.into(), JAVA_INT_MAX, false)? != 3 {
                return Err(e.bad("only 3 (fast leader election) is supported"));
            }
        }
        "peerType" => {
            cfg.peer_type = PeerType::parse(&e.value)
                .ok_or_else(|| e.bad("expected participant or observer"))?;
        }
        "autopurge.snapRetainCount" => {
            let n: i64 = e.int(i32::MIN.into(), JAVA_INT_MAX, false)?;
            cfg.autopurge_snap_retain_count = match u32::try_from(n) {
                Ok(n) if n >= MIN_SNAP_RETAIN_COUNT => n,
                _ => {
                    warnings.push(format!(
                        "line {}: autopurge.snapRetainCount={n} is below the minimum; using \
                         {MIN_SNAP_RETAIN_COUNT}",
                        e.line
                    ));
                    MIN_SNAP_RETAIN_COUNT
                }
            };
        }
        "autopurge.purgeInterval" => {
            // ZooKeeper: any value <= 0 disables the purge task.
            let n: i64 = e.int(i32::MIN.into(), JAVA_INT_MAX, false)?;
            cfg.autopurge_purge_interval_hours = u32::try_from(n).unwrap_or(0);
        }
        "standaloneEnabled" => cfg.standalone_enabled = e.bool()?,
        "reconfigEnabled" => cfg.reconfig_enabled = e.bool()?,
        "localSessionsEnabled" => cfg.local_sessions_enabled = e.bool()?,
        "admin.enableServer" => cfg.admin_enable_server = e.bool()?,
        "readonlymode.enabled" => cfg.read_only_mode = e.bool()?,
        "extendedTypesEnabled" => cfg.extended_types_enabled = e.bool()?,
        "DigestAuthenticationProvider.superDigest" => {
            match e.value.split_once(':') {
                Some((user, hash)) if !user.is_empty() && !hash.is_empty() => {}
                _ => return Err(e.bad("expected user:base64(sha1(user:password))")),
            }
            cfg.super_digest = Some(e.value.clone());
        }
        "znode.container.checkIntervalMs" => {
            cfg.container_check_interval_ms = e.int(1, JAVA_INT_MAX, true)?;
        }
        "jute.maxbuffer" => cfg.max_buffer = e.int(1, JAVA_INT_MAX, true)?,
        "4lw.commands.whitelist" => {
            let list = FourLetterWhitelist::parse(&e.value);
            if let FourLetterWhitelist::Only(words) = &list {
                for word in words
                    .iter()
                    .filter(|w| !FOUR_LETTER_WORDS.contains(&w.as_str()))
                {
                    warnings.push(format!(
                        "line {}: {:?} in {} is not a four-letter word ZooKeeper knows",
                        e.line, word, e.key
                    ));
                }
            }
            cfg.four_letter_whitelist = list;
        }
        "commitLogCount" => {
            let n: i64 = e.int(1, JAVA_INT_MAX, true)?;
            cfg.commit_log_count = n as usize;
        }
        "snapCount" => {
            let n: i64 = e.int(i32::MIN.into(), JAVA_INT_MAX, true)?;
            cfg.snap_count = match u64::try_from(n) {
                Ok(n) if n >= MIN_SNAP_COUNT => n,
                _ => {
                    warnings.push(format!(
                        "line {}: snapCount={n} is below the minimum; using {MIN_SNAP_COUNT}",
                        e.line
                    ));
                    MIN_SNAP_COUNT
                }
            };
        }
        "forceSync" => {
            cfg.force_sync = match e.value.to_ascii_lowercase().as_str() {
                "yes" | "true" => true,
                "no" | "false" => false,
                _ => return Err(e.bad("expected yes or no")),
            };
        }
        "globalOutstandingLimit" => {
            cfg.global_outstanding_limit = e.int(0, JAVA_INT_MAX, true)?;
        }
        "preAllocSize" => cfg.pre_alloc_size_kb = e.int(0, JAVA_LONG_MAX / 1024, true)?,
        _ if key.starts_with("server.") => {
            let id = &key["server.".len()..];
            let id: u64 = id
                .parse()
                .map_err(|_| e.bad(format!("server id {id:?} is not a non-negative integer")))?;
            let spec = parse_server_spec(&e.value).map_err(|reason| e.bad(reason))?;
            cfg.servers.insert(id, spec);
        }
        _ if is_ignored(key) => {
            tracing::debug!(key, line = e.line, "zoo.cfg key accepted and ignored");
        }
        _ if is_unsupported(key) => warnings.push(format!(
            "line {}: {} is not supported by Corral and is ignored",
            e.line, e.key
        )),
        _ => warnings.push(format!("line {}: unknown key {:?} ignored", e.line, e.key)),
    }
    Ok(())
}

/// `minSessionTimeout` / `maxSessionTimeout`: -1 means unset, as in ZooKeeper.
fn session_timeout(e: &Entry) -> Result<Option<u32>, ConfigError> {
    let v: i64 = e.int(-1, JAVA_INT_MAX, false)?;
    Ok(u32::try_from(v).ok())
}

/// ZooKeeper's own log warnings about the shape of the ensemble.
fn topology_warnings(cfg: &ServerConfig) -> Vec<String> {
    let (participants, _) = cfg.member_counts();
    if participants == 1 && cfg.standalone_enabled {
        vec!["only one server is listed and standaloneEnabled=true: running standalone".to_owned()]
    } else if participants > 0 && participants <= 2 {
        vec![format!(
            "{participants} participant(s): no server failure will be tolerated; you need at \
             least 3 servers"
        )]
    } else if participants > 0 && participants % 2 == 0 {
        vec![format!(
            "{participants} participants: non-optimal configuration, consider an odd number of \
             servers"
        )]
    } else {
        Vec::new()
    }
}

/// Maps `zookeeper.<sysprop>` to `<sysprop>` for the system properties ZooKeeper reads, so
/// both spellings are one key. Other keys are returned unchanged (`zookeeper.server.1` is not
/// a server line).
fn canonical_key(key: &str) -> &str {
    if let Some(rest) = key.strip_prefix("zookeeper.") {
        if SYSPROP_KEYS.contains(&rest)
            || IGNORED_SYSPROPS.contains(&rest)
            || UNSUPPORTED_SYSPROP_PREFIXES
                .iter()
                .any(|p| rest.starts_with(p))
        {
            return rest;
        }
    }
    key
}

fn is_ignored(key: &str) -> bool {
    IGNORED_KEYS.contains(&key)
        || IGNORED_SYSPROPS.contains(&key)
        || IGNORED_PREFIXES.iter().any(|p| key.starts_with(p))
}

fn is_unsupported(key: &str) -> bool {
    UNSUPPORTED_KEYS.contains(&key)
        || UNSUPPORTED_PREFIXES
            .iter()
            .chain(&UNSUPPORTED_SYSPROP_PREFIXES)
            .any(|p| key.starts_with(p))
}

fn emit_warnings(warnings: &[String]) {
    for warning in warnings {
        tracing::warn!("zoo.cfg: {warning}");
    }
}

/// `<absolute dir>/version-2`, as ZooKeeper prints its snapshot and log directories.
fn version_dir(dir: &Path) -> String {
    let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    abs.join("version-2").display().to_string()
}

/// An IP literal (IPv6 with or without brackets) or `localhost`.
fn parse_ip(s: &str) -> Option<IpAddr> {
    let s = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    if s.eq_ignore_ascii_case("localhost") {
        return Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    s.parse().ok()
}

/// Java's `String.trim`: strips every char <= U+0020.
fn java_trim(s: &str) -> &str {
    s.trim_matches(|c: char| c <= ' ')
}

/// Java's `String.split(sep)`: trailing empty parts are dropped, but a string without `sep`
/// is returned whole (even when empty).
fn java_split(s: &str, sep: char) -> Vec<&str> {
    let mut parts: Vec<&str> = s.split(sep).collect();
    if parts.len() > 1 {
        while parts.last() == Some(&"") {
            parts.pop();
        }
    }
    parts
}

/// `Integer.parseInt` (optional sign, decimal digits); with `hex`, also `0x`/`0X`/`#` hex as
/// `Integer.decode` accepts.
fn parse_java_int(s: &str, hex: bool) -> Option<i128> {
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let hex_digits = if hex {
        digits
            .strip_prefix("0x")
            .or_else(|| digits.strip_prefix("0X"))
            .or(digits.strip_prefix('#'))
    } else {
        None
    };
    let (digits, radix) = match hex_digits {
        Some(h) => (h, 16),
        None => (digits, 10),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) || digits.len() > 30 {
        return None;
    }
    let v = i128::from_str_radix(digits, radix).ok()?;
    Some(if negative { -v } else { v })
}

const SERVER_FORMAT: &str = "expected host:quorumPort:electionPort[:participant|:observer]\
                             [;[clientHost:]clientPort]";

/// ZooKeeper's `QuorumServer(long, String)`, without name resolution.
fn parse_server_spec(s: &str) -> Result<ServerSpec, String> {
    let s = java_trim(s);
    let parts = java_split(s, ';');
    if parts.is_empty() || parts.len() > 2 {
        return Err(SERVER_FORMAT.to_owned());
    }
    if parts[0].contains('|') {
        return Err(
            "several addresses for one server (multiAddress.enabled) are not supported".to_owned(),
        );
    }
    let server = split_host_and_port(parts[0])?;
    if server.len() < 3 || server.len() > 4 {
        return Err(SERVER_FORMAT.to_owned());
    }
    let host = server[0];
    if host.is_empty() {
        return Err(format!("empty host; {SERVER_FORMAT}"));
    }
    let port = |what: &str, p: &str| {
        p.parse::<u16>()
            .map_err(|_| format!("{what} {p:?} is not a port number (0-65535)"))
    };
    let quorum_port = port("quorum port", server[1])?;
    let election_port = port("election port", server[2])?;
    if quorum_port == election_port {
        return Err(format!(
            "quorum port and election port must be different (both {quorum_port})"
        ));
    }
    let peer_type = match server.get(3) {
        Some(t) => PeerType::parse(t)
            .ok_or_else(|| format!("unrecognised peer type {t:?} (participant or observer)"))?,
        None => PeerType::Participant,
    };
    let client = match parts.get(1) {
        None => None,
        Some(c) => {
            let c = split_host_and_port(c)?;
            let (host, p) = match c.as_slice() {
                [p] => ("0.0.0.0", *p),
                [host, p] if !host.is_empty() => (*host, *p),
                _ => return Err(SERVER_FORMAT.to_owned()),
            };
            Some(HostPort {
                host: host.to_owned(),
                port: port("client port", p)?,
            })
        }
    };
    Ok(ServerSpec {
        host: host.to_owned(),
        quorum_port,
        election_port,
        peer_type,
        client,
    })
}

/// ZooKeeper's `ConfigUtils.getHostAndPort`: `host:p1:p2...` or `[ipv6]:p1:p2...`.
fn split_host_and_port(s: &str) -> Result<Vec<&str>, String> {
    let Some(rest) = s.strip_prefix('[') else {
        return Ok(java_split(s, ':'));
    };
    let Some(close) = rest.find(']') else {
        return Err(format!("{s:?} starts with '[' but has no matching ']'"));
    };
    let (host, after) = (&rest[..close], &rest[close + 1..]);
    if after.is_empty() {
        return Ok(vec![host]);
    }
    match after.strip_prefix(':') {
        Some(ports) if !ports.is_empty() => {
            let mut parts = vec![host];
            parts.extend(java_split(ports, ':'));
            Ok(parts)
        }
        _ => Err(format!("{s:?} has no port after ']:'")),
    }
}

/// Whitespace inside a properties line: space, tab, form feed.
fn is_props_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\x0c')
}

/// `java.util.Properties.load`: logical lines, comments, continuations, separators, escapes;
/// then keys and values trimmed like `QuorumPeerConfig.parseProperties`.
fn parse_properties(text: &str) -> Result<Vec<Entry>, ConfigError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines = physical_lines(text);
    let mut entries = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line_no = i + 1;
        let first = lines[i].trim_start_matches(is_props_ws);
        i += 1;
        if first.is_empty() || first.starts_with('#') || first.starts_with('!') {
            continue;
        }
        let mut logical = first.to_owned();
        while ends_with_odd_backslashes(&logical) {
            logical.pop();
            let Some(next) = lines.get(i) else { break };
            logical.push_str(next.trim_start_matches(is_props_ws));
            i += 1;
        }
        let (key, value) = split_key_value(&logical);
        let key = unescape(key, line_no)?;
        let value = unescape(value, line_no)?;
        entries.push(Entry {
            line: line_no,
            key: java_trim(&key).to_owned(),
            value: java_trim(&value).to_owned(),
        });
    }
    Ok(entries)
}

/// Splits on `\r\n`, `\r` or `\n`.
fn physical_lines(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut lines = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => {
                lines.push(&text[start..i]);
                start = i + 1;
            }
            b'\r' => {
                lines.push(&text[start..i]);
                if bytes.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if start < text.len() {
        lines.push(&text[start..]);
    }
    lines
}

fn ends_with_odd_backslashes(s: &str) -> bool {
    s.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1
}

/// The key ends at the first unescaped `=`, `:` or whitespace; the value starts after
/// whitespace and at most one `=`/`:` (when the key did not end on one).
fn split_key_value(line: &str) -> (&str, &str) {
    let (mut key_end, mut value_start) = (line.len(), line.len());
    let mut has_sep = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if !escaped && (c == '=' || c == ':') {
            (key_end, value_start, has_sep) = (i, i + 1, true);
            break;
        }
        if !escaped && is_props_ws(c) {
            (key_end, value_start) = (i, i + c.len_utf8());
            break;
        }
        escaped = c == '\\' && !escaped;
    }
    let rest = &line[value_start..];
    let mut skip = rest.len();
    for (i, c) in rest.char_indices() {
        if is_props_ws(c) {
            continue;
        }
        if !has_sep && (c == '=' || c == ':') {
            has_sep = true;
            continue;
        }
        skip = i;
        break;
    }
    (&line[..key_end], &rest[skip..])
}

/// Java properties escapes: `\t \n \r \f`, `\uXXXX` (surrogate pairs combined), and `\x` for
/// any other `x` meaning `x` (so `C:\zk` reads as `C:zk`, as in ZooKeeper).
fn unescape(s: &str, line: usize) -> Result<String, ConfigError> {
    let syntax = |message: &str| ConfigError::Syntax {
        line,
        message: message.to_owned(),
    };
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            None => {}
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0c'),
            Some('u') => {
                let unit =
                    read_hex4(&mut chars).ok_or_else(|| syntax("malformed \\uXXXX escape"))?;
                let code = if (0xD800..0xDC00).contains(&unit) {
                    let low = match (chars.next(), chars.next()) {
                        (Some('\\'), Some('u')) => read_hex4(&mut chars),
                        _ => None,
                    };
                    match low {
                        Some(low) if (0xDC00..0xE000).contains(&low) => {
                            0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                        }
                        _ => return Err(syntax("\\uXXXX escape with an unpaired surrogate")),
                    }
                } else {
                    unit
                };
                out.push(
                    char::from_u32(code)
                        .ok_or_else(|| syntax("\\uXXXX escape with an unpaired surrogate"))?,
                );
            }
            Some(other) => out.push(other),
        }
    }
    Ok(out)
}

fn read_hex4(chars: &mut std::str::Chars<'_>) -> Option<u32> {
    let mut v = 0;
    for _ in 0..4 {
        v = v * 16 + chars.next()?.to_digit(16)?;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    fn parse(text: &str) -> ParsedConfig {
        match ServerConfig::parse_str(text) {
            Ok(parsed) => parsed,
            Err(e) => panic!("{text:?} should parse: {e}"),
        }
    }

    fn cfg(text: &str) -> ServerConfig {
        parse(text).config
    }

    fn err(text: &str) -> ConfigError {
        match ServerConfig::parse_str(text) {
            Ok(parsed) => panic!("{text:?} should fail, got {parsed:?}"),
            Err(e) => e,
        }
    }

    fn invalid_value(line: usize, key: &str, value: &str, reason: &str) -> ConfigError {
        ConfigError::InvalidValue {
            line,
            key: key.to_owned(),
            value: value.to_owned(),
            reason: reason.to_owned(),
        }
    }

    const ENSEMBLE: &str = "tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir=/var/zk\n\
                            clientPort=2181\nserver.1=10.0.0.1:2888:3888\n\
                            server.2=10.0.0.2:2888:3888\nserver.3=10.0.0.3:2888:3888\n";

    // --- java.util.Properties syntax ---

    #[test]
    fn equals_colon_and_whitespace_all_separate_keys_from_values() {
        let c = cfg("tickTime=1000\nclientPort : 2182\nmaxClientCnxns 7\ninitLimit\t=  3\n");
        assert_eq!(c.tick_time_ms, 1000);
        assert_eq!(c.client_port, 2182);
        assert_eq!(c.max_client_cnxns, 7);
        assert_eq!(c.init_limit, 3);
    }

    #[test]
    fn hash_and_bang_lines_are_comments_even_after_leading_whitespace() {
        let parsed = parse("# tickTime=1\n   ! tickTime=2\n\t#x\n\n   \ntickTime=3\n");
        assert_eq!(parsed.config.tick_time_ms, 3);
        assert_eq!(
            parsed.warnings.len(),
            1,
            "only the dataDir warning: {:?}",
            parsed.warnings
        );
    }

    #[test]
    fn trailing_backslash_joins_the_next_line_without_its_leading_whitespace() {
        let c =
            cfg("4lw.commands.whitelist=ruok, \\\n     stat,\\\n  mntr\ntickTime=\\\n  1\\\n5\n");
        assert_eq!(c.four_letter_whitelist.to_string(), "mntr,ruok,srvr,stat");
        assert_eq!(c.tick_time_ms, 15);
    }

    #[test]
    fn even_number_of_trailing_backslashes_does_not_continue_the_line() {
        let c = cfg("dataDir=/a\\\\\ntickTime=7\n");
        assert_eq!(c.data_dir, PathBuf::from("/a\\"));
        assert_eq!(c.tick_time_ms, 7);
    }

    #[test]
    fn comment_line_ending_in_backslash_does_not_continue() {
        let c = cfg("# comment \\\ntickTime=9\n");
        assert_eq!(c.tick_time_ms, 9);
    }

    #[test]
    fn escapes_are_decoded_like_java_properties() {
        let c = cfg("dataDir=C:\\zk\\data\ndataLogDir=/l\\u00e9g\\tx\\=y\\:z\\ \n");
        assert_eq!(
            c.data_dir,
            PathBuf::from("C:zkdata"),
            "as ZooKeeper reads it on Windows"
        );
        assert_eq!(c.data_log_dir, Some(PathBuf::from("/lég\tx=y:z")));
        let c = cfg("DigestAuthenticationProvider.superDigest=\\uD83D\\uDE00:h\n");
        assert_eq!(c.super_digest.as_deref(), Some("😀:h"));
    }

    #[test]
    fn escaped_separator_belongs_to_the_key() {
        let parsed = parse("a\\=b=c\n");
        assert_eq!(parsed.warnings[0], "line 1: unknown key \"a=b\" ignored");
    }

    #[test]
    fn malformed_unicode_escape_is_a_syntax_error_with_its_line() {
        assert_eq!(
            err("tickTime=1\ndataDir=/x\\u12G4\n"),
            ConfigError::Syntax {
                line: 2,
                message: "malformed \\uXXXX escape".to_owned()
            }
        );
        assert!(matches!(
            err("dataDir=\\uD83D\n"),
            ConfigError::Syntax { line: 1, .. }
        ));
    }

    #[test]
    fn crlf_and_cr_line_endings_count_lines() {
        assert_eq!(
            err("dataDir=/x\r\n\r\ntickTime=a\r\n"),
            invalid_value(3, "tickTime", "a", "expected an integer")
        );
        assert_eq!(
            err("dataDir=/x\r\rtickTime=b\r"),
            invalid_value(3, "tickTime", "b", "expected an integer")
        );
    }

    #[test]
    fn continued_line_is_reported_at_its_first_line() {
        assert_eq!(
            err("dataDir=/x\ntickTime=\\\n  1\\\n  x\n"),
            invalid_value(2, "tickTime", "1x", "expected an integer")
        );
    }

    #[test]
    fn values_are_trimmed_like_quorum_peer_config() {
        let c = cfg("dataDir =   /var/zk   \t\nclientPort=2181   \n");
        assert_eq!(c.data_dir, PathBuf::from("/var/zk"));
        assert_eq!(c.client_port, 2181);
    }

    #[test]
    fn keys_are_case_sensitive() {
        let parsed = parse("ticktime=5\ndataDir=/x\n");
        assert_eq!(parsed.config.tick_time_ms, 2000);
        assert_eq!(
            parsed.warnings,
            ["line 1: unknown key \"ticktime\" ignored"]
        );
    }

    #[test]
    fn utf8_byte_order_mark_is_skipped() {
        assert_eq!(cfg("\u{feff}tickTime=4\n").tick_time_ms, 4);
    }

    // --- defaults and plain keys ---

    #[test]
    fn default_is_zero_config_standalone_on_loopback_2181() {
        let c = ServerConfig::default();
        assert_eq!(
            c.client_addr(),
            "127.0.0.1:2181".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(c.data_dir, PathBuf::from("./corral-data"));
        assert_eq!(c.tick_time_ms, 2000);
        assert!(!c.is_quorum());
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn empty_file_gets_the_documented_defaults_on_all_interfaces() {
        let c = cfg("");
        let expected = ServerConfig {
            client_port_address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            ..ServerConfig::default()
        };
        assert_eq!(c, expected);
        assert_eq!(c.max_client_cnxns, 60);
        assert_eq!(c.container_check_interval_ms, 60_000);
        assert_eq!(c.max_buffer, 0xFFFFF);
        assert_eq!(c.global_outstanding_limit, 1000);
        assert!(c.force_sync);
        assert_eq!(c.snap_count, 100_000);
        assert_eq!(c.autopurge_snap_retain_count, 3);
        assert_eq!(c.autopurge_purge_interval_hours, 0);
        assert_eq!(c.pre_alloc_size_kb, 65_536);
        assert_eq!((c.init_limit, c.sync_limit), (10, 5));
        assert!(c.standalone_enabled && !c.reconfig_enabled && c.admin_enable_server);
        assert!(!c.read_only_mode && !c.local_sessions_enabled && !c.extended_types_enabled);
        assert_eq!(c.peer_type, PeerType::Participant);
        assert_eq!(
            (c.my_id, c.super_digest, c.data_log_dir),
            (None, None, None)
        );
    }

    #[test]
    fn parsed_config_without_client_port_address_binds_all_interfaces() {
        let c = cfg("dataDir=/x\nclientPort=2181\n");
        assert_eq!(
            c.client_addr(),
            "0.0.0.0:2181".parse::<SocketAddr>().unwrap()
        );
    }

    #[test]
    fn client_port_address_accepts_ip_literals_and_localhost_only() {
        let v6 = cfg("clientPortAddress=::1\n").client_port_address;
        assert_eq!(v6, IpAddr::V6(Ipv6Addr::LOCALHOST));
        assert_eq!(cfg("clientPortAddress=[::1]\n").client_port_address, v6);
        let local = cfg("clientPortAddress=localhost\n").client_port_address;
        assert_eq!(local, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(
            cfg("clientPortAddress=10.1.2.3\nclientPort=1\n")
                .client_addr()
                .to_string(),
            "10.1.2.3:1"
        );
        assert!(matches!(
            err("clientPortAddress=zk1.example.com\n"),
            ConfigError::InvalidValue { line: 1, ref key, .. } if key == "clientPortAddress"
        ));
    }

    #[test]
    fn absent_tick_time_means_2000_ms() {
        assert_eq!(cfg("dataDir=/x\n").tick_time_ms, 2000);
    }

    #[test]
    fn session_timeouts_default_to_2_and_20_ticks() {
        let c = cfg("tickTime=1500\n");
        assert_eq!(
            (c.min_session_timeout(), c.max_session_timeout()),
            (3000, 30_000)
        );
        assert_eq!(
            (c.min_session_timeout_ms, c.max_session_timeout_ms),
            (None, None)
        );
    }

    #[test]
    fn configured_session_timeouts_override_the_tick_multiples() {
        let c = cfg("minSessionTimeout=1000\nmaxSessionTimeout=90000\n");
        assert_eq!(
            (c.min_session_timeout(), c.max_session_timeout()),
            (1000, 90_000)
        );
    }

    #[test]
    fn minus_one_session_timeout_means_unset_as_in_zookeeper() {
        let c = cfg("minSessionTimeout=-1\nmaxSessionTimeout=-1\n");
        assert_eq!(
            (c.min_session_timeout_ms, c.max_session_timeout_ms),
            (None, None)
        );
        assert!(matches!(
            err("minSessionTimeout=-2\n"),
            ConfigError::InvalidValue { .. }
        ));
    }

    #[test]
    fn min_session_timeout_above_max_is_an_error() {
        let expected = "invalid configuration: minSessionTimeout (50000 ms) must not be larger \
                        than maxSessionTimeout (40000 ms)";
        assert_eq!(err("minSessionTimeout=50000\n").to_string(), expected);
        assert!(matches!(
            err("tickTime=100\nmaxSessionTimeout=100\n"),
            ConfigError::Invalid { .. }
        ));
    }

    #[test]
    fn bad_tick_time_is_an_error_naming_line_key_and_value() {
        let e = err("dataDir=/x\ntickTime=abc\n");
        assert_eq!(
            e.to_string(),
            "line 2: invalid value \"abc\" for tickTime: expected an integer"
        );
        assert_eq!(
            err("tickTime=0\n"),
            invalid_value(1, "tickTime", "0", "must be between 1 and 2147483647")
        );
        assert!(matches!(
            err("tickTime=3000000000\n"),
            ConfigError::InvalidValue { .. }
        ));
        let zero = ServerConfig {
            tick_time_ms: 0,
            ..ServerConfig::default()
        };
        assert!(matches!(zero.validate(), Err(ConfigError::Invalid { .. })));
    }

    #[test]
    fn client_port_out_of_range_is_an_error_naming_line_key_and_value() {
        assert_eq!(
            err("clientPort=70000\n").to_string(),
            "line 1: invalid value \"70000\" for clientPort: must be between 0 and 65535"
        );
        assert!(matches!(
            err("clientPort=-1\n"),
            ConfigError::InvalidValue { line: 1, .. }
        ));
    }

    #[test]
    fn data_dir_is_kept_relative_and_log_dir_defaults_to_it() {
        let c = cfg("dataDir=zk/data\n");
        assert_eq!(c.data_dir, PathBuf::from("zk/data"));
        assert_eq!(c.effective_data_log_dir(), Path::new("zk/data"));
        let c = cfg("dataDir=zk/data\ndataLogDir=/fast/log\n");
        assert_eq!(c.effective_data_log_dir(), Path::new("/fast/log"));
        assert!(matches!(
            err("dataDir=\n"),
            ConfigError::InvalidValue { .. }
        ));
    }

    #[test]
    fn missing_data_dir_warns_and_uses_the_default() {
        let parsed = parse("tickTime=2000\n");
        assert_eq!(parsed.config.data_dir, PathBuf::from("./corral-data"));
        assert_eq!(
            parsed.warnings,
            ["dataDir is not set; using ./corral-data (ZooKeeper requires dataDir)"]
        );
    }

    #[test]
    fn max_client_cnxns_zero_means_unlimited_and_negative_is_refused() {
        assert_eq!(cfg("maxClientCnxns=0\n").max_client_cnxns, 0);
        assert!(matches!(
            err("maxClientCnxns=-5\n"),
            ConfigError::InvalidValue { .. }
        ));
    }

    // --- system-property keys ---

    #[test]
    fn system_property_keys_accept_the_zookeeper_prefix() {
        for prefix in ["", "zookeeper."] {
            let text = format!(
                "dataDir=/x\n{prefix}extendedTypesEnabled=true\n\
                 {prefix}DigestAuthenticationProvider.superDigest=\
                 super:D/InIHSb7yEEbrWz8b9l71RjZJU=\n\
                 {prefix}znode.container.checkIntervalMs=5000\n{prefix}jute.maxbuffer=4194304\n\
                 {prefix}4lw.commands.whitelist=*\n{prefix}snapCount=5000\n{prefix}forceSync=no\n\
                 {prefix}globalOutstandingLimit=77\n{prefix}preAllocSize=1024\n\
                 {prefix}readonlymode.enabled=true\n{prefix}admin.enableServer=false\n"
            );
            let parsed = parse(&text);
            assert_eq!(parsed.warnings, Vec::<String>::new(), "prefix {prefix:?}");
            let c = parsed.config;
            assert!(c.extended_types_enabled);
            assert_eq!(
                c.super_digest.as_deref(),
                Some("super:D/InIHSb7yEEbrWz8b9l71RjZJU=")
            );
            assert_eq!(c.container_check_interval_ms, 5000);
            assert_eq!(c.max_buffer, 4_194_304);
            assert_eq!(c.four_letter_whitelist, FourLetterWhitelist::All);
            assert_eq!(c.snap_count, 5000);
            assert!(!c.force_sync);
            assert_eq!(c.global_outstanding_limit, 77);
            assert_eq!(c.pre_alloc_size_kb, 1024);
            assert!(c.read_only_mode);
            assert!(!c.admin_enable_server);
        }
    }

    #[test]
    fn zookeeper_prefix_is_not_stripped_from_other_keys() {
        let parsed = parse("dataDir=/x\nzookeeper.server.1=h:1:2\nzookeeper.tickTime=5\n");
        assert!(parsed.config.servers.is_empty());
        assert_eq!(parsed.config.tick_time_ms, 2000);
        assert_eq!(parsed.warnings.len(), 2, "{:?}", parsed.warnings);
    }

    #[test]
    fn numeric_system_properties_also_accept_hex_like_integer_getinteger() {
        assert_eq!(cfg("jute.maxbuffer=0xfffff\n").max_buffer, 0xFFFFF);
        assert_eq!(cfg("zookeeper.jute.maxbuffer=#10\n").max_buffer, 16);
        assert!(matches!(
            err("tickTime=0x10\n"),
            ConfigError::InvalidValue { .. }
        ));
    }

    #[test]
    fn jute_maxbuffer_and_container_interval_must_be_positive() {
        assert!(matches!(
            err("jute.maxbuffer=0\n"),
            ConfigError::InvalidValue { line: 1, .. }
        ));
        assert!(matches!(
            err("znode.container.checkIntervalMs=0\n"),
            ConfigError::InvalidValue { line: 1, .. }
        ));
        let c = ServerConfig {
            max_buffer: 0,
            ..ServerConfig::default()
        };
        assert!(c.validate().is_err());
    }

    #[test]
    fn duplicate_keys_last_value_wins_with_a_warning() {
        let parsed = parse(
            "dataDir=/x\ntickTime=1\ntickTime=2\njute.maxbuffer=5\n\
                            zookeeper.jute.maxbuffer=6\n",
        );
        assert_eq!(parsed.config.tick_time_ms, 2);
        assert_eq!(parsed.config.max_buffer, 6);
        assert_eq!(
            parsed.warnings,
            [
                "line 3: tickTime is set again (first on line 2); the last value wins",
                "line 5: zookeeper.jute.maxbuffer is set again (first on line 4); the last value \
                 wins",
            ]
        );
    }

    #[test]
    fn a_bad_value_overridden_later_is_not_an_error() {
        assert_eq!(cfg("tickTime=abc\ntickTime=10\n").tick_time_ms, 10);
    }

    #[test]
    fn unknown_keys_are_warnings_not_errors() {
        let parsed = parse("dataDir=/x\nfoo=bar\nclientPort=2181\n");
        assert_eq!(parsed.warnings, ["line 2: unknown key \"foo\" ignored"]);
        assert_eq!(parsed.config.client_port, 2181);
    }

    #[test]
    fn unsupported_zookeeper_keys_warn_that_corral_ignores_them() {
        let parsed = parse("dataDir=/x\nsslQuorum=true\nzookeeper.authProvider.1=x\ngroup.1=1:2\n");
        assert_eq!(
            parsed.warnings,
            [
                "line 2: sslQuorum is not supported by Corral and is ignored",
                "line 3: zookeeper.authProvider.1 is not supported by Corral and is ignored",
                "line 4: group.1 is not supported by Corral and is ignored",
            ]
        );
    }

    #[test]
    fn harmless_zookeeper_keys_parse_silently() {
        let parsed = parse(
            "dataDir=/x\nadmin.serverPort=8080\nmetricsProvider.httpPort=7000\n\
             metricsProvider.className=org.x.Prometheus\nclientPortListenBacklog=50\n\
             syncEnabled=true\nlocalSessionsUpgradingEnabled=true\n\
             zookeeper.snapshot.trust.empty=1\n",
        );
        assert_eq!(parsed.warnings, Vec::<String>::new());
    }

    #[test]
    fn four_letter_whitelist_default_allows_only_srvr() {
        let c = cfg("dataDir=/x\n");
        assert!(c.four_letter_whitelist.allows("srvr"));
        assert!(!c.four_letter_whitelist.allows("ruok"));
        assert!(!c.allows_four_letter_word("stat"));
    }

    #[test]
    fn four_letter_whitelist_star_allows_everything() {
        let list = FourLetterWhitelist::parse("ruok, * ");
        assert_eq!(list, FourLetterWhitelist::All);
        assert!(list.allows("dump") && list.allows("wchp"));
        assert_eq!(list.to_string(), "*");
    }

    #[test]
    fn four_letter_whitelist_trims_items_and_always_allows_srvr() {
        let c = cfg("4lw.commands.whitelist = stat , ruok,, mntr\n");
        let list = &c.four_letter_whitelist;
        assert!(list.allows("stat") && list.allows("ruok") && list.allows("mntr"));
        assert!(list.allows("srvr"));
        assert!(!list.allows("conf"));
        assert!(!list.allows("RUOK"), "words are case-sensitive");
        assert!(cfg("4lw.commands.whitelist=\n")
            .four_letter_whitelist
            .allows("srvr"));
        assert!(!cfg("4lw.commands.whitelist=\n")
            .four_letter_whitelist
            .allows("ruok"));
    }

    #[test]
    fn srvr_is_allowed_even_by_an_empty_hand_built_list() {
        assert!(FourLetterWhitelist::Only(BTreeSet::new()).allows("srvr"));
        assert!(!FourLetterWhitelist::Only(BTreeSet::new()).allows("ruok"));
    }

    #[test]
    fn unknown_word_in_the_whitelist_warns() {
        let parsed = parse("dataDir=/x\n4lw.commands.whitelist=ruok,nope\n");
        assert_eq!(
            parsed.warnings,
            ["line 2: \"nope\" in 4lw.commands.whitelist is not a four-letter word ZooKeeper knows"]
        );
    }

    #[test]
    fn read_only_mode_also_allows_isro() {
        assert!(!cfg("dataDir=/x\n").allows_four_letter_word("isro"));
        let c = cfg("readonlymode.enabled=true\n");
        assert!(c.allows_four_letter_word("isro"));
        assert!(!c.allows_four_letter_word("ruok"));
    }

    #[test]
    fn force_sync_takes_yes_or_no() {
        assert!(!cfg("forceSync=no\n").force_sync);
        assert!(cfg("forceSync=yes\n").force_sync);
        assert_eq!(
            err("forceSync=maybe\n"),
            invalid_value(1, "forceSync", "maybe", "expected yes or no")
        );
    }

    #[test]
    fn booleans_must_be_true_or_false_in_any_case() {
        assert!(cfg("reconfigEnabled=TRUE\n").reconfig_enabled);
        assert!(cfg("localSessionsEnabled=true\n").local_sessions_enabled);
        assert!(!cfg("reconfigEnabled=False\n").reconfig_enabled);
        assert_eq!(
            err("standaloneEnabled=yes\n"),
            invalid_value(1, "standaloneEnabled", "yes", "expected true or false")
        );
    }

    #[test]
    fn snap_count_below_two_is_raised_to_two_with_a_warning() {
        let parsed = parse("dataDir=/x\nsnapCount=1\n");
        assert_eq!(parsed.config.snap_count, 2);
        assert_eq!(
            parsed.warnings,
            ["line 2: snapCount=1 is below the minimum; using 2"]
        );
    }

    #[test]
    fn autopurge_snap_retain_count_below_three_is_raised_to_three_with_a_warning() {
        let parsed = parse("dataDir=/x\nautopurge.snapRetainCount=1\nautopurge.purgeInterval=-4\n");
        assert_eq!(parsed.config.autopurge_snap_retain_count, 3);
        assert_eq!(parsed.config.autopurge_purge_interval_hours, 0);
        assert_eq!(
            parsed.warnings,
            ["line 2: autopurge.snapRetainCount=1 is below the minimum; using 3"]
        );
        let c = cfg("autopurge.snapRetainCount=10\nautopurge.purgeInterval=24\n");
        assert_eq!(
            (
                c.autopurge_snap_retain_count,
                c.autopurge_purge_interval_hours
            ),
            (10, 24)
        );
    }

    #[test]
    fn super_digest_must_be_user_colon_hash() {
        assert!(matches!(
            err("DigestAuthenticationProvider.superDigest=nocolon\n"),
            ConfigError::InvalidValue { line: 1, ref key, .. } if key.starts_with("Digest")
        ));
        assert!(err("DigestAuthenticationProvider.superDigest=:hash\n")
            .to_string()
            .contains("line 1"));
    }

    #[test]
    fn election_alg_other_than_3_is_refused() {
        assert!(ServerConfig::parse_str("electionAlg=3\n").is_ok());
        assert_eq!(
            err("electionAlg=0\n"),
            invalid_value(
                1,
                "electionAlg",
                "0",
                "only 3 (fast leader election) is supported"
            )
        );
    }

    #[test]
    fn peer_type_is_case_insensitive_and_refuses_other_words() {
        assert_eq!(cfg("peerType=OBSERVER\n").peer_type, PeerType::Observer);
        assert_eq!(
            cfg("peerType=participant\n").peer_type,
            PeerType::Participant
        );
        assert!(matches!(
            err("peerType=voter\n"),
            ConfigError::InvalidValue { .. }
        ));
    }

    // --- server.N lines and ensemble rules ---

    #[test]
    fn server_line_parses_ports_type_and_client_address() {
        let spec: ServerSpec = "zk1:2888:3888:observer;10.0.0.1:2181".parse().unwrap();
        assert_eq!(
            spec,
            ServerSpec {
                host: "zk1".to_owned(),
                quorum_port: 2888,
                election_port: 3888,
                peer_type: PeerType::Observer,
                client: Some(HostPort {
                    host: "10.0.0.1".to_owned(),
                    port: 2181
                }),
            }
        );
        let plain: ServerSpec = "zk1:2888:3888".parse().unwrap();
        assert_eq!(
            (plain.peer_type, plain.client),
            (PeerType::Participant, None)
        );
    }

    #[test]
    fn server_line_with_only_a_client_port_means_all_interfaces() {
        let spec: ServerSpec = "zk1:2888:3888;2181".parse().unwrap();
        assert_eq!(
            spec.client,
            Some(HostPort {
                host: "0.0.0.0".to_owned(),
                port: 2181
            })
        );
    }

    #[test]
    fn server_line_accepts_bracketed_ipv6() {
        let spec: ServerSpec = "[fe80::1]:2888:3888;[::1]:2181".parse().unwrap();
        assert_eq!(spec.host, "fe80::1");
        assert_eq!(
            spec.client,
            Some(HostPort {
                host: "::1".to_owned(),
                port: 2181
            })
        );
        assert_eq!(
            spec.to_string(),
            "[fe80::1]:2888:3888:participant;[::1]:2181"
        );
    }

    #[test]
    fn server_spec_displays_in_zookeeper_form_and_parses_back() {
        for text in [
            "h:1:2",
            "h:1:2:observer",
            "h:1:2;9",
            "h:1:2:participant;c:9",
        ] {
            let spec: ServerSpec = text.parse().unwrap();
            assert_eq!(spec.to_string().parse::<ServerSpec>().unwrap(), spec);
        }
        let spec: ServerSpec = "h:1:2;9".parse().unwrap();
        assert_eq!(spec.to_string(), "h:1:2:participant;0.0.0.0:9");
    }

    #[test]
    fn malformed_server_lines_are_errors_with_line_and_reason() {
        let e = err("dataDir=/x\nserver.1=127.0.0.1:2888\n");
        assert_eq!(
            e,
            invalid_value(2, "server.1", "127.0.0.1:2888", SERVER_FORMAT)
        );
        assert!(e
            .to_string()
            .starts_with("line 2: invalid value \"127.0.0.1:2888\" for server.1"));
        for bad in [
            "h:1:2:3:4",
            "h:1:2;3;4",
            "h:x:2",
            "h:1:70000",
            ":1:2",
            "h:1:2;a:b:c",
            "[::1:1:2",
            "h:1:2|g:3:4",
        ] {
            let e = err(&format!("server.1={bad}\n"));
            assert!(
                matches!(&e, ConfigError::InvalidValue { line: 1, key, .. } if key == "server.1"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn equal_quorum_and_election_ports_are_refused() {
        let e = "h:2888:2888".parse::<ServerSpec>().unwrap_err();
        assert_eq!(
            e,
            ConfigError::InvalidServerSpec {
                spec: "h:2888:2888".to_owned(),
                reason: "quorum port and election port must be different (both 2888)".to_owned(),
            }
        );
    }

    #[test]
    fn unknown_peer_type_in_a_server_line_is_refused() {
        let e = "h:1:2:voter".parse::<ServerSpec>().unwrap_err();
        assert!(
            e.to_string().contains("unrecognised peer type \"voter\""),
            "{e}"
        );
    }

    #[test]
    fn server_id_must_be_a_number() {
        assert_eq!(
            err("server.x=h:1:2\n"),
            invalid_value(
                1,
                "server.x",
                "h:1:2",
                "server id \"x\" is not a non-negative integer"
            )
        );
    }

    #[test]
    fn single_server_with_standalone_enabled_runs_standalone_with_a_warning() {
        let parsed = parse("dataDir=/x\nserver.1=localhost:2888:3888;2181\n");
        assert!(!parsed.config.is_quorum());
        assert_eq!(
            parsed.warnings,
            ["only one server is listed and standaloneEnabled=true: running standalone"]
        );
    }

    #[test]
    fn single_server_with_standalone_disabled_is_a_quorum() {
        let c = cfg("dataDir=/x\nstandaloneEnabled=false\nserver.1=h:2888:3888\n");
        assert!(c.is_quorum());
    }

    #[test]
    fn three_servers_are_a_quorum_without_warnings() {
        let parsed = parse(ENSEMBLE);
        assert!(parsed.config.is_quorum());
        assert_eq!(parsed.config.servers.len(), 3);
        assert_eq!(parsed.config.servers[&2].host, "10.0.0.2");
        assert_eq!(parsed.warnings, Vec::<String>::new());
    }

    #[test]
    fn two_or_four_participants_get_zookeepers_advice() {
        let two = parse("dataDir=/x\nserver.1=a:1:2\nserver.2=b:1:2\n");
        assert!(two.warnings[0].contains("no server failure will be tolerated"));
        let four =
            parse("dataDir=/x\nserver.1=a:1:2\nserver.2=b:1:2\nserver.3=c:1:2\nserver.4=d:1:2\n");
        assert!(four.warnings[0].contains("consider an odd number"));
    }

    #[test]
    fn ensemble_needs_init_and_sync_limits_above_zero() {
        let e = err(&format!("{ENSEMBLE}initLimit=0\n"));
        assert_eq!(
            e,
            ConfigError::invalid("initLimit must be greater than 0 in an ensemble")
        );
        let e = err(&format!("{ENSEMBLE}syncLimit=0\n"));
        assert_eq!(
            e,
            ConfigError::invalid("syncLimit must be greater than 0 in an ensemble")
        );
        assert_eq!(
            cfg("initLimit=0\nsyncLimit=0\n").init_limit,
            0,
            "fine when standalone"
        );
    }

    #[test]
    fn observers_without_participants_are_refused() {
        let e = err("server.1=a:1:2:observer\nserver.2=b:1:2:observer\n");
        assert!(
            e.to_string().contains("observers without participants"),
            "{e}"
        );
    }

    #[test]
    fn observer_next_to_a_single_standalone_participant_is_refused() {
        let e = err("server.1=a:1:2\nserver.2=b:1:2:observer\n");
        assert!(e.to_string().contains("observers without a quorum"), "{e}");
    }

    #[test]
    fn standalone_disabled_needs_a_participant() {
        assert!(matches!(
            err("standaloneEnabled=false\n"),
            ConfigError::Invalid { .. }
        ));
    }

    #[test]
    fn extended_types_restrict_server_ids_to_1_through_254() {
        let ok = "extendedTypesEnabled=true\nserver.1=a:1:2\nserver.254=b:1:2\nserver.3=c:1:2\n";
        assert!(cfg(ok).extended_types_enabled);
        let e =
            err("server.1=a:1:2\nserver.255=b:1:2\nserver.3=c:1:2\nextendedTypesEnabled=true\n");
        assert!(
            e.to_string().contains("server id 255 is out of range"),
            "{e}"
        );
        assert!(err("zookeeper.extendedTypesEnabled=true\nserver.0=a:1:2\n")
            .to_string()
            .contains("server id 0"));
        assert!(cfg("server.1=a:1:2\nserver.300=b:1:2\nserver.3=c:1:2\n").is_quorum());
        let my = ServerConfig {
            extended_types_enabled: true,
            my_id: Some(255),
            ..ServerConfig::default()
        };
        assert!(my.validate().is_err());
    }

    // --- myid ---

    fn write_cfg(dir: &Path, body: &str) -> PathBuf {
        let path = dir.join("zoo.cfg");
        std::fs::write(&path, format!("dataDir={}\n{body}", dir.display())).unwrap();
        path
    }

    const THREE: &str = "server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.1:2889:3889\n\
                         server.3=127.0.0.1:2890:3890\n";

    #[test]
    fn from_file_reads_myid_from_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("myid"), "2\n").unwrap();
        let parsed = ServerConfig::from_file(write_cfg(dir.path(), THREE)).unwrap();
        assert_eq!(parsed.config.my_id, Some(2));
        assert_eq!(parsed.config.own_server().unwrap().quorum_port, 2889);
    }

    #[test]
    fn load_myid_without_a_file_is_none_when_standalone() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = ServerConfig {
            data_dir: dir.path().to_path_buf(),
            ..ServerConfig::default()
        };
        assert_eq!(c.load_myid(), Ok(None));
        assert_eq!(c.my_id, None);
        std::fs::write(dir.path().join("myid"), "7\r\nextra\n").unwrap();
        assert_eq!(c.load_myid(), Ok(Some(7)));
        assert_eq!(c.my_id, Some(7));
    }

    #[test]
    fn missing_myid_is_an_error_in_an_ensemble() {
        let dir = tempfile::tempdir().unwrap();
        let e = ServerConfig::from_file(write_cfg(dir.path(), THREE)).unwrap_err();
        assert!(
            matches!(&e, ConfigError::InvalidMyId { path, .. } if path == &dir.path().join("myid")),
            "{e}"
        );
    }

    #[test]
    fn non_numeric_myid_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("myid"), "replace this text\n").unwrap();
        let e = ServerConfig::from_file(write_cfg(dir.path(), THREE)).unwrap_err();
        assert!(
            e.to_string()
                .contains("\"replace this text\" is not a server id"),
            "{e}"
        );
    }

    #[test]
    fn myid_missing_from_the_server_list_is_an_error_in_an_ensemble() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("myid"), "9").unwrap();
        let e = ServerConfig::from_file(write_cfg(dir.path(), THREE)).unwrap_err();
        assert_eq!(
            e,
            ConfigError::invalid("myid is 9 but there is no server.9 line")
        );
    }

    #[test]
    fn own_server_line_supplies_the_client_address_when_client_port_is_absent() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("myid"), "2").unwrap();
        let body = "server.1=127.0.0.1:2888:3888;127.0.0.1:2181\n\
                    server.2=127.0.0.1:2889:3889;127.0.0.2:2182\nserver.3=127.0.0.1:2890:3890\n";
        let parsed = ServerConfig::from_file(write_cfg(dir.path(), body)).unwrap();
        assert_eq!(parsed.config.client_addr().to_string(), "127.0.0.2:2182");
    }

    #[test]
    fn static_client_address_contradicting_the_own_server_line_is_an_error() {
        // ZooKeeper 3.8 exits with "Invalid config" on exactly this (observed).
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("myid"), "3").unwrap();
        let body = format!("clientPort=2183\nclientPortAddress=127.0.0.1\n{THREE}").replace(
            "server.3=127.0.0.1:2890:3890",
            "server.3=127.0.0.1:2890:3890;2183",
        );
        let e = ServerConfig::from_file(write_cfg(dir.path(), &body)).unwrap_err();
        assert!(
            e.to_string()
                .contains("server.3 gives client address 0.0.0.0:2183"),
            "{e}"
        );
        let agreeing = body.replace("clientPortAddress=127.0.0.1\n", "");
        let parsed = ServerConfig::from_file(write_cfg(dir.path(), &agreeing)).unwrap();
        assert_eq!(parsed.config.client_addr().to_string(), "0.0.0.0:2183");
        // A wildcard static address only has to agree on the port; the line's host wins.
        let specific = agreeing.replace(";2183", ";127.0.0.3:2183");
        let parsed = ServerConfig::from_file(write_cfg(dir.path(), &specific)).unwrap();
        assert_eq!(parsed.config.client_addr().to_string(), "127.0.0.3:2183");
        let other_port = agreeing.replace(";2183", ";127.0.0.3:2184");
        assert!(ServerConfig::from_file(write_cfg(dir.path(), &other_port)).is_err());
    }

    #[test]
    fn peer_type_follows_the_server_list_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("myid"), "4").unwrap();
        let body = format!("{THREE}server.4=127.0.0.1:2891:3891:observer\n");
        let parsed = ServerConfig::from_file(write_cfg(dir.path(), &body)).unwrap();
        assert_eq!(parsed.config.peer_type, PeerType::Observer);
        assert_eq!(
            parsed.warnings,
            ["peerType=participant disagrees with server.4 (observer); following the server list"]
        );
    }

    #[test]
    fn from_file_on_a_missing_file_is_an_io_error_naming_the_path() {
        let e = ServerConfig::from_file("/nonexistent/zoo.cfg").unwrap_err();
        assert!(
            matches!(
                &e,
                ConfigError::Io {
                    kind: io::ErrorKind::NotFound,
                    ..
                }
            ),
            "{e}"
        );
        assert!(
            e.to_string()
                .starts_with("cannot read /nonexistent/zoo.cfg: "),
            "{e}"
        );
    }

    #[test]
    fn from_file_decodes_non_utf8_text_as_latin1() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zoo.cfg");
        std::fs::write(&path, b"dataDir=/d\xe9j\xe0\n").unwrap();
        let parsed = ServerConfig::from_file(&path).unwrap();
        assert_eq!(parsed.config.data_dir, PathBuf::from("/déjà"));
    }

    // --- conf rendering ---

    #[test]
    fn render_conf_standalone_matches_the_zookeeper_3_8_layout() {
        let c = cfg("dataDir=/var/zk\ndataLogDir=/var/zklog\nclientPort=21810\n");
        assert_eq!(
            c.render_conf(67_109_337, 42),
            "clientPort=21810\nsecureClientPort=-1\ndataDir=/var/zk/version-2\n\
             dataDirSize=67109337\ndataLogDir=/var/zklog/version-2\ndataLogSize=42\n\
             tickTime=2000\nmaxClientCnxns=60\nminSessionTimeout=4000\nmaxSessionTimeout=40000\n\
             clientPortListenBacklog=-1\nserverId=0\n"
        );
    }

    #[test]
    fn render_conf_prints_relative_dirs_absolute() {
        let c = cfg("dataDir=rel/zk\n");
        let cwd = std::env::current_dir().unwrap();
        let expected = format!("dataDir={}\n", cwd.join("rel/zk/version-2").display());
        assert!(
            c.render_conf(0, 0).contains(&expected),
            "{}",
            c.render_conf(0, 0)
        );
    }

    #[test]
    fn render_conf_of_an_ensemble_member_adds_ports_and_membership() {
        let mut c = cfg(ENSEMBLE);
        c.my_id = Some(3);
        c.peer_type = PeerType::Observer;
        let out = c.render_conf(1, 2);
        assert!(out.contains(
            "\nserverId=3\ninitLimit=10\nsyncLimit=5\nelectionAlg=3\n\
                              electionPort=3888\nquorumPort=2888\npeerType=1\nmembership: \n\
                              server.1=10.0.0.1:2888:3888:participant\n"
        ));
        assert!(
            out.ends_with("server.3=10.0.0.3:2888:3888:participant\nversion=0"),
            "{out}"
        );
        c.my_id = None;
        assert!(c
            .render_conf(1, 2)
            .contains("electionPort=-1\nquorumPort=-1\n"));
    }

    #[test]
    fn config_errors_compare_and_clone() {
        let e = err("tickTime=x\n");
        assert_eq!(e.clone(), e);
        assert_ne!(e, err("tickTime=y\n"));
    }
}
