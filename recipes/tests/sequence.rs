//! Sequence ids against a real server: unique, increasing across clients, nodes cleaned up,
//! and one id per call across a lost create reply.

mod common;

use std::collections::BTreeSet;

use common::{ok, wait_children, within, Proxy};
use corral_recipes::sequence::SequenceGenerator;

const IDS: &str = "/ids/orders";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_are_unique_increase_across_clients_and_leave_no_nodes() {
    let ctx = ctx_or_skip!();
    const CLIENTS: usize = 3;
    const EACH: usize = 20;
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let ids = SequenceGenerator::new(ctx.client().await, IDS);
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..EACH {
                got.push(ids.next_id().await.expect("next id"));
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        let got = within("ids", t).await.expect("task");
        assert!(
            got.windows(2).all(|w| w[0].value() < w[1].value()),
            "one client's ids increase: {got:?}"
        );
        all.extend(got);
    }
    let values: BTreeSet<u64> = all.iter().map(|i| i.value()).collect();
    assert_eq!(values.len(), CLIENTS * EACH, "ids are unique");
    // Across clients, ids follow the order in which the server created their nodes.
    all.sort_by_key(|i| i.zxid());
    assert!(all.windows(2).all(|w| w[0].value() < w[1].value()));
    let observer = ctx.client().await;
    wait_children(&observer, IDS, "id nodes cleaned up", |c| c.is_empty()).await;
}

#[tokio::test]
async fn a_lost_create_reply_still_gives_one_id_and_leaves_no_node() {
    let ctx = ctx_or_skip!();
    let proxy = Proxy::start(ctx.server.addr()).await;
    let ids = SequenceGenerator::new(ctx.client_via(&proxy).await, IDS);
    let before = ok("first", ids.next_id().await);
    proxy.cut_after_create("-id-");
    let after = ok(
        "through a lost reply",
        within("next id", ids.next_id()).await,
    );
    assert_eq!(proxy.trips(), 1, "the trap fired");
    assert!(after.value() > before.value());
    let next = ok("next", ids.next_id().await);
    assert!(next.value() > after.value());
    let observer = ctx.client().await;
    wait_children(&observer, IDS, "id nodes cleaned up", |c| c.is_empty()).await;
}
