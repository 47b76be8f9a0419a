//! Producers and consumers sharing a distributed work queue; no job is lost, none is done
//! twice.
//!
//! ```text
//! cargo run --example work_queue                                   # in-process server
//! cargo run --example work_queue -- --connect 127.0.0.1:2181 --jobs 50
//! ```
//!
//! Options: `--connect host:port[,host:port][/chroot]` (default `127.0.0.1:2181`; if no
//! server answers there, the example starts an in-process Corral server,
//! `corral::server::testing::TestingServer`), `--producers N` (default 2), `--consumers N`
//! (default 3), `--jobs N` per producer (default 10), `--path PATH` (default
//! `/corral-examples/jobs`).
//!
//! The queue has Curator's `DistributedQueue` layout and runs in lock-safe mode: a consumer
//! locks a job (`<path>-locks/<job>`), does it, and only then removes it, so a consumer
//! that crashes mid-job leaves it for another. Java `DistributedQueue` producers and
//! consumers on the same paths take part too.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use corral::client::Client;
use corral::recipes::queue::DistributedQueue;
use corral::server::testing::TestingServer;

struct Args {
    connect: String,
    producers: usize,
    consumers: usize,
    jobs: usize,
    path: String,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        connect: "127.0.0.1:2181".into(),
        producers: 2,
        consumers: 3,
        jobs: 10,
        path: "/corral-examples/jobs".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--connect" => args.connect = value()?,
            "--producers" => args.producers = value()?.parse().context("--producers")?,
            "--consumers" => args.consumers = value()?.parse().context("--consumers")?,
            "--jobs" => args.jobs = value()?.parse().context("--jobs")?,
            "--path" => args.path = value()?,
            "-h" | "--help" => {
                println!(
                    "usage: work_queue [--connect HOSTS] [--producers N] [--consumers N] [--jobs N] [--path PATH]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    Ok(args)
}

async fn connect(connect: &str) -> anyhow::Result<Client> {
    Client::builder(connect)
        .with_session_timeout(Duration::from_secs(10))
        .connect()
        .await
        .with_context(|| format!("connect to {connect}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    // Is a server there? Try briefly; otherwise run one in this process.
    let probe = Client::builder(args.connect.as_str())
        .with_connection_timeout(Duration::from_secs(2))
        .connect()
        .await;
    let mut _server = None;
    let connect_string = match probe {
        Ok(client) => {
            client.close().await?;
            println!("using the server at {}", args.connect);
            args.connect.clone()
        }
        Err(e) => {
            let server = TestingServer::start()
                .await
                .context("start an in-process server")?;
            let c = server.connect_string();
            println!(
                "no server at {} ({e}); started an in-process Corral server at {c}",
                args.connect
            );
            _server = Some(server);
            c
        }
    };
    let lock_path = format!("{}-locks", args.path);
    let total = args.producers * args.jobs;

    // Producers: each puts its jobs in order.
    let mut producers = Vec::new();
    for p in 0..args.producers {
        let queue = DistributedQueue::new(connect(&connect_string).await?, &args.path);
        let jobs = args.jobs;
        producers.push(tokio::spawn(async move {
            for n in 0..jobs {
                let job = format!("job {p}.{n}");
                let node = queue.put(job.as_bytes()).await?;
                println!("[producer {p}] queued {job:?} as {node}");
            }
            anyhow::Ok(())
        }));
    }

    // Consumers: lock-safe, each job removed only once it is done.
    let done: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let mut consumers = Vec::new();
    for c in 0..args.consumers {
        let queue = DistributedQueue::new(connect(&connect_string).await?, &args.path)
            .with_lock_safety(&lock_path);
        let done = done.clone();
        consumers.push(tokio::spawn(async move {
            loop {
                if done.lock().unwrap().len() >= total {
                    return anyhow::Ok(());
                }
                let done = done.clone();
                let outcome = queue
                    .take_with_timeout(
                        |job| {
                            let done = done.clone();
                            async move {
                                let job = String::from_utf8_lossy(&job).into_owned();
                                // The "work".
                                tokio::time::sleep(Duration::from_millis(10)).await;
                                println!("[consumer {c}] did {job:?}");
                                *done.lock().unwrap().entry(job).or_default() += 1;
                                Ok::<(), std::io::Error>(())
                            }
                        },
                        Duration::from_millis(500),
                    )
                    .await?;
                if let Some(result) = outcome {
                    result?;
                }
            }
        }));
    }
    for p in producers {
        p.await??;
    }
    for c in consumers {
        c.await??;
    }
    let done = done.lock().unwrap().clone();
    let twice: Vec<_> = done.iter().filter(|(_, n)| **n > 1).collect();
    println!(
        "{} jobs queued, {} done, {} done more than once",
        total,
        done.len(),
        twice.len()
    );
    if done.len() != total || !twice.is_empty() {
        bail!("lost or repeated jobs: {twice:?}");
    }
    Ok(())
}
