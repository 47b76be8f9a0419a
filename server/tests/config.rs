//! Real-world `zoo.cfg` files parse unchanged, and `conf` matches what ZooKeeper 3.8 printed
//! for the same configuration.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use corral_server::config::{FourLetterWhitelist, PeerType, ServerConfig};

/// Debian's `/etc/zookeeper/conf_example/zoo.cfg` (zookeeper 3.8.0-11), verbatim, including
/// its trailing spaces.
const DEBIAN_SAMPLE: &str = "# The number of milliseconds of each tick
tickTime=2000
# The number of ticks that the initial 
# synchronization phase can take
initLimit=10
# The number of ticks that can pass between 
# sending a request and getting an acknowledgement
syncLimit=5
# the directory where the snapshot is stored.
# do not use /tmp for storage, /tmp here is just 
# example sakes.
dataDir=/tmp/zookeeper
# the port at which the clients will connect
clientPort=2181
# the maximum number of client connections.
# increase this if you need to handle more clients
#maxClientCnxns=60
#
# Be sure to read the maintenance section of the 
# administrator guide before turning on autopurge.
#
# https://zookeeper.apache.org/doc/current/zookeeperAdmin.html#sc_maintenance
#
# The number of snapshots to retain in dataDir
#autopurge.snapRetainCount=3
# Purge task interval in hours
# Set to \"0\" to disable auto purge feature
#autopurge.purgeInterval=1

## Metrics Providers
#
# https://prometheus.io Metrics Exporter
#metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider
#metricsProvider.httpHost=0.0.0.0
#metricsProvider.httpPort=7000
#metricsProvider.exportJvmInfo=true

";

#[test]
fn debian_sample_parses_without_warnings() {
    let parsed = ServerConfig::parse_str(DEBIAN_SAMPLE).unwrap();
    assert_eq!(parsed.warnings, Vec::<String>::new());
    let c = parsed.config;
    assert_eq!(c.tick_time_ms, 2000);
    assert_eq!((c.init_limit, c.sync_limit), (10, 5));
    assert_eq!(c.data_dir, PathBuf::from("/tmp/zookeeper"));
    assert_eq!(c.effective_data_log_dir(), Path::new("/tmp/zookeeper"));
    assert_eq!(
        c.client_addr(),
        "0.0.0.0:2181".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(c.max_client_cnxns, 60);
    assert_eq!(
        (c.min_session_timeout(), c.max_session_timeout()),
        (4000, 40_000)
    );
    assert_eq!(c.four_letter_whitelist, FourLetterWhitelist::default());
    assert!(!c.is_quorum());
}

#[test]
fn debian_sample_on_this_machine_parses_if_installed() {
    let path = Path::new("/etc/zookeeper/conf_example/zoo.cfg");
    if !path.exists() {
        return;
    }
    let parsed = ServerConfig::from_file(path).unwrap();
    assert_eq!(parsed.config.tick_time_ms, 2000);
    assert_eq!(parsed.config.client_port, 2181);
}

#[test]
fn docker_official_image_single_server_config_runs_standalone() {
    // What the `zookeeper` Docker image generates with default ZOO_* variables.
    let text = "dataDir=/data\ndataLogDir=/datalog\ntickTime=2000\ninitLimit=5\nsyncLimit=2\n\
                autopurge.snapRetainCount=3\nautopurge.purgeInterval=0\nmaxClientCnxns=60\n\
                standaloneEnabled=true\nadmin.enableServer=true\n\
                server.1=localhost:2888:3888;2181\n";
    let parsed = ServerConfig::parse_str(text).unwrap();
    assert!(!parsed.config.is_quorum());
    assert_eq!(
        parsed.config.effective_data_log_dir(),
        Path::new("/datalog")
    );
    assert_eq!(
        parsed.warnings,
        ["only one server is listed and standaloneEnabled=true: running standalone"]
    );
}

#[test]
fn docker_style_ensemble_takes_the_client_port_from_its_own_server_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("myid"), "2\n").unwrap();
    let cfg = dir.path().join("zoo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "dataDir={}\ntickTime=2000\ninitLimit=5\nsyncLimit=2\n\
             4lw.commands.whitelist=srvr, ruok, mntr, conf\n\
             server.1=zoo1:2888:3888;2181\nserver.2=zoo2:2888:3888;2182\n\
             server.3=zoo3:2888:3888;2181\n",
            data.display()
        ),
    )
    .unwrap();
    let parsed = ServerConfig::from_file(&cfg).unwrap();
    let c = &parsed.config;
    assert_eq!(parsed.warnings, Vec::<String>::new());
    assert!(c.is_quorum());
    assert_eq!(c.my_id, Some(2));
    assert_eq!(
        c.client_addr(),
        "0.0.0.0:2182".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(c.own_server().unwrap().host, "zoo2");
    assert!(c.allows_four_letter_word("mntr") && !c.allows_four_letter_word("dump"));
}

