//! Behaviour of corral-cli on its own (no zkCli needed): scripted and one-shot runs
//! against an in-process server.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{normalise, run_corral, run_corral_args, server};
use corral_client::Client;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

fn one_shot(server: &corral_server::testing::TestingServer, command: &str) -> Vec<String> {
    let mut args = vec!["-server".to_owned(), server.connect_string()];
    args.extend(command.split(' ').map(str::to_owned));
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_then_get_prints_the_data() {
    let s = server().await;
    let (out, code) = run_corral(&s, "create /b hello\nget /b\nget -s /b\n").await;
    let t = normalise(&out, code);
    assert_eq!(
        t.lines[..7],
        [
            "Connecting to <server>",
            "Welcome to ZooKeeper!",
            "JLine support is disabled",
            "Created /b",
            "hello",
            "hello",
            "cZxid = Z+0",
        ],
        "{out}"
    );
    assert_eq!(t.lines.last().map(String::as_str), Some("[exit 0]"));
    assert_eq!(t.events, ["None null (SyncConnected)"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shot_exit_codes_follow_success_and_failure() {
    let s = server().await;
    let cases = [
        ("create /x data", 0, "Created /x"),
        ("get /x", 0, "data"),
        ("create /x again", 1, "Node already exists: /x"),
        ("get /missing", 1, "Node does not exist: /missing"),
        ("set -v 7 /x y", 1, "version No is not valid : /x"),
        ("create /x/child c", 0, "Created /x/child"),
        ("delete /x", 1, "Node not empty: /x"),
        ("create /locked x ip:10.1.2.3:cdrwa", 0, "Created /locked"),
        ("get /locked", 1, "Insufficient permission : /locked"),
        ("create /badacl x nonsense", 1, "Acl is not valid : null"),
        ("set /x", 1, "set [-s] [-v version] path data"),
        ("ls -z /", 1, "Unrecognized option: -z"),
        ("get relative", 1, "Path must start with / character"),
        (
            "nosuchcommand",
            127,
            "Command not found: Command not found nosuchcommand",
        ),
        ("ls -R /x", 0, "/x/child"),
        (
            "deleteall /zookeeper",
            0,
            "Failed to delete some node(s) in the subtree!",
        ),
        ("deleteall /x", 0, "Connecting to"),
        ("get /x", 1, "Node does not exist: /x"),
    ];
    for (command, want_code, want_line) in cases {
        let (out, code) = run_corral_args(&one_shot(&s, command), "").await;
        assert_eq!(code, want_code, "{command}: {out}");
        assert!(
            out.contains(want_line),
            "{command}: no {want_line:?} in\n{out}"
        );
        assert!(out.starts_with("Connecting to "), "{command}: {out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_exits_with_its_last_commands_code() {
    let s = server().await;
    let (_, code) = run_corral(&s, "ls /missing\n").await;
    assert_eq!(code, 1);
    let (_, code) = run_corral(&s, "ls /missing\nls /\n").await;
    assert_eq!(code, 0);
    // quit keeps the code of the command before it.
    let (_, code) = run_corral(&s, "nosuch\nquit\n").await;
    assert_eq!(code, 127);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_events_print_once_per_notification() {
    let s = server().await;
    let script = "create /w x\nget -w /w\nstat -w /w\naddWatch -m PERSISTENT /w\n\
                  set /w 1\nset /w 2\nremovewatches /w\nset /w 3\nquit\n";
    let (out, code) = run_corral(&s, script).await;
    let t = normalise(&out, code);
    assert_eq!(
        t.events,
        [
            "None null (SyncConnected)",
            "NodeDataChanged /w (SyncConnected)",
            "NodeDataChanged /w (SyncConnected)",
            "PersistentWatchRemoved /w (SyncConnected)",
            "None null (Closed)",
        ],
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn printwatches_off_silences_events() {
    let s = server().await;
    let script = "create /p x\nget -w /p\nprintwatches off\nset /p 1\nprintwatches\n\
                  printwatches on\nget -w /p\nset /p 2\nquit\n";
    let (out, code) = run_corral(&s, script).await;
    let t = normalise(&out, code);
    assert!(t.lines.contains(&"printwatches is off".to_owned()), "{out}");
    assert_eq!(
        t.events,
        [
            "None null (SyncConnected)",
            "NodeDataChanged /p (SyncConnected)",
            "None null (Closed)",
        ],
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_from_other_clients_print_while_the_shell_waits() {
    let s = server().await;
    let other = Client::connect(&s.connect_string()).await.unwrap();
    other
        .create("/idle", b"v0", &corral_client::CreateOptions::persistent())
        .await
        .unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_corral-cli"))
        .args(["-server", &s.connect_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    stdin.write_all(b"get -w /idle\n").await.unwrap();
    wait_for(&mut lines, "v0").await;
    // The shell now waits for input; the change must show up anyway.
    other.set_data("/idle", b"v1", None).await.unwrap();
    wait_for(
        &mut lines,
        "WatchedEvent state:SyncConnected type:NodeDataChanged path:/idle",
    )
    .await;
    drop(stdin);
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
}

/// Reads output lines until `want`, for at most 20 s.
async fn wait_for(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    want: &str,
) {
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line == want {
                return;
            }
        }
        panic!("output ended before {want:?}");
    })
    .await
    .unwrap_or_else(|_| panic!("no {want:?} within 20 s"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_and_its_ephemerals_end_with_the_shell() {
    let s = server().await;
    let (out, code) = run_corral_args(&one_shot(&s, "create -e /eph x"), "").await;
    assert_eq!(code, 0, "{out}");
    let check = Client::connect(&s.connect_string()).await.unwrap();
    assert_eq!(check.exists("/eph").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_close_commands_say_not_connected_until_connect() {
    let s = server().await;
    let script = "create /c x\nclose\nget /c\nconnect\nget /c\n";
    let (out, code) = run_corral(&s, script).await;
    let t = normalise(&out, code);
    let tail: Vec<&str> = t.lines.iter().skip(3).map(String::as_str).collect();
    assert_eq!(
        tail,
        ["Created /c", "Not connected", "x", "[exit 0]"],
        "{out}"
    );
    assert_eq!(
        t.events,
        [
            "None null (SyncConnected)",
            "None null (Closed)",
            "None null (SyncConnected)",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_and_redo_replay_commands() {
    let s = server().await;
    let script = "create /h 1\nset /h 2\nget /h\nset /h 3\nredo 2\nhistory\n";
    let (out, code) = run_corral(&s, script).await;
    let t = normalise(&out, code);
    let tail: Vec<&str> = t.lines.iter().skip(3).map(String::as_str).collect();
    assert_eq!(
        tail,
        [
            "Created /h",
            "2",
            "3",
            "0 - create /h 1",
            "1 - set /h 2",
            "2 - get /h",
            "3 - set /h 3",
            "4 - get /h",
            "5 - history",
            "[exit 0]",
        ],
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_reports_connection_loss() {
    // Port 1 on loopback refuses connections.
    let args: Vec<String> = ["-server", "127.0.0.1:1", "-timeout", "1000", "ls", "/"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let (out, code) = run_corral_args(&args, "").await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("KeeperErrorCode = ConnectionLoss for /"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_loss_and_recovery_print_state_events() {
    let mut s = server().await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_corral-cli"))
        .args(["-server", &s.connect_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    stdin.write_all(b"ls /zookeeper\n").await.unwrap();
    wait_for(&mut lines, "[config, quota]").await;
    s.stop().await;
    wait_for(
        &mut lines,
        "WatchedEvent state:Disconnected type:None path:null",
    )
    .await;
    s.restart().await.unwrap();
    wait_for(
        &mut lines,
        "WatchedEvent state:SyncConnected type:None path:null",
    )
    .await;
    stdin.write_all(b"ls /zookeeper\n").await.unwrap();
    wait_for(&mut lines, "[config, quota]").await;
    drop(stdin);
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
}
