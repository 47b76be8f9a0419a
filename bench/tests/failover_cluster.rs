//! The failover measurement against an in-process 3-server Corral ensemble: the leader is
//! stopped (not SIGKILLed: the members share this process) under the continuous writer.

use std::time::Duration;

use corral_bench::failover::{run_failover_with, FailoverConfig};
use corral_bench::Target;
use corral_server::testing::TestingCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_measures_a_new_leader_and_the_writers_recovery() {
    let mut cluster = TestingCluster::start(3).await.unwrap();
    cluster
        .wait_for_leader(Duration::from_secs(20))
        .await
        .unwrap();
    let ids = cluster.ids();
    let target = Target::new(cluster.connect_string());
    let cfg = FailoverConfig {
        warmup: Duration::from_millis(500),
        tail: Duration::from_millis(200),
        max_wait: Duration::from_secs(30),
        ..FailoverConfig::default()
    };
    let c = &mut cluster;
    let r = run_failover_with(&target, &cfg, move |leader| async move {
        c.stop(ids[leader]).await;
        Ok(())
    })
    .await
    .unwrap();
    eprintln!("{}", r.to_json_line());
    assert_eq!(r.metrics["recovered"], 1.0, "{r:?}");
    assert_ne!(r.metrics["old_leader"], r.metrics["new_leader"]);
    let elected = r.metrics["leader_elected_ms"];
    let recovered = r.metrics["writer_recovered_ms"];
    assert!(elected > 0.0 && recovered > 0.0, "{r:?}");
    assert!(r.metrics["writer_max_gap_ms"] > 0.0, "{r:?}");
    assert!(r.ops > 0);
}