#[test]
fn ensemble_conf_matches_zookeeper_3_8_output() {
    // Server 2 of a 3-node ZooKeeper 3.8.0 ensemble on 127.0.0.1 answered `conf` with exactly
    // this text for this zoo.cfg (dataDir replaced, sizes passed through).
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("myid"), "2\n").unwrap();
    let cfg = dir.path().join("zoo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort=32182\n\
             clientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\nadmin.enableServer=false\n\
             server.1=127.0.0.1:32881:33881\n\
             server.2=127.0.0.1:32882:33882;127.0.0.1:32182\n\
             server.3=127.0.0.1:32883:33883:participant;32183\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let parsed = ServerConfig::from_file(&cfg).unwrap();
    assert_eq!(parsed.warnings, Vec::<String>::new());
    assert_eq!(parsed.config.peer_type, PeerType::Participant);
    let d = dir.path().join("version-2");
    let expected = format!(
        "clientPort=32182\nsecureClientPort=-1\ndataDir={d}\ndataDirSize=627\n\
         dataLogDir={d}\ndataLogSize=627\ntickTime=2000\nmaxClientCnxns=60\n\
         minSessionTimeout=4000\nmaxSessionTimeout=40000\nclientPortListenBacklog=-1\n\
         serverId=2\ninitLimit=10\nsyncLimit=5\nelectionAlg=3\nelectionPort=33882\n\
         quorumPort=32882\npeerType=0\nmembership: \n\
         server.1=127.0.0.1:32881:33881:participant\n\
         server.2=127.0.0.1:32882:33882:participant;127.0.0.1:32182\n\
         server.3=127.0.0.1:32883:33883:participant;0.0.0.0:32183\nversion=0",
        d = d.display()
    );
    assert_eq!(parsed.config.render_conf(627, 627), expected);
}

#[test]
fn production_style_config_with_system_properties_parses() {
    let text = "tickTime=2000\ndataDir=/var/lib/zookeeper/data\n\
                dataLogDir=/var/lib/zookeeper/log\nclientPort=2181\nmaxClientCnxns=0\n\
                minSessionTimeout=6000\nmaxSessionTimeout=120000\n\
                autopurge.snapRetainCount=5\nautopurge.purgeInterval=12\n\
                4lw.commands.whitelist=*\njute.maxbuffer=10485760\nsnapCount=50000\n\
                preAllocSize=131072\nforceSync=yes\nreconfigEnabled=true\n\
                zookeeper.extendedTypesEnabled=true\n\
                metricsProvider.className=org.apache.zookeeper.metrics.prometheus.\
                PrometheusMetricsProvider\nmetricsProvider.httpPort=7000\n";
    let parsed = ServerConfig::parse_str(text).unwrap();
    assert_eq!(parsed.warnings, Vec::<String>::new());
    let c = parsed.config;
    assert_eq!(
        (c.min_session_timeout(), c.max_session_timeout()),
        (6000, 120_000)
    );
    assert_eq!(c.max_client_cnxns, 0);
    assert_eq!(
        (
            c.autopurge_snap_retain_count,
            c.autopurge_purge_interval_hours
        ),
        (5, 12)
    );
    assert_eq!(c.four_letter_whitelist, FourLetterWhitelist::All);
    assert_eq!(c.max_buffer, 10 * 1024 * 1024);
    assert_eq!((c.snap_count, c.pre_alloc_size_kb), (50_000, 131_072));
    assert!(c.force_sync && c.reconfig_enabled && c.extended_types_enabled);
}
