//! The leader of a 3-server ensemble goes away while a client writes continuously: a new
//! leader takes over, the writer carries on, and every write that was acknowledged is present
//! on every server afterwards.

use corral::client::{Client, CreateMode, CreateOptions, Error};
use corral::server::testing::TestingCluster;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_loss_under_load_keeps_every_acknowledged_write() -> anyhow::Result<()> {
    let mut cluster = TestingCluster::start(3).await?;
    let leader = cluster.wait_for_leader(Duration::from_secs(15)).await?;
    let client = Client::builder(cluster.connect_string())
        .with_session_timeout(Duration::from_secs(10))
        .connect()
        .await?;
    client
        .create("/load", b"", &CreateOptions::new(CreateMode::Persistent))
        .await?;

    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (client, acked, stop) = (client.clone(), acked.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0u64;
            let mut failures = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let path = format!("/load/n-{i:06}");
                i += 1;
                match client
                    .create(&path, b"x", &CreateOptions::new(CreateMode::Persistent))
                    .await
                {
                    Ok(_) => acked.lock().expect("acked").push(path),
                    // Outcome unknown (connection lost mid-request): not acknowledged. The
                    // client fails fast while disconnected; pace the retries a little.
                    Err(Error::ConnectionLoss | Error::Timeout) => {
                        failures += 1;
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    Err(e) => panic!("unexpected error while failing over: {e}"),
                }
            }
            failures
        })
    };

    // Let the writer get going, then take the leader away.
    let deadline = Instant::now() + Duration::from_secs(20);
    while acked.lock().expect("acked").len() < 200 {
        assert!(Instant::now() < deadline, "the writer made no progress");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = acked.lock().expect("acked").len();
    let killed_at = Instant::now();
    cluster.stop(leader).await;
    let next = cluster.wait_for_leader(Duration::from_secs(15)).await?;
    let elected = killed_at.elapsed();
    assert_ne!(next, leader);
    // The writer succeeds again through the surviving servers.
    let deadline = Instant::now() + Duration::from_secs(20);
    while acked.lock().expect("acked").len() < before + 200 {
        assert!(
            Instant::now() < deadline,
            "the writer did not recover after the failover"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let recovered = killed_at.elapsed();
    stop.store(true, Ordering::Relaxed);
    let failures = writer.await?;
    eprintln!(
        "new leader after {elected:?}; writer past the failover after {recovered:?}; \
         {failures} writes with unknown outcome"
    );

    let acked = acked.lock().expect("acked").clone();
    for id in cluster.ids().into_iter().filter(|id| *id != leader) {
        let reader = Client::connect(&cluster.addr(id).to_string()).await?;
        reader.sync("/load").await?;
        let children: std::collections::BTreeSet<String> =
            reader.get_children("/load").await?.into_iter().collect();
        for path in &acked {
            let name = path.trim_start_matches("/load/");
            assert!(
                children.contains(name),
                "server {id} lost acknowledged {path}"
            );
        }
        reader.close().await?;
    }
    client.close().await?;
    Ok(())
}
