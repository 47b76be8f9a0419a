//! Group membership against a real server: joining, data, leaving, live views, and
//! rejoining after a session expiry.

mod cache_support;
mod common;

use std::collections::BTreeMap;

use cache_support::{expire_through, renewing_client_via};
use common::{ok, within, Proxy};
use corral_recipes::cache::WatchMode;
use corral_recipes::group::{Group, GroupEvent, GroupEvents, GroupMember};
use corral_recipes::RecipeError;

const GROUP: &str = "/groups/workers";

/// Applies group events to `view` until it equals `want`.
async fn wait_members(
    what: &str,
    events: &mut GroupEvents,
    view: &mut BTreeMap<String, Vec<u8>>,
    want: &[(&str, &[u8])],
) {
    let want: BTreeMap<String, Vec<u8>> = want
        .iter()
        .map(|(id, d)| (id.to_string(), d.to_vec()))
        .collect();
    within(what, async {
        while *view != want {
            match events.recv().await.expect("group view running") {
                GroupEvent::Joined { id, data } => {
                    assert!(view.insert(id.clone(), data).is_none(), "{id} joined twice");
                }
                GroupEvent::Updated { id, data } => {
                    assert!(
                        view.insert(id.clone(), data).is_some(),
                        "{id} updated unseen"
                    );
                }
                GroupEvent::Left { id, .. } => {
                    assert!(view.remove(&id).is_some(), "{id} left unseen");
                }
                GroupEvent::Reset => view.clear(),
                GroupEvent::Initialized => {}
                other => panic!("{other:?}"),
            }
        }
    })
    .await
}

#[tokio::test]
async fn members_join_update_and_leave_and_every_view_sees_it() {
    let ctx = ctx_or_skip!();
    let observer = ok(
        "watch",
        Group::watch_with(&ctx.client().await, GROUP, WatchMode::OneShot),
    );
    let mut events = observer.events();
    let mut view = BTreeMap::new();
    let a = ok(
        "join a",
        GroupMember::join(&ctx.client().await, GROUP, "a", b"alpha"),
    );
    let b = ok(
        "join b",
        GroupMember::join(&ctx.client().await, GROUP, "b", b"beta"),
    );
    assert_eq!(
        ok("joined", within("a", a.joined()).await),
        format!("{GROUP}/a")
    );
    ok("joined", within("b", b.joined()).await);
    wait_members(
        "both",
        &mut events,
        &mut view,
        &[("a", b"alpha"), ("b", b"beta")],
    )
    .await;
    // A member's own view sees the other member too.
    ok("init", within("init", a.group().initialized()).await);
    let mut a_events = a.group().events();
    let mut a_view = BTreeMap::new();
    wait_members(
        "a's view",
        &mut a_events,
        &mut a_view,
        &[("a", b"alpha"), ("b", b"beta")],
    )
    .await;

    ok("set", b.set_data(b"beta-2").await);
    wait_members(
        "update",
        &mut events,
        &mut view,
        &[("a", b"alpha"), ("b", b"beta-2")],
    )
    .await;
    ok("leave", b.leave().await);
    wait_members("b left", &mut events, &mut view, &[("a", b"alpha")]).await;
    wait_members(
        "a sees b leave",
        &mut a_events,
        &mut a_view,
        &[("a", b"alpha")],
    )
    .await;
    assert_eq!(observer.members(), view);
    drop(a);
    wait_members("a dropped", &mut events, &mut view, &[]).await;
    assert!(matches!(
        GroupMember::join(&ctx.client().await, GROUP, "x/y", b""),
        Err(RecipeError::BadArguments(_))
    ));
}

#[tokio::test]
async fn a_member_rejoins_after_its_session_expires() {
    let ctx = ctx_or_skip!();
    let proxy = Proxy::start(ctx.server.addr()).await;
    let client = renewing_client_via(&ctx, &proxy).await;
    let member = ok("join", GroupMember::join(&client, GROUP, "m", b"data"));
    ok("joined", within("joined", member.joined()).await);
    let observer = ok("watch", Group::watch(&ctx.client().await, GROUP));
    let mut events = observer.events();
    let mut view = BTreeMap::new();
    wait_members("joined", &mut events, &mut view, &[("m", b"data")]).await;
    let before = ok(
        "stat",
        ctx.client().await.exists(&format!("{GROUP}/m")).await,
    )
    .expect("node");
    expire_through(&ctx, &proxy, &client).await;
    // Seen leaving with the old session and joining with the new one.
    let mut left = false;
    within("left and rejoined", async {
        loop {
            match events.recv().await.expect("running") {
                GroupEvent::Left { id, .. } if id == "m" => left = true,
                GroupEvent::Joined { id, data } if id == "m" && left => {
                    assert_eq!(data, b"data");
                    return;
                }
                _ => {}
            }
        }
    })
    .await;
    let after = ok(
        "stat",
        ctx.client().await.exists(&format!("{GROUP}/m")).await,
    )
    .expect("node");
    assert_ne!(after.ephemeral_owner, before.ephemeral_owner);
    assert_eq!(after.ephemeral_owner, client.session_id().0);
    // The member's own view followed too.
    ok("init", within("init", member.group().initialized()).await);
    let mut own = BTreeMap::new();
    wait_members(
        "own view",
        &mut member.group().events(),
        &mut own,
        &[("m", b"data")],
    )
    .await;
}
