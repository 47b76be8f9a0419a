//! The maintenance subcommands of the binary: `log-dump`, `snapshot-dump`, `purge`.

mod storage_util;

use corral_server::storage::{segment_file_name, snapshot_file_name};
use std::process::{Command, Output};
use storage_util::*;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_corral-server"))
        .args(args)
        .env("CORRAL_LOG", "warn")
        .output()
        .expect("run corral-server")
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// A session, an ephemeral, three creates, a setData; snapshot at 6; one more create.
async fn sample(cfg: &corral_server::storage::StorageConfig) {
    let (mut h, _) = Harness::open(cfg).unwrap();
    h.write(vec![
        open_session(1, 0xabc, 6000),
        create(2, "/e", 0xabc),
        create(3, "/a", 0),
        create(4, "/b", 0),
        create(5, "/c", 0),
        set(6, "/a", b"hello", 1),
    ])
    .await;
    h.snapshot_and_wait(vec![(0xabc, 6000)]).await;
    h.write(vec![create(7, "/d", 0)]).await;
    h.close().await;
}

#[tokio::test]
async fn log_dump_prints_each_transaction_as_text_and_json() {
    let root = tempfile::tempdir().unwrap();
    let cfg = cfg(root.path());
    sample(&cfg).await;
    let seg = cfg.data_log_dir.join(segment_file_name(1));
    let text = stdout(&run(&["log-dump", seg.to_str().unwrap()]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 7, "{text}");
    assert!(
        lines[0].starts_with("0x0000000000000001 2023-11-14T22:13:20.001Z session 0xabc cxid 1 createSession - timeout=6000ms"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains(" create /e data=3B acl=1 ephemeral=true"),
        "{}",
        lines[1]
    );
    assert!(
        lines[5].contains(" setData /a data=5B version=1"),
        "{}",
        lines[5]
    );
    assert_eq!(lines[6], "6 transactions; clean end");

    let json = stdout(&run(&["log-dump", seg.to_str().unwrap(), "--json"]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["count"], 6);
    assert_eq!(v["first_zxid"], "0x1");
    assert_eq!(v["end"], "clean");
    assert_eq!(v["transactions"][5]["type"], "setData");
    assert_eq!(v["transactions"][5]["path"], "/a");
    assert_eq!(v["transactions"][0]["session"], "0xabc");
}

#[tokio::test]
async fn log_dump_of_a_corrupt_segment_fails_naming_the_offset() {
    let root = tempfile::tempdir().unwrap();
    let cfg = cfg(root.path());
    sample(&cfg).await;
    let seg = cfg.data_log_dir.join(segment_file_name(1));
    let (_, off) = record_offsets(&seg)[2];
    flip_bit(&seg, off + 12);
    let o = run(&["log-dump", seg.to_str().unwrap()]);
    assert!(!o.status.success());
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).lines().count(),
        2,
        "the records before"
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("corrupt at offset {off}")), "{err}");
}

#[tokio::test]
async fn snapshot_dump_summarises_zxid_nodes_sessions_and_digest() {
    let root = tempfile::tempdir().unwrap();
    let cfg = cfg(root.path());
    sample(&cfg).await;
    let snap = cfg.data_dir.join(snapshot_file_name(6));
    let loaded = corral_server::storage::snapshot::read(&snap).unwrap();
    let text = stdout(&run(&["snapshot-dump", snap.to_str().unwrap()]));
    assert!(text.contains("zxid: 0x6\n"), "{text}");
    assert!(text.contains("nodes: 8\n"), "4 system nodes + 4: {text}");
    assert!(
        text.contains(&format!("digest: 0x{:016x}\n", loaded.tree.digest())),
        "{text}"
    );
    assert!(
        text.contains("  0xabc timeout 6000 ms, 1 ephemerals\n"),
        "{text}"
    );

    let json = stdout(&run(&["snapshot-dump", snap.to_str().unwrap(), "--json"]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["zxid"], "0x6");
    assert_eq!(v["nodes"], 8);
    assert_eq!(v["sessions"][0]["id"], "0xabc");
    assert_eq!(v["sessions"][0]["timeout_ms"], 6000);
    assert_eq!(v["data_size"], loaded.tree.approximate_data_size());
}

#[tokio::test]
async fn purge_subcommand_keeps_n_snapshots() {
    let root = tempfile::tempdir().unwrap();
    let cfg = cfg(root.path());
    let (mut h, _) = Harness::open(&cfg).unwrap();
    for i in 0..5 {
        h.write(creates(i * 10 + 1..=i * 10 + 10)).await;
        h.snapshot_and_wait(vec![]).await;
    }
    h.close().await;
    let data = root.path().join("data");
    let log = root.path().join("log");
    let refused = run(&["purge", "--data-dir", data.to_str().unwrap(), "-n", "2"]);
    assert!(!refused.status.success(), "fewer than 3 is refused");
    let out = stdout(&run(&[
        "purge",
        "--data-dir",
        data.to_str().unwrap(),
        "--data-log-dir",
        log.to_str().unwrap(),
        "-n",
        "3",
    ]));
    assert!(
        out.contains("kept 3 snapshot(s); removed 4 file(s)"),
        "{out}"
    );
    let snaps: Vec<i64> = snapshots(&cfg).into_iter().map(|(z, _)| z).collect();
    assert_eq!(snaps, [30, 40, 50]);
    let (h, _) = Harness::open(&cfg).unwrap();
    assert_eq!(h.tree.last_zxid(), 50);
    h.close().await;
}
