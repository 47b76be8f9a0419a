//! Where the leadership tests run, and the fencing-token log that checks them.
//!
//! With Corral (the default backend) the servers are a three-member
//! `corral_server::testing::TestingCluster` with a short tick (so sessions expire
//! promptly and servers can be restarted); with `CORRAL_TEST_BACKEND=zookeeper` (or
//! `CORRAL_TEST_ZK`) they are the harness's single server, and the tests that need an
//! ensemble say so and skip.
//!
//! Every participant connects through one TCP proxy per server, so a test can cut it off
//! (its connection drops; it cannot reconnect) and then expire its session from another
//! client. Participants' clients renew their session after an expiry.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use corral_client::{Client, ClientBuilder, CreateOptions, SessionStatus};
use corral_server::testing::TestingCluster;

use crate::common::{self, within, Ctx, Proxy, WAIT};

/// The tick of the test ensemble: sessions expire within a tick of their timeout.
pub const TICK_MS: u32 = 250;

/// The servers of one test.
pub enum Servers {
    /// A Corral ensemble.
    Cluster(TestingCluster),
    /// The harness's single server (Apache ZooKeeper or an external one).
    Single(Ctx),
}

/// A test's servers and root.
pub struct Env {
    pub servers: Servers,
    pub root: String,
    addrs: Vec<String>,
}

/// A participant's client and its proxies.
pub struct Member {
    pub client: Client,
    proxies: Vec<Proxy>,
}

impl Member {
    /// Cuts the member off: its connection drops and it cannot reconnect.
    pub fn cut(&self) {
        for p in &self.proxies {
            p.cut();
        }
    }

    /// Lets the member reconnect.
    pub fn heal(&self) {
        for p in &self.proxies {
            p.heal();
        }
    }
}

impl Env {
    /// Starts the servers and creates the test's root; `None` when the test is skipped.
    pub async fn start() -> Option<Env> {
        common::init_tracing();
        if common::backend_name() != "corral" {
            let ctx = Ctx::new().await?;
            let addrs = vec![ctx.server.addr()];
            let root = ctx.root.clone();
            return Some(Env {
                servers: Servers::Single(ctx),
                root,
                addrs,
            });
        }
        // The ensemble's ports are picked free and bound a moment later, so another test
        // may take one in between: try again with fresh ports.
        let mut attempt = 0;
        let cluster = loop {
            attempt += 1;
            match TestingCluster::start_with(3, 0, |c| c.tick_time_ms = TICK_MS).await {
                Ok(c) => break c,
                Err(e) if attempt < 5 => {
                    eprintln!("starting the test ensemble failed ({e}); again")
                }
                Err(e) => panic!("start the test ensemble: {e}"),
            }
        };
        cluster
            .wait_for_leader(WAIT)
            .await
            .expect("the ensemble elects a leader");
        let addrs: Vec<String> = cluster
            .ids()
            .into_iter()
            .map(|id| cluster.addr(id).to_string())
            .collect();
        let root = format!("/{}", common::unique("leader-test"));
        let admin = within("admin connect", Client::connect(&addrs.join(",")))
            .await
            .expect("connect");
        admin
            .create(&root, b"", &CreateOptions::persistent())
            .await
            .expect("create the test root");
        admin.close().await.expect("close");
        Some(Env {
            servers: Servers::Cluster(cluster),
            root,
            addrs,
        })
    }

    /// The ensemble, if the test runs on one.
    pub fn cluster(&mut self) -> Option<&mut TestingCluster> {
        match &mut self.servers {
            Servers::Cluster(c) => Some(c),
            Servers::Single(_) => None,
        }
    }

    /// `host:port` of every server.
    pub fn addrs(&self) -> &[String] {
        &self.addrs
    }

    /// Every watch the servers hold, as (path, session) pairs (`wchp` on each server).
    pub async fn watches(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for addr in &self.addrs {
            let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
            let text = common::four_letter_word(port, b"wchp")
                .await
                .unwrap_or_default();
            let mut path = String::new();
            for line in text.lines() {
                if line.starts_with(char::is_whitespace) {
                    out.push((path.clone(), line.trim().to_owned()));
                } else if !line.is_empty() {
                    path = line.to_owned();
                }
            }
        }
        out
    }

    /// The session timeout participants ask for (Apache ZooKeeper's harness has a tick
    /// of 2 s, hence a minimum of 4 s).
    pub fn session_timeout(&self) -> Duration {
        match self.servers {
            Servers::Cluster(_) => Duration::from_secs(3),
            Servers::Single(_) => Duration::from_secs(4),
        }
    }

