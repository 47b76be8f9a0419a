//! Crash safety of the real binary: SIGKILL at random moments while a client writes, then
//! restart and check that every acknowledged write is there and nothing is half-applied;
//! and sessions with their ephemerals across a restart.
//!
//! `CORRAL_CRASH_ROUNDS=200 cargo test -p corral-server --test crash` runs more rounds;
//! `CORRAL_CRASH_SEED=<n>` replays a run (the seed is printed).

use corral_proto::frame::{begin_frame, end_frame, frame_len};
use corral_proto::{
    Acl, ConnectRequest, ConnectResponse, CreateRequest, DecodeError, GetChildrenResponse,
    GetDataResponse, Jute, MultiResult, OpCode, PathWatchRequest, ReplyHeader, Request,
    RequestHeader, Response, SetDataRequest,
};
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Bound on every wait for the server.
const WAIT: Duration = Duration::from_secs(15);

// ----- a tiny blocking client ----------------------------------------------------------------

struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
    session: ConnectResponse,
    next_xid: i32,
}

#[derive(Debug)]
struct Reply {
    err: i32,
    body: Vec<u8>,
}

fn frame(payload: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut v = Vec::new();
    let at = begin_frame(&mut v);
    payload(&mut v);
    end_frame(&mut v, at);
    v
}

impl Client {
    /// Opens a session (`session_id` 0) or resumes one.
    fn connect(
        addr: SocketAddr,
        timeout_ms: i32,
        session_id: i64,
        passwd: &[u8],
    ) -> io::Result<Client> {
        let stream = TcpStream::connect_timeout(&addr, WAIT)?;
        stream.set_read_timeout(Some(WAIT))?;
        stream.set_nodelay(true)?;
        let mut c = Client {
            stream,
            buf: Vec::new(),
            session: ConnectResponse::default(),
            next_xid: 1,
        };
        let req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout_ms,
            session_id,
            passwd: if session_id == 0 {
                vec![0; 16]
            } else {
                passwd.to_vec()
            },
            read_only: Some(false),
        };
        c.stream.write_all(&frame(|b| req.write(b)))?;
        let payload = c.read_frame()?;
        c.session = ConnectResponse::from_bytes(&payload).map_err(io::Error::other)?;
        Ok(c)
    }

    fn read_frame(&mut self) -> io::Result<Vec<u8>> {
        loop {
            match frame_len(&self.buf, 16 << 20) {
                Ok(len) => {
                    let payload = self.buf[4..4 + len].to_vec();
                    self.buf.drain(..4 + len);
                    return Ok(payload);
                }
                Err(DecodeError::Incomplete) => {
                    let mut chunk = [0u8; 64 * 1024];
                    let n = self.stream.read(&mut chunk)?;
                    if n == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                    self.buf.extend_from_slice(&chunk[..n]);
                }
                Err(e) => return Err(io::Error::other(e)),
            }
        }
    }

    /// Sends requests back to back, then reads their replies in order.
    fn pipeline(&mut self, reqs: &[Request]) -> io::Result<Vec<Reply>> {
        let mut out = Vec::new();
        let first = self.next_xid;
        for req in reqs {
            let xid = self.next_xid;
            self.next_xid += 1;
            out.extend(frame(|b| {
                RequestHeader {
                    xid,
                    op: req.op() as i32,
                }
                .write(b);
                req.write_body(b);
            }));
        }
        self.stream.write_all(&out)?;
        let mut replies = Vec::with_capacity(reqs.len());
        while replies.len() < reqs.len() {
            let payload = self.read_frame()?;
            let mut r = corral_proto::Reader::new(&payload);
            let h = ReplyHeader::read(&mut r).map_err(io::Error::other)?;
            if h.xid < 0 {
                continue; // a notification or ping
            }
            assert_eq!(h.xid, first + replies.len() as i32, "replies in order");
            replies.push(Reply {
                err: h.err,
                body: r.rest().to_vec(),
            });
        }
        Ok(replies)
    }

    fn call(&mut self, req: Request) -> io::Result<Reply> {
        Ok(self.pipeline(&[req])?.remove(0))
    }
}

fn create_req(path: &str, data: &[u8], flags: i32) -> Request {
    Request::Create(CreateRequest {
        path: path.into(),
        data: Some(data.to_vec()),
        acl: Acl::open_unsafe(),
        flags,
    })
}

fn get_data(path: &str) -> Request {
    Request::GetData(PathWatchRequest {
        path: path.into(),
        watch: false,
    })
}

fn exists(path: &str) -> Request {
    Request::Exists(PathWatchRequest {
        path: path.into(),
        watch: false,
    })
}

const NO_NODE: i32 = -101;

// ----- the server process ------------------------------------------------------------------

