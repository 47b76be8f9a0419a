//! A three-process ensemble laid out as Apache ZooKeeper's: one zoo.cfg and one myid per
//! member, each started as `corral-server --config <zoo.cfg>`; the leader is killed with
//! SIGKILL and the others carry on with every acknowledged write.

mod common;

use common::Raw;
use corral_proto::{Acl, CreateRequest, PathRequest, PathWatchRequest, Request};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Member {
    child: Option<Child>,
    cfg: std::path::PathBuf,
    client: SocketAddr,
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    corral_server::testing::free_port().expect("a free loopback port")
}

fn spawn(cfg: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_corral-server"))
        .arg("--config")
        .arg(cfg)
        .env("CORRAL_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start corral-server")
}

async fn mode(addr: SocketAddr) -> Option<String> {
    let text = corral_server::testing::four_letter(addr, "srvr")
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("Mode: "))
        .map(str::to_owned)
}

async fn wait_serving(addr: SocketAddr, bound: Duration) {
    let deadline = Instant::now() + bound;
    while mode(addr).await.is_none() {
        assert!(
            Instant::now() < deadline,
            "{addr} did not serve within {bound:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_leader(members: &[Member], bound: Duration) -> usize {
    let deadline = Instant::now() + bound;
    loop {
        for (i, m) in members.iter().enumerate() {
            if m.child.is_some() && mode(m.client).await.as_deref() == Some("leader") {
                return i;
            }
        }
        assert!(Instant::now() < deadline, "no leader within {bound:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_started_from_zoo_cfg_survive_a_sigkill_of_the_leader() {
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<(u16, u16, u16)> = (0..3)
        .map(|_| (free_port(), free_port(), free_port()))
        .collect();
    let server_lines: String = ports
        .iter()
        .enumerate()
        .map(|(i, (_, q, e))| format!("server.{}=127.0.0.1:{q}:{e}\n", i + 1))
        .collect();
    let mut members = Vec::new();
    for (i, (client, _, _)) in ports.iter().enumerate() {
        let data = dir.path().join(format!("zk{}", i + 1));
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("myid"), format!("{}\n", i + 1)).unwrap();
        let cfg = dir.path().join(format!("zoo{}.cfg", i + 1));
        std::fs::write(
            &cfg,
            format!(
                "tickTime=100\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={client}\n\
                 clientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\n{server_lines}",
                data.display()
            ),
        )
        .unwrap();
        members.push(Member {
            child: Some(spawn(&cfg)),
            cfg,
            client: SocketAddr::from(([127, 0, 0, 1], *client)),
        });
    }
    let leader = wait_leader(&members, Duration::from_secs(20)).await;
    let follower = (leader + 1) % 3;
    wait_serving(members[follower].client, Duration::from_secs(20)).await;
    let mut c = Raw::connect(members[follower].client).await;
    let mut acked = Vec::new();
    for i in 0..100 {
        let path = format!("/p{i}");
        let (h, _) = c
            .call(&Request::Create(CreateRequest {
                path: path.clone(),
                data: Some(vec![1]),
                acl: Acl::open_unsafe(),
                flags: 0,
            }))
            .await;
        assert_eq!(h.err, 0);
        acked.push(path);
    }
    drop(c);
    // SIGKILL: no chance to flush or say goodbye.
    let mut killed = members[leader].child.take().unwrap();
    killed.kill().unwrap();
    killed.wait().unwrap();
    let started = Instant::now();
    let next = wait_leader(&members, Duration::from_secs(20)).await;
    assert_ne!(next, leader);
    eprintln!("new leader after {:?}", started.elapsed());
    // Any member but the killed one: the new leader's follower or the new leader itself.
    let survivor = (leader + 1) % 3;
    wait_serving(members[survivor].client, Duration::from_secs(20)).await;
    let mut c = Raw::connect(members[survivor].client).await;
    let (h, _) = c
        .call(&Request::Sync(PathRequest { path: "/".into() }))
        .await;
    assert_eq!(h.err, 0);
    for p in &acked {
        let (h, _) = c
            .call(&Request::GetData(PathWatchRequest {
                path: p.clone(),
                watch: false,
            }))
            .await;
        assert_eq!(
            h.err, 0,
            "{p} was acknowledged and must survive the leader's SIGKILL"
        );
    }
    // The killed member restarts from its files and rejoins.
    members[leader].child = Some(spawn(&members[leader].cfg.clone()));
    let deadline = Instant::now() + Duration::from_secs(20);
    while mode(members[leader].client).await.is_none() {
        assert!(
            Instant::now() < deadline,
            "the restarted member never rejoined"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut c = Raw::connect(members[leader].client).await;
    let (h, _) = c
        .call(&Request::Sync(PathRequest { path: "/".into() }))
        .await;
    assert_eq!(h.err, 0);
    let (h, _) = c
        .call(&Request::GetData(PathWatchRequest {
            path: "/p99".into(),
            watch: false,
        }))
        .await;
    assert_eq!(h.err, 0);
}
