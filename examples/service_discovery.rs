//! Service discovery: three workers register, a client discovers them, one worker's session
//! is killed, and it leaves and comes back (re-registered on its new session).
//!
//! ```text
//! cargo run --example service_discovery                       # in-process server
//! cargo run --example service_discovery -- --connect 127.0.0.1:2181
//! ```
//!
//! Options: `--connect host:port[,host:port][/chroot]` (default: start an in-process
//! Corral `TestingServer`), `--base PATH` (default `/corral-examples/services`). The layout
//! and JSON are curator-x-discovery's, so Curator's `ServiceDiscovery` on the same base
//! path sees these workers too.

use std::time::Duration;

use anyhow::{bail, Context};
use corral::client::Client;
use corral::recipes::discovery::{
    ServiceCacheEvent, ServiceCacheEvents, ServiceDiscovery, ServiceInstance, ServiceRegistry,
};
use corral::server::testing::TestingServer;

/// Every wait of the example is bounded by this.
const WAIT: Duration = Duration::from_secs(30);
const SERVICE: &str = "api";

struct Args {
    connect: Option<String>,
    base: String,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        connect: None,
        base: "/corral-examples/services".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--connect" => args.connect = Some(value()?),
            "--base" => args.base = value()?,
            "-h" | "--help" => {
                println!("usage: service_discovery [--connect HOSTS] [--base PATH]");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    Ok(args)
}

/// One worker: its own client (renewing its session after an expiry, so that its
/// registration can come back) and registry.
struct Worker {
    name: String,
    client: Client,
    registry: ServiceRegistry<String>,
}

async fn start_worker(connect: &str, base: &str, n: u16) -> anyhow::Result<Worker> {
    let name = format!("worker-{n}");
    let client = Client::builder(connect)
        .with_session_timeout(Duration::from_secs(6))
        .with_session_renewal(true)
        .connect()
        .await
        .with_context(|| format!("{name}: connect to {connect}"))?;
    let registry = ServiceRegistry::new(&client, base)?;
    let instance = ServiceInstance::new(SERVICE)
        .with_id(name.clone())
        .with_address("127.0.0.1")
        .with_port(8000 + n)
        .with_payload(format!("zone-{}", n % 2));
    let path = registry.register(instance).await?;
    println!("[{name}] registered at {path}");
    Ok(Worker {
        name,
        client,
        registry,
    })
}

/// Ends the worker's session from outside, as a crashed process or a long GC pause would:
/// another client takes over the session (id + password) and closes it.
async fn kill_session(connect: &str, worker: &Worker) -> anyhow::Result<()> {
    let mut states = worker.client.state_watcher();
    let before = worker.client.status();
    for attempt in 1..=5 {
        let thief = Client::builder(connect)
            .with_session(before.session_id, before.password())
            .connect()
            .await;
        match thief {
            Ok(thief) => thief.close().await?,
            // Already expired: that is what we wanted.
            Err(corral::client::Error::SessionExpired) => {}
            Err(e) => return Err(e).context("resume the worker's session"),
        }
        // The worker may win the race and resume its session first; then try again.
        if states
            .wait_for(Duration::from_secs(5), |s| s.epoch > before.epoch)
            .await
            .is_ok()
        {
            println!(
                "[{}] session {} was expired (attempt {attempt}); now on session {}",
                worker.name,
                before.session_id,
                worker.client.session_id()
            );
            return Ok(());
        }
    }
    bail!("could not expire {}'s session", worker.name)
}

/// The next cache event, within [`WAIT`].
async fn next(
    events: &mut ServiceCacheEvents<String>,
) -> anyhow::Result<ServiceCacheEvent<String>> {
    tokio::time::timeout(WAIT, events.recv())
        .await
        .context("no cache event in time")?
        .context("the cache stopped")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let mut _server = None;
    let connect = match args.connect {
        Some(c) => c,
        None => {
            let server = TestingServer::start()
                .await
                .context("start an in-process server")?;
            let c = server.connect_string();
            println!("started an in-process Corral server at {c}");
            _server = Some(server);
            c
        }
    };

    // The client side: a live cache of the service, printing every change.
    let observer = Client::connect(&connect).await?;
    let discovery: ServiceDiscovery<String> = ServiceDiscovery::new(&observer, &args.base)?;
    let cache = discovery.service_cache(SERVICE)?;
    let mut events = cache.events();

    let mut workers = Vec::new();
    for n in 1..=3 {
        workers.push(start_worker(&connect, &args.base, n).await?);
    }

    // Discover them.
    let mut live = std::collections::BTreeSet::new();
    while live.len() < 3 {
        match next(&mut events).await? {
            ServiceCacheEvent::Added(i) => {
                println!(
                    "[observer] + {} at {}:{} ({})",
                    i.id,
                    i.address.as_deref().unwrap_or("?"),
                    i.port.unwrap_or(0),
                    i.payload.as_deref().unwrap_or("")
                );
                live.insert(i.id);
            }
            ServiceCacheEvent::Initialized => println!("[observer] cache loaded"),
            other => println!("[observer] {other:?}"),
        }
    }
    let names = discovery.query_for_names().await?;
    println!("[observer] services under {}: {names:?}", args.base);
    let provider = discovery.service_provider(SERVICE).start()?;
    provider.initialized().await?;
    let picks: Vec<String> = (0..6)
        .filter_map(|_| provider.get_instance().map(|i| i.id))
        .collect();
    println!("[observer] round robin picks: {picks:?}");

    // Kill worker-2's session: it leaves, then comes back on its new session.
    let victim = &workers[1];
    kill_session(&connect, victim).await?;
    let mut left = false;
    loop {
        match next(&mut events).await? {
            ServiceCacheEvent::Removed(i) if i.id == victim.name => {
                println!("[observer] - {} (its session ended)", i.id);
                left = true;
            }
            ServiceCacheEvent::Added(i) if i.id == victim.name && left => {
                println!(
                    "[observer] + {} is back (re-registered on its new session)",
                    i.id
                );
                break;
            }
            other => println!("[observer] {other:?}"),
        }
    }
    let ids: Vec<String> = cache.instances().into_iter().map(|i| i.id).collect();
    println!("[observer] instances now: {ids:?}");
    if ids.len() != 3 {
        bail!("expected three instances, found {ids:?}");
    }

    for worker in workers {
        worker.registry.close().await?;
        worker.client.close().await?;
    }
    observer.close().await?;
    println!("done");
    Ok(())
}
