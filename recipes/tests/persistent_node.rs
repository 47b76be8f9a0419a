//! PersistentNode against a real server: recreated after deletion, after a reconnect that
//! finds it gone and after session expiry; data updates; sequential and TTL modes; close
//! and drop delete it.

mod cache_support;
mod common;

use std::time::Duration;

use cache_support::{cut_and_wait, expire_through, heal_and_wait, renewing_client_via};
use common::{ok, wait_children, within, Proxy};
use corral_client::{Client, CreateMode, CreateOptions, Error, Stat};
use corral_recipes::cache::{CacheEvent, NodeCache, TreeCache};
use corral_recipes::persistent_node::PersistentNode;
use corral_recipes::RecipeError;

/// Waits (with a node cache's events) until `path` exists with `data` and a Stat that
/// satisfies `pred`; returns that Stat.
async fn wait_node(
    client: &Client,
    path: &str,
    data: &[u8],
    mut pred: impl FnMut(&Stat) -> bool,
) -> Stat {
    let cache = NodeCache::start(client, path).expect("cache");
    let mut events = cache.events();
    within(
        &format!("{path} = {:?}", String::from_utf8_lossy(data)),
        async {
            loop {
                if let Some(d) = cache.current() {
                    if d.data == data && pred(&d.stat) {
                        return d.stat;
                    }
                }
                events.recv().await.expect("cache running");
            }
        },
    )
    .await
}

#[tokio::test]
async fn an_ephemeral_node_is_recreated_after_deletion_and_deleted_on_close() {
    let ctx = ctx_or_skip!();
    let owner = ctx.client().await;
    let other = ctx.client().await;
    let node = ok(
        "start",
        PersistentNode::builder(&owner, "/pn/a/b", b"one").start(),
    );
    assert_eq!(
        ok("created", within("created", node.created()).await),
        "/pn/a/b"
    );
    let first = wait_node(&other, "/pn/a/b", b"one", |_| true).await;
    assert_eq!(first.ephemeral_owner, owner.session_id().0);

    ok("delete", other.delete("/pn/a/b", None).await);
    let second = wait_node(&other, "/pn/a/b", b"one", |s| s.czxid != first.czxid).await;
    assert_eq!(second.ephemeral_owner, owner.session_id().0);

    ok("set", node.set_data(b"two").await);
    wait_node(&other, "/pn/a/b", b"two", |_| true).await;
    // Someone overwrites it: the keeper does not fight over data, only existence.
    ok("delete", other.delete("/pn/a/b", None).await);
    wait_node(&other, "/pn/a/b", b"two", |_| true).await;
    assert_eq!(node.data(), b"two");

    ok("close", node.close().await);
    assert_eq!(ok("gone", other.exists("/pn/a/b").await), None);
}

#[tokio::test]
async fn a_reconnect_that_finds_the_node_gone_recreates_it_with_the_latest_data() {
    let ctx = ctx_or_skip!();
    let proxy = Proxy::start(ctx.server.addr()).await;
    let owner = ctx.client_via(&proxy).await;
    let other = ctx.client().await;
    let node = ok(
        "start",
        PersistentNode::builder(&owner, "/pn/r", b"v1").start(),
    );
    ok("created", within("created", node.created()).await);
    cut_and_wait(&proxy, &owner).await;
    // While cut off: the node is deleted, and the owner changes its data.
    ok("delete", other.delete("/pn/r", None).await);
    ok("set while cut", node.set_data(b"v2").await);
    heal_and_wait(&proxy, &owner).await;
    let stat = wait_node(&other, "/pn/r", b"v2", |_| true).await;
    assert_eq!(stat.ephemeral_owner, owner.session_id().0);
}

#[tokio::test]
async fn an_ephemeral_node_comes_back_after_its_session_expires() {
    let ctx = ctx_or_skip!();
    let proxy = Proxy::start(ctx.server.addr()).await;
    let owner = renewing_client_via(&ctx, &proxy).await;
    let other = ctx.client().await;
    let node = ok(
        "start",
        PersistentNode::builder(&owner, "/pn/e", b"x").start(),
    );
    ok("created", within("created", node.created()).await);
    let before = owner.session_id();
    expire_through(&ctx, &proxy, &owner).await;
    let stat = wait_node(&other, "/pn/e", b"x", |s| s.ephemeral_owner != before.0).await;
    assert_eq!(stat.ephemeral_owner, owner.session_id().0);
    assert_eq!(
        ok("created", within("created", node.created()).await),
        "/pn/e"
    );
}

