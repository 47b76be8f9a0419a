//! Service discovery against a real server: Curator's layout and JSON, registration kept
//! across session expiry and reconnects, caches across failover, a thousand instances,
//! and the provider strategies.

mod cache_support;
mod common;

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use cache_support::{cut_and_wait, expire_through, heal_and_wait, renewing_client_via, ClusterCtx};
use common::{ok, wait_children, within, Proxy};
use corral_client::{Client, ConnectionState};
use corral_recipes::discovery::{
    DownInstancePolicy, ProviderStrategy, ServiceCache, ServiceCacheEvent, ServiceDiscovery,
    ServiceInstance, ServiceRegistry, ServiceType,
};
use corral_recipes::RecipeError;
use serde::{Deserialize, Serialize};

const BASE: &str = "/services";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Details {
    zone: String,
}

fn instance(id: &str, port: u16) -> ServiceInstance<Details> {
    ServiceInstance::new("api")
        .with_id(id)
        .with_address("127.0.0.1")
        .with_port(port)
        .with_payload(Details {
            zone: format!("zone-{id}"),
        })
}

/// Waits until the cache holds exactly `ids`.
async fn wait_ids<T: serde::de::DeserializeOwned + Clone>(
    what: &str,
    cache: &ServiceCache<T>,
    ids: &[&str],
) {
    let want: BTreeSet<String> = ids.iter().map(|s| s.to_string()).collect();
    let mut events = cache.events();
    within(what, async {
        loop {
            let have: BTreeSet<String> = cache.instances().into_iter().map(|i| i.id).collect();
            if have == want && cache.is_initialized() {
                return;
            }
            events.recv().await.expect("cache running");
        }
    })
    .await
}

