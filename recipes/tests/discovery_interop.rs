//! Interoperation with curator-x-discovery 5: a Java program
//! (tests/interop/DiscoveryMember.java, compiled with javac at test time) and the Rust
//! discovery recipes share one registry: Curator's ServiceCache sees instances Rust
//! registered and the Rust ServiceCache sees instances Curator registered, and both write
//! the same JSON.
//!
//! Skipped (with the reason printed) when javac, java or the jars are missing, unless
//! `CORRAL_REQUIRE_COMPAT=1`.

mod common;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::OnceLock;

use common::{ok, within, Ctx};
use corral_recipes::discovery::{
    ServiceCacheEvent, ServiceDiscovery, ServiceInstance, ServiceRegistry, ServiceType, UriSpec,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

/// What DiscoveryMember needs beyond [`common::CURATOR_JARS`]: curator-x-discovery and
/// Jackson.
const DISCOVERY_JARS: [&str; 4] = [
    "curator-x-discovery.jar",
    "jackson-databind.jar",
    "jackson-core.jar",
    "jackson-annotations.jar",
];
const BASE: &str = "/interop-services";

/// The classpath with DiscoveryMember compiled, or why not.
fn compiled() -> &'static Result<String, String> {
    static COMPILED: OnceLock<Result<String, String>> = OnceLock::new();
    COMPILED.get_or_init(|| {
        common::compile_java(
            "DiscoveryMember.java",
            &[&DISCOVERY_JARS[..], &common::CURATOR_JARS[..]].concat(),
        )
    })
}

fn classpath_or_skip() -> Option<String> {
    common::classpath_or_skip(compiled())
}

/// A running DiscoveryMember.
struct Java {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::UnboundedReceiver<String>,
}