struct ServerProc {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

fn free_port() -> u16 {
    corral_server::testing::free_port().expect("a free loopback port")
}

fn start_server(dir: &Path, round: usize) -> ServerProc {
    let port = free_port();
    let data = dir.join("data");
    let cfg = dir.join(format!("zoo-{round}.cfg"));
    std::fs::write(
        &cfg,
        format!(
            "tickTime=2000\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n",
            data.display()
        ),
    )
    .unwrap();
    let log = dir.join(format!("server-{round}.log"));
    let child = Command::new(env!("CARGO_BIN_EXE_corral-server"))
        .arg("--config")
        .arg(&cfg)
        .env("CORRAL_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
        .spawn()
        .expect("spawn corral-server");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut server = ServerProc { child, addr, log };
    let deadline = Instant::now() + WAIT;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return server;
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("server exited with {status}:\n{}", server.log_text());
        }
        assert!(
            Instant::now() < deadline,
            "server did not listen within {WAIT:?}:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl ServerProc {
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ----- the write oracle ----------------------------------------------------------------------

/// A splitmix64 RNG, seeded by the test.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A write whose outcome is unknown: sent, not acknowledged when the server died.
#[derive(Debug, Clone)]
enum Pending {
    Create(String, Vec<u8>),
    SetData(String, Vec<u8>),
    /// A multi creating a node and its child.
    Multi(String, String, Vec<u8>),
}

#[derive(Debug, Default)]
struct Oracle {
    /// Every acknowledged node under /crash and its acknowledged data.
    acked: BTreeMap<String, Vec<u8>>,
    pending: Option<Pending>,
    next: u64,
    acked_writes: u64,
}

/// Writes until the connection breaks, recording each acknowledged write.
fn writer(mut c: Client, oracle: Arc<Mutex<Oracle>>, seed: u64) {
    let mut rng = Rng(seed);
    loop {
        let (op, req) = {
            let mut o = oracle.lock().unwrap();
            o.next += 1;
            let i = o.next;
            let op = match rng.below(6) {
                0 if !o.acked.is_empty() => {
                    let k = rng.below(o.acked.len() as u64) as usize;
                    let path = o.acked.keys().nth(k).unwrap().clone();
                    Pending::SetData(path, format!("s-{i}").into_bytes())
                }
                1 => Pending::Multi(
                    format!("/crash/m-{i}"),
                    format!("/crash/m-{i}/c"),
                    format!("m-{i}").into_bytes(),
                ),
                _ => Pending::Create(format!("/crash/n-{i}"), format!("c-{i}").into_bytes()),
            };
            let req = match &op {
                Pending::Create(p, d) => create_req(p, d, 0),
                Pending::SetData(p, d) => Request::SetData(SetDataRequest {
                    path: p.clone(),
                    data: Some(d.clone()),
                    version: -1,
                }),
                Pending::Multi(a, b, d) => {
                    Request::Multi(vec![create_req(a, d, 0), create_req(b, d, 0)])
                }
            };
            o.pending = Some(op.clone());
            (op, req)
        };
        let Ok(reply) = c.call(req) else {
            return; // the server died: `pending` stays unknown
        };
        assert_eq!(reply.err, 0, "{op:?} failed");
        if let Pending::Multi(..) = op {
            let Response::Multi(rs) = Response::decode(OpCode::Multi, &reply.body).unwrap() else {
                panic!("multi reply")
            };
            assert!(
                rs.iter().all(|r| !matches!(r, MultiResult::Error(_))),
                "{rs:?}"
            );
        }
        let mut o = oracle.lock().unwrap();
        o.pending = None;
        o.acked_writes += 1;
        match op {
            Pending::Create(p, d) | Pending::SetData(p, d) => {
                o.acked.insert(p, d);
            }
            Pending::Multi(a, b, d) => {
                o.acked.insert(a, d.clone());
                o.acked.insert(b, d);
            }
        }
    }
}

/// Reads every node the oracle knows and the children of /crash; settles the pending
/// write; panics on a lost acknowledged write or a half-applied one.
fn verify(c: &mut Client, o: &mut Oracle, seed: u64, round: usize) {
    let ctx = format!("seed {seed}, round {round}");
    // Nodes that exist under /crash, including the children of multi-created nodes.
    let mut present: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut dirs = vec!["/crash".to_owned()];
    while let Some(dir) = dirs.pop() {
        let r = c
            .call(Request::GetChildren(PathWatchRequest {
                path: dir.clone(),
                watch: false,
            }))
            .unwrap();
        assert_eq!(r.err, 0, "getChildren {dir} ({ctx})");
        let kids = GetChildrenResponse::from_bytes(&r.body).unwrap().children;
        let paths: Vec<String> = kids.iter().map(|k| format!("{dir}/{k}")).collect();
        for chunk in paths.chunks(500) {
            let reqs: Vec<Request> = chunk.iter().map(|p| get_data(p)).collect();
            for (p, r) in chunk.iter().zip(c.pipeline(&reqs).unwrap()) {
                assert_eq!(r.err, 0, "getData {p} ({ctx})");
                let d = GetDataResponse::from_bytes(&r.body).unwrap();
                present.insert(p.clone(), d.data.unwrap_or_default());
            }
        }
        dirs.extend(
            paths
                .into_iter()
                .filter(|p| p.contains("/m-") && !p.ends_with("/c")),
        );
    }
    match o.pending.take() {
        None => {}
        Some(Pending::Create(p, d)) => {
            if let Some(got) = present.get(&p) {
                assert_eq!(
                    got, &d,
                    "unacknowledged create of {p} has wrong data ({ctx})"
                );
                o.acked.insert(p, d);
            }
        }
        Some(Pending::SetData(p, d)) => {
            let got = present.get(&p).cloned();
            let old = o.acked.get(&p).cloned();
            assert!(
                got.as_ref() == Some(&d) || got == old,
                "{p} holds {got:?}: neither {old:?} nor the unacknowledged {d:?} ({ctx})"
            );
            if got.as_ref() == Some(&d) {
                o.acked.insert(p, d);
            }
        }
        Some(Pending::Multi(a, b, d)) => {
            assert_eq!(
                present.contains_key(&a),
                present.contains_key(&b),
                "multi half-applied: {a} vs {b} ({ctx})"
            );
            if present.contains_key(&a) {
                o.acked.insert(a, d.clone());
                o.acked.insert(b, d);
            }
        }
    }
    for (p, d) in &o.acked {
        match present.get(p) {
            Some(got) => assert_eq!(
                got,
                d,
                "acknowledged data of {p} lost ({ctx}): {:?} vs {:?}",
                String::from_utf8_lossy(got),
                String::from_utf8_lossy(d)
            ),
            None => panic!("acknowledged node {p} lost ({ctx})"),
        }
    }
    for p in present.keys() {
        assert!(o.acked.contains_key(p), "{p} was never written ({ctx})");
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn every_acknowledged_write_survives_sigkill() {
    let seed = env_u64("CORRAL_CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    let rounds = env_u64("CORRAL_CRASH_ROUNDS").unwrap_or(20) as usize;
    println!("crash test: seed {seed}, {rounds} rounds (CORRAL_CRASH_SEED={seed} to replay)");
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(seed);
    let mut oracle = Oracle::default();
    let started = Instant::now();
    for round in 0..=rounds {
        let mut server = start_server(dir.path(), round);
        let mut c = Client::connect(server.addr, 10_000, 0, &[]).unwrap();
        assert!(c.session.timeout_ms > 0, "session refused");
        if round == 0 {
            assert_eq!(c.call(create_req("/crash", b"", 0)).unwrap().err, 0);
        } else {
            verify(&mut c, &mut oracle, seed, round);
        }
        if round == rounds {
            break;
        }
        let shared = Arc::new(Mutex::new(std::mem::take(&mut oracle)));
        let w = {
            let shared = shared.clone();
            let wseed = rng.next();
            std::thread::spawn(move || writer(c, shared, wseed))
        };
        // The random moment of the crash.
        std::thread::sleep(Duration::from_millis(5 + rng.below(150)));
        server.kill();
        w.join().expect("writer thread");
        oracle = Arc::try_unwrap(shared).unwrap().into_inner().unwrap();
    }
    println!(
        "crash test: {} acknowledged writes, {} nodes, {rounds} kills in {:?}",
        oracle.acked_writes,
        oracle.acked.len(),
        started.elapsed()
    );
    assert!(
        oracle.acked_writes > rounds as u64,
        "the writer made progress"
    );
}

#[test]
fn a_reconnecting_session_keeps_its_ephemeral_and_an_abandoned_one_loses_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start_server(dir.path(), 0);
    let mut a = Client::connect(server.addr, 4000, 0, &[]).unwrap();
    let mut b = Client::connect(server.addr, 4000, 0, &[]).unwrap();
    assert_eq!(a.call(create_req("/eph-a", b"a", 1)).unwrap().err, 0);
    assert_eq!(b.call(create_req("/eph-b", b"b", 1)).unwrap().err, 0);
    let (a_id, a_pw) = (a.session.session_id, a.session.passwd.clone());
    let (b_id, b_pw) = (b.session.session_id, b.session.passwd.clone());
    let timeout = Duration::from_millis(a.session.timeout_ms as u64);
    server.kill();
    drop((a, b));

    let server = start_server(dir.path(), 1);
    let mut a = Client::connect(server.addr, 4000, a_id, &a_pw).unwrap();
    assert_eq!(a.session.session_id, a_id, "session resumed after restart");
    assert!(a.session.timeout_ms > 0);
    assert_eq!(a.call(exists("/eph-a")).unwrap().err, 0);
    assert_eq!(
        a.call(exists("/eph-b")).unwrap().err,
        0,
        "b's session is alive until its timeout"
    );
    // b never comes back: its session expires a timeout (plus a tick) after the restart.
    let deadline = Instant::now() + timeout + WAIT;
    loop {
        let err = a.call(exists("/eph-b")).unwrap().err;
        if err == NO_NODE {
            break;
        }
        assert_eq!(err, 0);
        assert!(
            Instant::now() < deadline,
            "/eph-b still exists {:?} after the restart:\n{}",
            timeout + WAIT,
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        a.call(exists("/eph-a")).unwrap().err,
        0,
        "a kept its ephemeral"
    );
    let b = Client::connect(server.addr, 4000, b_id, &b_pw).unwrap();
    assert_eq!(b.session.timeout_ms, 0, "b's session is expired");
}