    fn builder(&self, hosts: &str) -> ClientBuilder {
        Client::builder(format!("{hosts}{}", self.root))
            .with_session_timeout(self.session_timeout())
            .with_connection_timeout(Duration::from_secs(10))
    }

    /// A client connected straight to the servers.
    pub async fn client(&self) -> Client {
        within("connect", self.builder(&self.addrs.join(",")).connect())
            .await
            .expect("connect")
    }

    /// A participant: a session-renewing client behind one proxy per server.
    pub async fn member(&self) -> Member {
        let mut proxies = Vec::new();
        for addr in &self.addrs {
            proxies.push(Proxy::start(addr.clone()).await);
        }
        let hosts: Vec<&str> = proxies.iter().map(|p| p.addr()).collect();
        let client = within(
            "connect a member",
            self.builder(&hosts.join(","))
                .with_session_renewal(true)
                .connect(),
        )
        .await
        .expect("connect a member");
        Member { client, proxies }
    }

    /// Expires the session of `status` (its owner should be cut off first): another client
    /// resumes it and closes it.
    pub async fn expire(&self, status: &SessionStatus) {
        let thief = within(
            "resume the session",
            self.builder(&self.addrs.join(","))
                .with_session(status.session_id, status.password())
                .connect(),
        )
        .await
        .expect("resume the session");
        assert_eq!(thief.session_id(), status.session_id);
        thief.close().await.expect("close the session");
    }
}

/// One term as the participants reported it.
#[derive(Debug, Clone)]
pub struct TermRecord {
    pub who: String,
    pub token: i64,
    pub start: Instant,
    pub end: Option<Instant>,
}

/// The shared fencing-token log: participants record when they start and stop claiming
/// leadership, with their token.
#[derive(Debug, Default)]
pub struct TermLog {
    terms: Mutex<Vec<TermRecord>>,
}

impl TermLog {
    /// `who` starts claiming leadership with `token`.
    pub fn begin(&self, who: &str, token: i64) {
        self.terms.lock().unwrap().push(TermRecord {
            who: who.to_owned(),
            token,
            start: Instant::now(),
            end: None,
        });
    }

    /// `who` stops claiming leadership.
    pub fn end(&self, who: &str) {
        let now = Instant::now();
        let mut terms = self.terms.lock().unwrap();
        if let Some(t) = terms
            .iter_mut()
            .rev()
            .find(|t| t.who == who && t.end.is_none())
        {
            t.end = Some(now);
        }
    }

    /// The terms so far.
    pub fn terms(&self) -> Vec<TermRecord> {
        self.terms.lock().unwrap().clone()
    }

    /// Checks that terms never overlap in time and that tokens strictly increase from one
    /// participant's term to the next (a participant that leads again on the same node
    /// keeps its token). Returns the number of terms.
    pub fn check(&self) -> usize {
        let mut terms = self.terms();
        terms.sort_by_key(|t| t.start);
        for pair in terms.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            match a.end {
                Some(end) => assert!(
                    end <= b.start,
                    "two leaders at once: {a:?} had not ended when {b:?} began (all: {terms:#?})"
                ),
                None => panic!("two leaders at once: {a:?} never ended, {b:?} began"),
            }
            if a.token == b.token {
                assert_eq!(a.who, b.who, "one token for two participants: {a:?} {b:?}");
            } else {
                assert!(
                    b.token > a.token,
                    "fencing tokens must increase: {a:?} then {b:?}"
                );
            }
        }
        terms.len()
    }
}

/// Records a latch's terms in `log` as its state changes, until the latch is gone.
pub fn observe_latch(
    log: Arc<TermLog>,
    who: String,
    mut rx: tokio::sync::watch::Receiver<corral_recipes::leader::LatchState>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut leading: Option<i64> = None;
        loop {
            let term = rx.borrow_and_update().term().map(|t| t.fencing_token().0);
            match (leading, term) {
                (None, Some(token)) => log.begin(&who, token),
                (Some(_), None) => log.end(&who),
                (Some(old), Some(new)) if old != new => {
                    log.end(&who);
                    log.begin(&who, new);
                }
                _ => {}
            }
            leading = term;
            if rx.changed().await.is_err() {
                if leading.is_some() {
                    log.end(&who);
                }
                return;
            }
        }
    })
}

/// A small seeded generator (xorshift), so a failing schedule can be replayed with
/// `CORRAL_TEST_SEED`.
pub struct Rng(u64);

impl Rng {
    /// Seeded from `CORRAL_TEST_SEED` or the clock; prints the seed.
    pub fn from_env(test: &str) -> Rng {
        let seed = std::env::var("CORRAL_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        eprintln!("{test}: seed {seed} (replay with CORRAL_TEST_SEED={seed})");
        Rng(seed.max(1))
    }

    /// The next number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x % n
    }
}
