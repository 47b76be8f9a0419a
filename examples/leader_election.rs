//! Three contenders for leadership; the leader's session is killed, and another takes over.
//!
//! ```text
//! cargo run --example leader_election                               # in-process ensemble
//! cargo run --example leader_election -- --connect 127.0.0.1:2181  # your ensemble
//! ```
//!
//! Options: `--connect host:port[,host:port][/chroot]` (without it, the example starts a
//! three-server in-process Corral ensemble, `corral::server::testing::TestingCluster`),
//! `--path PATH` (default `/corral-examples/leader`), `--kills N` (how many leaders to
//! depose, default 3).
//!
//! Each contender runs a `LeaderLatch` (Curator's layout, so Java `LeaderLatch`es on the
//! same path take part too) and prints its state changes. To depose the leader, the example
//! kills its session the way a crash would be seen by the ensemble: another client resumes
//! the session and closes it, so the leader's node goes. The deposed contender's client
//! then starts a new session and the latch rejoins as a follower.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use corral::client::Client;
use corral::recipes::leader::{LatchState, LeaderLatch};
use corral::server::testing::TestingCluster;

struct Args {
    connect: Option<String>,
    path: String,
    kills: u32,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        connect: None,
        path: "/corral-examples/leader".into(),
        kills: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--connect" => args.connect = Some(value()?),
            "--path" => args.path = value()?,
            "--kills" => args.kills = value()?.parse().context("--kills")?,
            "-h" | "--help" => {
                println!("usage: leader_election [--connect HOSTS] [--path PATH] [--kills N]");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    Ok(args)
}

/// One contender: its client (renewing its session after an expiry) and its latch.
struct Contender {
    name: String,
    client: Client,
    latch: LeaderLatch,
}

async fn contender(connect: &str, path: &str, name: &str) -> anyhow::Result<Contender> {
    let client = Client::builder(connect)
        .with_session_timeout(Duration::from_secs(6))
        .with_session_renewal(true)
        .connect()
        .await
        .with_context(|| format!("{name}: connect to {connect}"))?;
    let latch = LeaderLatch::start_with_id(client.clone(), path, name);
    // Print every state change of this contender.
    let mut states = latch.state_watcher();
    let who = name.to_owned();
    tokio::spawn(async move {
        loop {
            let state = states.borrow_and_update().clone();
            match &state {
                LatchState::Leader(term) => println!(
                    "[{who}] LEADER (fencing token {}, node {})",
                    term.fencing_token(),
                    term.node()
                ),
                LatchState::Follower => println!("[{who}] follower"),
                LatchState::Suspended => println!("[{who}] suspended: not claiming leadership"),
                LatchState::Joining => println!("[{who}] joining"),
                other => println!("[{who}] {other:?}"),
            }
            if state.is_final() || states.changed().await.is_err() {
                return;
            }
        }
    });
    Ok(Contender {
        name: name.to_owned(),
        client,
        latch,
    })
}

/// Waits until exactly one contender leads (and, with `settled`, all the others follow);
/// returns its index.
async fn single_leader(contenders: &[Contender], settled: bool) -> anyhow::Result<usize> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let leaders: Vec<usize> = (0..contenders.len())
            .filter(|i| contenders[*i].latch.has_leadership())
            .collect();
        let following = contenders
            .iter()
            .filter(|c| c.latch.state() == LatchState::Follower)
            .count();
        if let [one] = leaders[..] {
            if !settled || following == contenders.len() - 1 {
                return Ok(one);
            }
        }
        if leaders.len() > 1 {
            bail!("two leaders at once: {leaders:?}");
        }
        if Instant::now() >= deadline {
            bail!("no leader within 30 s");
        }
        // Wait for any contender's next state change (bounded).
        let mut watchers: Vec<_> = contenders.iter().map(|c| c.latch.state_watcher()).collect();
        let changed = futures_any(&mut watchers);
        let _ = tokio::time::timeout(Duration::from_millis(500), changed).await;
    }
}

/// Completes when any watcher sees a change.
async fn futures_any(watchers: &mut [tokio::sync::watch::Receiver<LatchState>]) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    let mut tasks = Vec::new();
    for w in watchers.iter() {
        let mut w = w.clone();
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            let _ = w.changed().await;
            let _ = tx.send(()).await;
        }));
    }
    let _ = rx.recv().await;
    for t in tasks {
        t.abort();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let mut _cluster = None;
    let connect = match &args.connect {
        Some(c) => {
            println!("using the ensemble at {c}");
            c.clone()
        }
        None => {
            let cluster = TestingCluster::start(3)
                .await
                .context("start an in-process ensemble")?;
            let leader = cluster
                .wait_for_leader(Duration::from_secs(30))
                .await
                .context("the ensemble elects a leader")?;
            let connect = cluster.connect_string();
            println!("started a three-server in-process Corral ensemble at {connect} (server {leader} leads it)");
            _cluster = Some(cluster);
            connect
        }
    };
    let mut contenders = Vec::new();
    for name in ["A", "B", "C"] {
        contenders.push(contender(&connect, &args.path, name).await?);
    }
    for kill in 1..=args.kills {
        let leader = single_leader(&contenders, true).await?;
        let participants = contenders[0].latch.participants().await?;
        let ids: Vec<String> = participants
            .iter()
            .map(|p| format!("{}{}", p.id(), if p.is_leader() { "*" } else { "" }))
            .collect();
        println!("participants (leader starred): {}", ids.join(" "));
        let victim = &contenders[leader];
        let token = victim.latch.term().map(|t| t.fencing_token());
        println!(
            "--- kill {kill}/{}: killing {}'s session {}",
            args.kills,
            victim.name,
            victim.client.session_id()
        );
        let status = victim.client.status();
        let started = Instant::now();
        // Resume the session from another client and close it: the ensemble expires it
        // and deletes its ephemeral latch node, exactly as if the process had died.
        let killer = Client::builder(connect.as_str())
            .with_session(status.session_id, status.password())
            .connect()
            .await
            .context("resume the leader's session")?;
        killer.close().await?;
        // Someone else leads now.
        loop {
            let next = single_leader(&contenders, false).await?;
            if next != leader {
                let term = contenders[next].latch.term();
                println!(
                    "--- {} took over after {:?} (token {} > {})",
                    contenders[next].name,
                    started.elapsed(),
                    term.map(|t| t.fencing_token().to_string())
                        .unwrap_or_default(),
                    token.map(|t| t.to_string()).unwrap_or_default(),
                );
                break;
            }
            // The deposed leader has not noticed yet: wait until it stops claiming.
            let mut deposed = contenders[leader].latch.state_watcher();
            let _ = tokio::time::timeout(
                Duration::from_secs(30),
                deposed.wait_for(|s| !s.is_leader()),
            )
            .await;
        }
    }
    // Let the last deposed contender settle back in as a follower, then leave.
    single_leader(&contenders, true).await?;
    for c in contenders {
        c.latch.close().await?;
        c.client.close().await?;
    }
    println!("done");
    Ok(())
}
