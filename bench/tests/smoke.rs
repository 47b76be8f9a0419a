//! CI smoke test: the bench runs for about a second against an in-process Corral server and
//! its output is sane. No timing assertions beyond "some work got done".

use std::time::Duration;

use clap::Parser;
use corral_bench::failover::{run_failover, FailoverConfig};
use corral_bench::{run_load, Cli, LoadConfig, Op, Record, Target};
use corral_server::testing::TestingServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_load_reports_consistent_counts_and_ordered_latencies() {
    let server = TestingServer::start().await.unwrap();
    let target = Target {
        // The server runs in this process, so /proc of our own PID is its usage.
        server_pid: vec![std::process::id()],
        label: "corral".into(),
        ..Target::new(server.connect_string())
    };
    let cfg = LoadConfig {
        op: Op::Mixed,
        sessions: 4,
        in_flight: 8,
        read_ratio: 0.8,
        keys: 64,
        duration: Duration::from_millis(1200),
        warmup: Duration::from_millis(200),
        ..LoadConfig::default()
    };
    let report = run_load(&target, &cfg).await.unwrap();
    let r = &report.record;

    assert_eq!(r.scenario, "mixed80-4x8");
    assert!(r.ops > 0 && r.throughput_ops_s > 0.0, "{r:?}");
    assert!(r.reads > 0 && r.writes > 0, "{r:?}");
    assert_eq!(r.reads + r.writes, r.ops);
    assert_eq!(r.errors, 0, "{:?}", r.error_kinds);
    assert_eq!(report.per_session_ops.len(), 4);
    assert_eq!(report.per_session_ops.iter().sum::<u64>(), r.ops);
    assert!(r.session_ops_min <= r.session_ops_max);

    let lat = r.latency_us.expect("latencies recorded");
    assert_eq!(lat.count, r.ops);
    assert!(lat.p50 <= lat.p90 && lat.p90 <= lat.p99, "{lat:?}");
    assert!(lat.p99 <= lat.p999 && lat.p999 <= lat.max, "{lat:?}");
    assert_eq!(r.read_latency_us.unwrap().count, r.reads);
    assert_eq!(r.write_latency_us.unwrap().count, r.writes);
    let usage = r.server.expect("server usage from /proc");
    assert!(usage.rss_kb > 0 && usage.cpu_s >= 0.0, "{usage:?}");

    let line = r.to_json_line();
    assert!(!line.contains('\n'));
    let value: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(value["ops"], r.ops);
    assert_eq!(value["latency_us"]["p99"], lat.p99);
    // serde_json's float parsing may differ in the last bit, so compare the rest exactly.
    let back = Record::from_json_line(&line).unwrap();
    assert_eq!(
        (back.ops, back.reads, back.writes),
        (r.ops, r.reads, r.writes)
    );
    assert_eq!(back.latency_us.map(|l| l.p99), Some(lat.p99));
    assert!((back.throughput_ops_s - r.throughput_ops_s).abs() <= 1e-9 * r.throughput_ops_s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_suite_through_the_command_line_writes_parsable_json_lines() {
    let server = TestingServer::start().await.unwrap();
    let json =
        std::env::temp_dir().join(format!("corral-bench-smoke-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&json);
    let servers = server.connect_string();
    let cli = Cli::try_parse_from([
        "corral-bench",
        "suite",
        "--quick",
        "--servers",
        &servers,
        "--label",
        "corral",
        "-n",
        "2",
        "-k",
        "4",
        "--duration",
        "300ms",
        "--warmup",
        "100ms",
        "--watchers",
        "20",
        "--fill-nodes",
        "300",
        "--only",
        "set-1x1,create-,watch,fill",
        "--json",
        json.to_str().unwrap(),
    ])
    .unwrap();
    corral_bench::run(cli).await.unwrap();

    let text = std::fs::read_to_string(&json).unwrap();
    let _ = std::fs::remove_file(&json);
    let records: Vec<Record> = text
        .lines()
        .map(|l| Record::from_json_line(l).unwrap())
        .collect();
    let names: Vec<&str> = records.iter().map(|r| r.scenario.as_str()).collect();
    assert_eq!(names, ["set-1x1", "create-2x4", "watch-20", "fill-300"]);
    for r in &records {
        assert!(r.ops > 0 && r.throughput_ops_s > 0.0, "{r:?}");
        assert_eq!(r.errors, 0, "{r:?}");
        let lat = r.latency_us.unwrap();
        assert!(lat.p50 <= lat.p99 && lat.p99 <= lat.max, "{r:?}");
    }
    let watch = &records[2];
    assert_eq!(watch.ops, 20, "every watcher notified once");
    assert!(watch.metrics["notify_all_ms"] > 0.0);
    let fill = &records[3];
    assert_eq!(fill.metrics["nodes_created"], 300.0);
    assert_eq!(fill.ops, 301, "300 leaves and their one parent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_refuses_standalone_servers_before_killing_anything() {
    let server = TestingServer::start().await.unwrap();
    let addr = server.connect_string();
    let target = Target::new(format!("{addr},{addr},{addr}"));
    let cfg = FailoverConfig {
        // Never used: the check fails before any kill.
        pids: vec![u32::MAX; 3],
        ..FailoverConfig::default()
    };
    let e = run_failover(&target, &cfg).await.unwrap_err();
    assert!(e.to_string().contains("standalone"), "{e}");
    let one = Target::new(addr);
    let e = run_failover(&one, &cfg).await.unwrap_err();
    assert!(e.to_string().contains("at least 3 servers"), "{e}");
}