#[tokio::test]
async fn registered_instances_are_discovered_with_curators_layout_and_json() {
    let ctx = ctx_or_skip!();
    let client = ctx.client().await;
    let registry = ok("registry", ServiceRegistry::new(&client, BASE));
    for (i, id) in ["a", "b", "c"].iter().enumerate() {
        let path = ok(
            "register",
            registry.register(instance(id, 8000 + i as u16)).await,
        );
        assert_eq!(path, format!("{BASE}/api/{id}"));
    }
    let web = ServiceInstance::<Details>::new("web").with_id("w1");
    ok("register web", registry.register(web).await);

    let observer = ctx.client().await;
    let (data, stat) = ok("read", observer.get_data(&format!("{BASE}/api/b")).await);
    assert_eq!(
        stat.ephemeral_owner,
        client.session_id().0,
        "a DYNAMIC instance is ephemeral"
    );
    assert_eq!(
        data,
        ok(
            "json",
            instance("b", 8001)
                .with_registration_time_utc(
                    ServiceInstance::<Details>::from_json(&data)
                        .unwrap()
                        .registration_time_utc
                )
                .to_json()
        )
    );
    let text = String::from_utf8(data).unwrap();
    assert!(
        text.starts_with(r#"{"name":"api","id":"b","address":"127.0.0.1","port":8001,"sslPort":null,"payload":{"zone":"zone-b"},"registrationTimeUTC":"#),
        "{text}"
    );
    assert!(
        text.ends_with(r#","serviceType":"DYNAMIC","uriSpec":null}"#),
        "{text}"
    );

    let discovery: ServiceDiscovery<Details> =
        ok("discovery", ServiceDiscovery::new(&observer, BASE));
    assert_eq!(
        ok("names", discovery.query_for_names().await),
        ["api", "web"]
    );
    let found = ok("instances", discovery.query_for_instances("api").await);
    let ids: Vec<&str> = found.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c"]);
    assert_eq!(found[2].port, Some(8002));
    assert_eq!(
        found[0].payload,
        Some(Details {
            zone: "zone-a".into()
        })
    );
    let one = ok("one", discovery.query_for_instance("api", "c").await).expect("c");
    assert_eq!(one.id, "c");
    assert!(ok("none", discovery.query_for_instance("api", "zz").await).is_none());
    assert!(ok("none", discovery.query_for_instances("nothing").await).is_empty());

    // A node that is not an instance is skipped, not fatal.
    ok(
        "junk",
        observer
            .create(
                &format!("{BASE}/api/junk"),
                b"not json",
                &corral_client::CreateOptions::persistent(),
            )
            .await,
    );
    assert_eq!(
        ok("instances", discovery.query_for_instances("api").await).len(),
        3
    );
    assert!(matches!(
        discovery.query_for_instance("api", "junk").await,
        Err(RecipeError::InvalidData(_))
    ));

    // Other service types: persistent nodes, and a sequential one with a suffix.
    let st = ServiceInstance::<Details>::new("api")
        .with_id("static")
        .with_service_type(ServiceType::Static);
    ok("static", registry.register(st).await);
    let (_, stat) = ok(
        "read",
        observer.get_data(&format!("{BASE}/api/static")).await,
    );
    assert_eq!(stat.ephemeral_owner, 0);
    let seq = ServiceInstance::<Details>::new("api")
        .with_id("seq-")
        .with_service_type(ServiceType::DynamicSequential);
    let path = ok("sequential", registry.register(seq).await);
    assert!(
        path.starts_with(&format!("{BASE}/api/seq-"))
            && path.len() == format!("{BASE}/api/seq-").len() + 10,
        "{path}"
    );

    ok("close", registry.close().await);
    let left = common::children(&observer, &format!("{BASE}/api")).await;
    assert_eq!(
        left,
        ["junk"],
        "close unregisters everything, of every type"
    );
}

#[tokio::test]
async fn updates_and_unregistrations_reach_a_cache_and_its_event_stream() {
    let ctx = ctx_or_skip!();
    let registry = ok("registry", ServiceRegistry::new(&ctx.client().await, BASE));
    ok("a", registry.register(instance("a", 1)).await);
    let discovery: ServiceDiscovery<Details> =
        ok("d", ServiceDiscovery::new(&ctx.client().await, BASE));
    let cache = ok("cache", discovery.service_cache("api"));
    let mut events = cache.events();
    match within("added", events.recv()).await {
        Some(ServiceCacheEvent::Added(i)) => assert_eq!(i.id, "a"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        within("init", events.recv()).await,
        Some(ServiceCacheEvent::Initialized)
    );
    ok("b", registry.register(instance("b", 2)).await);
    assert!(
        matches!(within("b", events.recv()).await, Some(ServiceCacheEvent::Added(i)) if i.id == "b")
    );
    ok("update", registry.update(instance("a", 11)).await);
    match within("updated", events.recv()).await {
        Some(ServiceCacheEvent::Updated(i)) => assert_eq!((i.id.as_str(), i.port), ("a", Some(11))),
        other => panic!("{other:?}"),
    }
    assert_eq!(cache.get("a").and_then(|i| i.port), Some(11));
    assert!(ok("unregister", registry.unregister("b").await));
    assert!(!ok("unregister twice", registry.unregister("b").await));
    match within("removed", events.recv()).await {
        Some(ServiceCacheEvent::Removed(i)) => assert_eq!(i.id, "b"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        registry.update(instance("b", 3)).await,
        Err(RecipeError::NotRegistered(id)) if id == "b"
    ));
    assert!(matches!(
        registry
            .register(ServiceInstance::new("api").with_id("x/y"))
            .await,
        Err(RecipeError::BadArguments(_))
    ));
    // Registering an id again updates it.
    ok("again", registry.register(instance("a", 12)).await);
    assert!(
        matches!(within("again", events.recv()).await, Some(ServiceCacheEvent::Updated(i)) if i.port == Some(12))
    );
}

#[tokio::test]
async fn a_registered_instance_reappears_after_its_session_is_expired_by_force() {
    let ctx = ctx_or_skip!();
    let proxy = Proxy::start(ctx.server.addr()).await;
    let client = renewing_client_via(&ctx, &proxy).await;
    let registry = ok("registry", ServiceRegistry::new(&client, BASE));
    ok("register", registry.register(instance("x", 1)).await);
    ok("register", registry.register(instance("y", 2)).await);
    let observer = ctx.client().await;
    let discovery: ServiceDiscovery<Details> = ok("d", ServiceDiscovery::new(&observer, BASE));
    let cache = ok("cache", discovery.service_cache("api"));
    wait_ids("both registered", &cache, &["x", "y"]).await;
    let old_session = client.session_id();

    // Expire: the instances vanish with the session ...
    let status = client.status();
    cut_and_wait(&proxy, &client).await;
    ctx.expire(&status).await;
    wait_ids("gone with the session", &cache, &[]).await;
    // ... and come back with the new one.
    heal_and_wait(&proxy, &client).await;
    wait_ids("registered again", &cache, &["x", "y"]).await;
    assert_ne!(client.session_id(), old_session);
    let (_, stat) = ok("read", observer.get_data(&format!("{BASE}/api/x")).await);
    assert_eq!(stat.ephemeral_owner, client.session_id().0);

    // Once more, with the helper that waits for the new session first.
    let epoch = expire_through(&ctx, &proxy, &client).await;
    assert_eq!(epoch, 3);
    wait_ids("registered a third time", &cache, &["x", "y"]).await;
    let (_, stat) = ok("read", observer.get_data(&format!("{BASE}/api/y")).await);
    assert_eq!(stat.ephemeral_owner, client.session_id().0);
}

#[tokio::test]
async fn a_reconnect_that_finds_an_instance_missing_registers_it_again() {
    let ctx = ctx_or_skip!();
    let proxy = Proxy::start(ctx.server.addr()).await;
    let client = ctx.client_via(&proxy).await;
    let registry = ok("registry", ServiceRegistry::new(&client, BASE));
    ok("register", registry.register(instance("m", 1)).await);
    let observer = ctx.client().await;
    cut_and_wait(&proxy, &client).await;
    // Someone removes it while we cannot see it.
    ok(
        "delete",
        observer.delete(&format!("{BASE}/api/m"), None).await,
    );
    wait_children(&observer, &format!("{BASE}/api"), "deleted", |c| {
        c.is_empty()
    })
    .await;
    heal_and_wait(&proxy, &client).await;
    wait_children(&observer, &format!("{BASE}/api"), "registered again", |c| {
        c == ["m"]
    })
    .await;
    let (data, stat) = ok("read", observer.get_data(&format!("{BASE}/api/m")).await);
    assert_eq!(
        stat.ephemeral_owner,
        client.session_id().0,
        "same session, new node"
    );
    let back = ServiceInstance::<Details>::from_json(&data).unwrap();
    assert_eq!(
        back.payload,
        Some(Details {
            zone: "zone-m".into()
        })
    );
}

#[tokio::test]
async fn a_service_cache_converges_after_a_server_failover() {
    let Some(mut cx) = ClusterCtx::start("service cache failover").await else {
        return;
    };
    let registrar = cx
        .builder()
        .with_session_renewal(true)
        .connect()
        .await
        .expect("connect");
    let registry = ok("registry", ServiceRegistry::new(&registrar, BASE));
    for id in ["p", "q"] {
        ok("register", registry.register(instance(id, 1)).await);
    }
    let reader = cx.client().await;
    let discovery: ServiceDiscovery<Details> = ok("d", ServiceDiscovery::new(&reader, BASE));
    let cache = ok("cache", discovery.service_cache("api"));
    wait_ids("before failover", &cache, &["p", "q"]).await;
    let victim = cx.server_of(&reader).await;
    let mut states = reader.state_watcher();
    cx.cluster.stop(victim).await;
    states
        .wait_for(common::WAIT, |s| {
            s.connection_state != ConnectionState::Connected
        })
        .await
        .expect("the reader loses its server");
    // Changes while (and after) the reader fails over.
    let other = cx
        .builder()
        .with_session_renewal(true)
        .connect()
        .await
        .expect("connect");
    let registry2 = ok("registry", ServiceRegistry::new(&other, BASE));
    ok("register r", registry2.register(instance("r", 1)).await);
    ok("unregister p", registry.unregister("p").await);
    wait_ids("after failover", &cache, &["q", "r"]).await;
    assert_ne!(cx.server_of(&reader).await, victim);
    cx.cluster.restart(victim).await.expect("restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_instances_are_discovered_and_kept_current() {
    let ctx = ctx_or_skip!();
    const N: usize = 1000;
    let clients = [ctx.client().await, ctx.client().await];
    let registries: Vec<ServiceRegistry<Details>> = clients
        .iter()
        .map(|c| ServiceRegistry::new(c, BASE).expect("registry"))
        .collect();
    let observer = ctx.client().await;
    let discovery: ServiceDiscovery<Details> = ok("d", ServiceDiscovery::new(&observer, BASE));
    let cache = ok("cache", discovery.service_cache("api"));
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for (r, registry) in registries.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            for i in (r..N).step_by(2) {
                registry
                    .register(instance(&format!("i{i:04}"), i as u16))
                    .await
                    .expect("register");
            }
            registry
        }));
    }
    let mut registries = Vec::new();
    for t in tasks {
        registries.push(within("registrations", t).await.expect("task"));
    }
    println!("registered {N} instances in {:?}", started.elapsed());
    let all: Vec<String> = (0..N).map(|i| format!("i{i:04}")).collect();
    let all_refs: Vec<&str> = all.iter().map(String::as_str).collect();
    wait_ids("all discovered", &cache, &all_refs).await;
    assert_eq!(
        ok("query", discovery.query_for_instances("api").await).len(),
        N
    );

    // Keep it current: unregister every tenth, update every seventh.
    for i in (0..N).step_by(10) {
        assert!(ok(
            "unregister",
            registries[i % 2].unregister(&format!("i{i:04}")).await
        ));
    }
    for i in (1..N).step_by(7) {
        if i % 10 != 0 {
            ok(
                "update",
                registries[i % 2]
                    .update(instance(&format!("i{i:04}"), 65_000))
                    .await,
            );
        }
    }
    let left: Vec<&str> = all_refs
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 10 != 0)
        .map(|(_, s)| *s)
        .collect();
    wait_ids("after churn", &cache, &left).await;
    let want_updated: HashSet<String> = (1..N)
        .step_by(7)
        .filter(|i| i % 10 != 0)
        .map(|i| format!("i{i:04}"))
        .collect();
    within("updates seen", async {
        let mut events = cache.events();
        loop {
            let updated: HashSet<String> = cache
                .instances()
                .into_iter()
                .filter(|i| i.port == Some(65_000))
                .map(|i| i.id)
                .collect();
            if updated == want_updated {
                return;
            }
            if tokio::time::timeout(Duration::from_secs(5), events.recv())
                .await
                .is_err()
            {
                let missing: Vec<_> = want_updated.difference(&updated).collect();
                let extra: Vec<_> = updated.difference(&want_updated).collect();
                panic!("updates not seen: missing {missing:?}, extra {extra:?}");
            }
        }
    })
    .await;
    println!(
        "1000 instances: discovered and kept current in {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn providers_pick_round_robin_random_and_sticky_and_skip_instances_with_noted_errors() {
    let ctx = ctx_or_skip!();
    let registry = ok("registry", ServiceRegistry::new(&ctx.client().await, BASE));
    for (i, id) in ["a", "b", "c"].iter().enumerate() {
        ok("register", registry.register(instance(id, i as u16)).await);
    }
    ok(
        "disabled",
        registry
            .register(instance("z", 9).with_enabled(false))
            .await,
    );
    let discovery: ServiceDiscovery<Details> =
        ok("d", ServiceDiscovery::new(&ctx.client().await, BASE));

    let rr = ok("rr", discovery.service_provider("api").start());
    wait_ids("rr", rr.cache(), &["a", "b", "c", "z"]).await;
    let picks: Vec<String> = (0..6)
        .map(|_| rr.get_instance().expect("some").id)
        .collect();
    assert_eq!(
        picks,
        ["a", "b", "c", "a", "b", "c"],
        "round robin, never the disabled one"
    );
    assert_eq!(rr.get_all_instances().len(), 4);

    let random = ok(
        "random",
        discovery
            .service_provider("api")
            .with_strategy(ProviderStrategy::Random)
            .start(),
    );
    wait_ids("random", random.cache(), &["a", "b", "c", "z"]).await;
    let drawn: BTreeSet<String> = (0..300)
        .map(|_| random.get_instance().expect("some").id)
        .collect();
    assert_eq!(
        drawn,
        ["a", "b", "c"].map(String::from).into(),
        "300 draws reach every enabled one"
    );

    let sticky = ok(
        "sticky",
        discovery
            .service_provider("api")
            .with_strategy(ProviderStrategy::Sticky(Box::new(ProviderStrategy::Random)))
            .with_down_instance_policy(DownInstancePolicy {
                timeout: Duration::from_millis(300),
                error_threshold: 2,
            })
            .start(),
    );
    wait_ids("sticky", sticky.cache(), &["a", "b", "c", "z"]).await;
    let first = sticky.get_instance().expect("some");
    for _ in 0..20 {
        assert_eq!(sticky.get_instance().expect("some").id, first.id, "sticky");
    }
    // One error is below the threshold; two make it down, and the provider moves on.
    sticky.note_error(&first);
    assert_eq!(sticky.get_instance().expect("some").id, first.id);
    sticky.note_error(&first);
    let second = sticky.get_instance().expect("some");
    assert_ne!(second.id, first.id, "a down instance is skipped");
    for _ in 0..20 {
        assert_eq!(sticky.get_instance().expect("some").id, second.id);
    }
    // The policy's timeout passing is what is tested here, not a stand-in for an event.
    tokio::time::sleep(Duration::from_millis(400)).await;
    sticky.note_error(&second);
    sticky.note_error(&second);
    let third = sticky.get_instance().expect("some");
    assert_ne!(third.id, second.id);
    // The first one counts again once its timeout passed, so it can be chosen again.
    let usable: BTreeSet<String> = ["a", "b", "c"]
        .iter()
        .filter(|i| **i != second.id)
        .map(|s| s.to_string())
        .collect();
    assert!(usable.contains(&third.id));

    // Sticky moves on when its instance goes away.
    ok("unregister", registry.unregister(&third.id).await);
    let left: Vec<String> = ["a", "b", "c", "z"]
        .iter()
        .filter(|i| **i != third.id)
        .map(|s| s.to_string())
        .collect();
    wait_ids(
        "unregistered",
        sticky.cache(),
        &left.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    let fourth = sticky.get_instance().expect("some");
    assert_ne!(fourth.id, third.id);

    // Filters, and nothing usable at all.
    let filtered = ok(
        "filtered",
        discovery
            .service_provider("api")
            .with_filter(|i| i.port == Some(200))
            .start(),
    );
    ok("init", within("init", filtered.initialized()).await);
    assert_eq!(filtered.get_instance(), None);
}

#[tokio::test]
async fn a_registry_needs_a_renewing_client_to_come_back_after_expiry_and_says_so() {
    // Without session renewal the expired client is terminal: the instance cannot come
    // back, and the registry reports the end instead of pretending.
    let ctx = ctx_or_skip!();
    let proxy = Proxy::start(ctx.server.addr()).await;
    let client: Client = ctx.client_via(&proxy).await;
    let registry = ok("registry", ServiceRegistry::new(&client, BASE));
    ok("register", registry.register(instance("t", 1)).await);
    let status = client.status();
    cut_and_wait(&proxy, &client).await;
    ctx.expire(&status).await;
    proxy.heal();
    client
        .state_watcher()
        .wait_for(common::WAIT, |s| s.is_terminal())
        .await
        .expect("expired");
    let err = within("register after expiry", registry.register(instance("u", 2))).await;
    assert!(
        matches!(err, Err(RecipeError::Closed) | Err(RecipeError::Client(_))),
        "{err:?}"
    );
}
