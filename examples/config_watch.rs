//! N watchers follow one configuration node and each sees every change.
//!
//! ```text
//! cargo run --example config_watch                            # in-process 3-server ensemble
//! cargo run --example config_watch -- --connect 127.0.0.1:2181 --watchers 5 --changes 20
//! ```
//!
//! Options: `--connect host:port[,host:port][/chroot]` (default: start an in-process
//! three-server Corral `TestingCluster`, so watchers sit on different servers),
//! `--watchers N` (default 3), `--changes K` (default 10), `--path PATH` (default
//! `/corral-examples/config`).
//!
//! Each watcher runs a `NodeCache`. A cache reports the node's state, so two writes in
//! quick succession may be seen as one change; the writer here waits until every watcher
//! has seen a version before writing the next, as a configuration rollout would.

use std::time::Duration;

use anyhow::{bail, Context};
use corral::client::{Client, CreateOptions, Error};
use corral::recipes::cache::{CacheEvent, NodeCache};
use corral::server::testing::TestingCluster;
use tokio::sync::mpsc;

/// Every wait of the example is bounded by this.
const WAIT: Duration = Duration::from_secs(30);

struct Args {
    connect: Option<String>,
    watchers: usize,
    changes: u32,
    path: String,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        connect: None,
        watchers: 3,
        changes: 10,
        path: "/corral-examples/config".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--connect" => args.connect = Some(value()?),
            "--watchers" => args.watchers = value()?.parse().context("--watchers")?,
            "--changes" => args.changes = value()?.parse().context("--changes")?,
            "--path" => args.path = value()?,
            "-h" | "--help" => {
                println!(
                    "usage: config_watch [--connect HOSTS] [--watchers N] [--changes K] [--path PATH]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    Ok(args)
}

/// One watcher: reports each configuration version it sees on `seen`.
async fn watch(
    id: usize,
    connect: String,
    path: String,
    seen: mpsc::Sender<(usize, u32)>,
) -> anyhow::Result<Vec<u32>> {
    let client = Client::connect(&connect).await?;
    let cache = NodeCache::start(&client, &path)?;
    let mut events = cache.events();
    let mut versions = Vec::new();
    while let Some(event) = events.recv().await {
        let node = match event {
            CacheEvent::Created(node) | CacheEvent::Changed(node) => node,
            CacheEvent::Initialized => {
                println!("[watcher {id}] ready: {:?}", cache.data().map(text));
                seen.send((id, 0)).await?;
                continue;
            }
            CacheEvent::Deleted(_) => {
                println!("[watcher {id}] the configuration was deleted; stopping");
                break;
            }
            other => {
                println!("[watcher {id}] {other:?}");
                continue;
            }
        };
        let config = text(node.data);
        let version: u32 = config
            .strip_prefix("version=")
            .and_then(|v| v.split(';').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        println!("[watcher {id}] config v{version}: {config}");
        versions.push(version);
        seen.send((id, version)).await?;
    }
    client.close().await?;
    Ok(versions)
}

/// Waits until each of the `n` watchers has reported `version`.
async fn wait_all(
    rx: &mut mpsc::Receiver<(usize, u32)>,
    n: usize,
    version: u32,
) -> anyhow::Result<()> {
    let mut have = std::collections::BTreeSet::new();
    while have.len() < n {
        let (id, v) = tokio::time::timeout(WAIT, rx.recv())
            .await
            .context("a watcher is late")?
            .context("the watchers stopped")?;
        if v == version {
            have.insert(id);
        }
    }
    Ok(())
}

fn text(data: Vec<u8>) -> String {
    String::from_utf8_lossy(&data).into_owned()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let mut _cluster = None;
    let connect = match args.connect {
        Some(c) => c,
        None => {
            let cluster = TestingCluster::start(3)
                .await
                .context("start an in-process ensemble")?;
            let leader = cluster.wait_for_leader(WAIT).await?;
            let c = cluster.connect_string();
            println!("started an in-process 3-server Corral ensemble at {c} (leader {leader})");
            _cluster = Some(cluster);
            c
        }
    };
    let writer = Client::connect(&connect).await?;
    // Start from a fresh node (and its parents).
    let mut at = 0;
    while let Some(i) = args.path[at + 1..].find('/') {
        at += 1 + i;
        match writer
            .create(&args.path[..at], b"", &CreateOptions::persistent())
            .await
        {
            Ok(_) | Err(Error::NodeExists) => {}
            Err(e) => return Err(e.into()),
        }
    }
    match writer.delete(&args.path, None).await {
        Ok(()) | Err(Error::NoNode) => {}
        Err(e) => return Err(e).context("remove an old configuration"),
    }

    let (tx, mut rx) = mpsc::channel(1024);
    let mut tasks = Vec::new();
    for id in 1..=args.watchers {
        tasks.push(tokio::spawn(watch(
            id,
            connect.clone(),
            args.path.clone(),
            tx.clone(),
        )));
    }
    drop(tx);
    wait_all(&mut rx, args.watchers, 0).await?;
    for version in 1..=args.changes {
        let config = format!("version={version};timeout={}s", 10 + version);
        if version == 1 {
            writer
                .create(&args.path, config.as_bytes(), &CreateOptions::persistent())
                .await?;
        } else {
            writer.set_data(&args.path, config.as_bytes(), None).await?;
        }
        println!("[writer] wrote v{version}");
        wait_all(&mut rx, args.watchers, version).await?;
    }
    writer.delete(&args.path, None).await?;
    let expected: Vec<u32> = (1..=args.changes).collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let seen = task.await??;
        if seen != expected {
            bail!("watcher {} saw {seen:?}, expected {expected:?}", i + 1);
        }
    }
    println!(
        "all {} watchers saw all {} changes, in order",
        args.watchers, args.changes
    );
    writer.close().await?;
    Ok(())
}