impl Java {
    fn start(cp: &str, args: &[&str]) -> Java {
        let mut child = Command::new("java")
            .args(["-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"])
            .args(["-cp", cp, "DiscoveryMember"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start java");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Java {
            child,
            stdin,
            lines,
        }
    }

    async fn line(&mut self, what: &str) -> String {
        within(&format!("java: {what}"), self.lines.recv())
            .await
            .unwrap_or_else(|| panic!("java exited before {what}"))
    }

    /// Reads lines until `SEEN <ids>`; returns the INSTANCE lines before it by id.
    async fn until_seen(&mut self, ids: &str) -> BTreeMap<String, Vec<String>> {
        let mut instances = BTreeMap::new();
        loop {
            let line = self.line(&format!("SEEN {ids}")).await;
            let words: Vec<String> = line.split(' ').map(str::to_owned).collect();
            match words[0].as_str() {
                "INSTANCE" => {
                    instances.insert(words[1].clone(), words[2..].to_vec());
                }
                "SEEN" if words[1] == ids => return instances,
                "SEEN" => instances.clear(),
                _ => panic!("unexpected java output {line:?}"),
            }
        }
    }

    async fn send(&mut self, line: &str) {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("write");
        self.stdin.flush().await.expect("flush");
    }

    async fn finish(mut self) {
        self.send("quit").await;
        loop {
            if self.line("DONE").await == "DONE" {
                break;
            }
        }
        let status = within("java exit", self.child.wait()).await.expect("wait");
        assert!(status.success(), "java failed: {status}");
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Zone {
    zone: String,
}

#[tokio::test]
async fn rust_writes_the_same_json_as_curators_serializer() {
    let Some(cp) = classpath_or_skip() else {
        return;
    };
    let mut java = Java::start(&cp, &["print"]);
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Details {
        description: String,
        weight: i32,
    }
    let pojo = ServiceInstance::new("svc")
        .with_id("id-1")
        .with_address("10.0.0.1")
        .with_port(8080)
        .with_payload(Details {
            description: "d".into(),
            weight: 3,
        })
        .with_payload_class("DiscoveryMember$Details")
        .with_registration_time_utc(1234)
        .with_uri_spec(ok("spec", UriSpec::new("{scheme}://foo.com:{port}")));
    let map = ServiceInstance::new("svc")
        .with_id("id-2")
        .with_address("h")
        .with_ssl_port(443)
        .with_payload(Zone {
            zone: "eu-1".into(),
        })
        .with_payload_class("java.util.HashMap")
        .with_service_type(ServiceType::Static)
        .with_registration_time_utc(5);
    let text = ServiceInstance::new("svc")
        .with_id("id-3")
        .with_address("h")
        .with_payload("hello".to_string())
        .with_service_type(ServiceType::DynamicSequential)
        .with_registration_time_utc(6);
    let disabled = ServiceInstance::new("svc")
        .with_id("id-4")
        .with_address("h")
        .with_port(1)
        .with_payload(5i64)
        .with_payload_class("java.lang.Long")
        .with_enabled(false)
        .with_service_type(ServiceType::Permanent)
        .with_registration_time_utc(7);
    let ours = [
        ok("json", pojo.to_json()),
        ok("json", map.to_json()),
        ok("json", text.to_json()),
        ok("json", disabled.to_json()),
    ];
    for (i, ours) in ours.iter().enumerate() {
        let theirs = java.line("a JSON line").await;
        assert_eq!(String::from_utf8_lossy(ours), theirs, "instance {}", i + 1);
    }
    assert_eq!(
        ServiceInstance::<Details>::from_json(ours[0].as_slice()).unwrap(),
        pojo
    );
    assert_eq!(java.line("DONE").await, "DONE");
}

#[tokio::test]
async fn curators_service_cache_sees_instances_registered_by_rust() {
    let Some(cp) = classpath_or_skip() else {
        return;
    };
    let ctx = ctx_or_skip!();
    let connect = format!("{}{}", ctx.server.addr(), ctx.root);
    let registry = ok("registry", ServiceRegistry::new(&ctx.client().await, BASE));
    for (id, port) in [("rust-1", 7001), ("rust-2", 7002)] {
        let instance = ServiceInstance::new("orders")
            .with_id(id)
            .with_address("10.1.1.1")
            .with_port(port)
            .with_payload(Zone {
                zone: format!("rz-{id}"),
            })
            .with_payload_class("java.util.HashMap");
        ok("register", registry.register(instance).await);
    }
    let mut java = Java::start(&cp, &[&connect, BASE, "watch", "orders"]);
    let seen = java.until_seen("rust-1,rust-2").await;
    // INSTANCE <id> <address> <port> <payload class> <payload> <enabled>
    assert_eq!(
        seen["rust-1"],
        [
            "10.1.1.1",
            "7001",
            "java.util.HashMap",
            "{zone=rz-rust-1}",
            "true"
        ]
    );
    ok("unregister", registry.unregister("rust-1").await);
    java.until_seen("rust-2").await;
    ok(
        "update",
        registry
            .update(
                ServiceInstance::new("orders")
                    .with_id("rust-2")
                    .with_address("10.1.1.2")
                    .with_port(7003)
                    .with_payload(Zone {
                        zone: "moved".into(),
                    })
                    .with_payload_class("java.util.HashMap")
                    .with_enabled(false),
            )
            .await,
    );
    let seen = java.until_seen("rust-2").await;
    assert_eq!(
        seen["rust-2"],
        [
            "10.1.1.2",
            "7003",
            "java.util.HashMap",
            "{zone=moved}",
            "false"
        ]
    );
    ok("close", registry.close().await);
    java.until_seen("-").await;
    java.finish().await;
}

#[tokio::test]
async fn rust_discovers_instances_registered_by_curator() {
    let Some(cp) = classpath_or_skip() else {
        return;
    };
    let ctx: Ctx = ctx_or_skip!();
    let connect = format!("{}{}", ctx.server.addr(), ctx.root);
    let discovery: ServiceDiscovery<Zone> =
        ok("d", ServiceDiscovery::new(&ctx.client().await, BASE));
    let cache = ok("cache", discovery.service_cache("billing"));
    ok("init", within("init", cache.initialized()).await);
    let mut events = cache.events();
    assert_eq!(
        within("init", events.recv()).await,
        Some(ServiceCacheEvent::Initialized)
    );

    let mut java = Java::start(
        &cp,
        &[&connect, BASE, "register", "billing", "j1,j2", "9090"],
    );
    assert_eq!(java.line("REGISTERED j1").await, "REGISTERED j1");
    assert_eq!(java.line("REGISTERED j2").await, "REGISTERED j2");
    let mut added = BTreeMap::new();
    while added.len() < 2 {
        match within("added", events.recv()).await {
            Some(ServiceCacheEvent::Added(i)) => {
                added.insert(i.id.clone(), i);
            }
            other => panic!("{other:?}"),
        }
    }
    let j1 = &added["j1"];
    assert_eq!(j1.name, "billing");
    assert_eq!(j1.address.as_deref(), Some("127.0.0.1"));
    assert_eq!(j1.port, Some(9090));
    assert_eq!(
        j1.payload,
        Some(Zone {
            zone: "java-j1".into()
        })
    );
    assert_eq!(j1.payload_class.as_deref(), Some("java.util.HashMap"));
    assert_eq!(j1.service_type, ServiceType::Dynamic);
    assert!(j1.enabled);
    // The one-off queries and a provider see them too.
    let queried = ok("query", discovery.query_for_instances("billing").await);
    assert_eq!(queried.len(), 2);
    let provider = ok("provider", discovery.service_provider("billing").start());
    ok(
        "init",
        within("provider init", provider.initialized()).await,
    );
    assert!(provider
        .get_instance()
        .is_some_and(|i| i.id.starts_with('j')));

    java.send("unregister j1").await;
    assert_eq!(java.line("UNREGISTERED j1").await, "UNREGISTERED j1");
    match within("removed", events.recv()).await {
        Some(ServiceCacheEvent::Removed(i)) => assert_eq!(i.id, "j1"),
        other => panic!("{other:?}"),
    }
    java.finish().await;
    // Curator's close unregistered j2 as well.
    match within("removed on close", events.recv()).await {
        Some(ServiceCacheEvent::Removed(i)) => assert_eq!(i.id, "j2"),
        other => panic!("{other:?}"),
    }
    assert!(cache.instances().is_empty());
}
