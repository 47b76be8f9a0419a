//! Two contenders for one distributed lock, printing who holds it and its fencing token.
//!
//! ```text
//! cargo run --example lock                                  # two tasks, two clients
//! cargo run --example lock -- --connect 127.0.0.1:2181 --name A   # terminal 1
//! cargo run --example lock -- --connect 127.0.0.1:2181 --name B   # terminal 2
//! ```
//!
//! Options: `--connect host:port[,host:port][/chroot]` (default `127.0.0.1:2181`),
//! `--name NAME` (run one contender in this process), `--rounds N` (default 3),
//! `--hold-ms MS` (how long each holder keeps the lock, default 500), `--path PATH`
//! (default `/corral-examples/lock`). If no server answers at `--connect`, the example
//! starts an in-process Corral server (`corral::server::testing::TestingServer`).

use std::time::Duration;

use anyhow::{bail, Context};
use corral::client::Client;
use corral::recipes::lock::Mutex;
use corral::server::testing::TestingServer;

struct Args {
    connect: String,
    name: Option<String>,
    rounds: u32,
    hold: Duration,
    path: String,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        connect: "127.0.0.1:2181".into(),
        name: None,
        rounds: 3,
        hold: Duration::from_millis(500),
        path: "/corral-examples/lock".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--connect" => args.connect = value()?,
            "--name" => args.name = Some(value()?),
            "--rounds" => args.rounds = value()?.parse().context("--rounds")?,
            "--hold-ms" => {
                args.hold = Duration::from_millis(value()?.parse().context("--hold-ms")?)
            }
            "--path" => args.path = value()?,
            "-h" | "--help" => {
                println!(
                    "usage: lock [--connect HOSTS] [--name NAME] [--rounds N] [--hold-ms MS] [--path PATH]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    Ok(args)
}

/// Takes the lock `rounds` times, holding it for `hold` each time.
async fn contend(
    connect: String,
    path: String,
    name: String,
    rounds: u32,
    hold: Duration,
) -> anyhow::Result<()> {
    let client = Client::builder(connect.as_str())
        .with_session_timeout(Duration::from_secs(10))
        .connect()
        .await
        .with_context(|| format!("{name}: connect to {connect}"))?;
    let mutex = Mutex::new(client.clone(), path).with_node_data(name.as_bytes());
    for round in 1..=rounds {
        println!("[{name}] waiting for the lock");
        let guard = mutex.acquire().await?;
        println!(
            "[{name}] HOLDS the lock (round {round}/{rounds}), fencing token {}, node {}",
            guard.fencing_token(),
            guard.path()
        );
        // The "work": hold the lock for a while, unless it is lost meanwhile.
        tokio::select! {
            state = guard.not_held() => println!("[{name}] lost the lock ({state:?}); stopping work"),
            _ = tokio::time::sleep(hold) => {}
        }
        println!("[{name}] releasing the lock");
        guard.release().await?;
    }
    client.close().await?;
    Ok(())
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
    let connect = match probe {
        Ok(client) => {
            client.close().await?;
            println!("using the server at {}", args.connect);
            args.connect.clone()
        }
        Err(e) => {
            let server = TestingServer::start()
                .await
                .context("start an in-process server")?;
            let connect = server.connect_string();
            println!(
                "no server at {} ({e}); started an in-process Corral server at {connect}",
                args.connect
            );
            if args.name.is_some() {
                println!("note: other processes cannot see this private server");
            }
            _server = Some(server);
            connect
        }
    };
    match args.name {
        Some(name) => contend(connect, args.path, name, args.rounds, args.hold).await,
        None => {
            let a = tokio::spawn(contend(
                connect.clone(),
                args.path.clone(),
                "A".into(),
                args.rounds,
                args.hold,
            ));
            let b = tokio::spawn(contend(
                connect,
                args.path,
                "B".into(),
                args.rounds,
                args.hold,
            ));
            a.await??;
            b.await??;
            Ok(())
        }
    }
}