#[tokio::test]
async fn a_sequential_node_is_created_again_after_session_loss() {
    let ctx = ctx_or_skip!();
    let proxy = Proxy::start(ctx.server.addr()).await;
    let owner = renewing_client_via(&ctx, &proxy).await;
    let other = ctx.client().await;
    let node = ok(
        "start",
        PersistentNode::builder(&owner, "/pn/seq/member-", b"s")
            .with_mode(CreateMode::EphemeralSequential)
            .start(),
    );
    let first = ok("created", within("created", node.created()).await);
    assert!(first.starts_with("/pn/seq/member-") && first.len() == "/pn/seq/member-".len() + 10);
    expire_through(&ctx, &proxy, &owner).await;
    // (An empty parent container may be reaped and made again meanwhile, restarting the
    // sequence: the new node is told apart by its owner, not its name.)
    let dir = ok(
        "cache",
        TreeCache::builder(&other, "/pn/seq")
            .with_max_depth(1)
            .start(),
    );
    let mut events = dir.events();
    let session = owner.session_id().0;
    within("a sequential node of the new session", async {
        loop {
            let kids = dir.children("/pn/seq").unwrap_or_default();
            if kids.len() == 1 && kids.values().all(|d| d.stat.ephemeral_owner == session) {
                return;
            }
            events.recv().await.expect("cache running");
        }
    })
    .await;
    // Dropping deletes the node the keeper knows: the new one.
    drop(node);
    wait_children(&other, "/pn/seq", "dropped node deleted", |c| c.is_empty()).await;
}

#[tokio::test]
async fn a_ttl_node_is_kept_by_touches_while_its_keeper_runs() {
    let ctx = ctx_or_skip!();
    let owner = ctx.client().await;
    let other = ctx.client().await;
    let ttl = Duration::from_secs(1);
    let node = ok(
        "start",
        PersistentNode::builder(&owner, "/pn/ttl", b"t")
            .with_mode(CreateMode::PersistentWithTtl)
            .with_ttl(ttl)
            .start(),
    );
    match within("created", node.created()).await {
        Ok(_) => {}
        Err(RecipeError::Client(Error::Unimplemented)) => {
            eprintln!("SKIPPED: TTL nodes are disabled on this server (extendedTypesEnabled)");
            return;
        }
        Err(e) => panic!("{e:?}"),
    }
    let cache = ok("cache", NodeCache::start(&other, "/pn/ttl"));
    ok("init", within("init", cache.initialized()).await);
    let mut events = cache.events();
    // Touches show up as data changes, at least two within a few TTLs; the node never
    // goes away meanwhile.
    let mut touches = 0;
    within("two touches", async {
        while touches < 2 {
            match events.recv().await.expect("running") {
                CacheEvent::Changed(_) => touches += 1,
                CacheEvent::Deleted(_) => panic!("the TTL node expired while kept"),
                _ => {}
            }
        }
    })
    .await;
    ok("close", node.close().await);
    assert_eq!(ok("gone", other.exists("/pn/ttl").await), None);
}

#[tokio::test]
async fn bad_settings_are_refused_and_a_node_owned_by_another_session_is_adopted() {
    let ctx = ctx_or_skip!();
    let client = ctx.client().await;
    for bad in [
        PersistentNode::builder(&client, "/pn/x", b"").with_mode(CreateMode::Container),
        PersistentNode::builder(&client, "/pn/x", b"").with_mode(CreateMode::PersistentWithTtl),
        PersistentNode::builder(&client, "/pn/x", b"").with_ttl(Duration::from_secs(1)),
        PersistentNode::builder(&client, "pn", b""),
        PersistentNode::builder(&client, "/", b""),
    ] {
        assert!(matches!(bad.start(), Err(RecipeError::BadArguments(_))));
    }
    // A persistent node that is already there is adopted and given our data.
    ok(
        "parent",
        client
            .create("/pn", b"", &CreateOptions::persistent())
            .await,
    );
    ok(
        "existing",
        client
            .create("/pn/adopt", b"theirs", &CreateOptions::persistent())
            .await,
    );
    let node = ok(
        "start",
        PersistentNode::builder(&ctx.client().await, "/pn/adopt", b"ours")
            .with_mode(CreateMode::Persistent)
            .start(),
    );
    ok("created", within("created", node.created()).await);
    wait_node(&client, "/pn/adopt", b"ours", |_| true).await;
    ok("close", node.close().await);
    assert_eq!(ok("gone", client.exists("/pn/adopt").await), None);
}
