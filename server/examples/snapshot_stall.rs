//! How much does a snapshot stall writes?
//!
//! Starts a server in-process (port 0, a temporary data directory, `snapCount` set so a
//! snapshot is taken during the fill), fills it with N znodes of 100 bytes through pipelined
//! raw-protocol creates on a few connections, and compares the write latency of writes in
//! flight while a snapshot was being written with the others. Then stops the server and
//! times recovery (`storage::open` on the same directories).
//!
//! ```text
//! cargo run --release -p corral-server --example snapshot_stall -- --nodes 1000000
//! ```
//!
//! Options: `--nodes N` (default 200000), `--conns C` (4), `--window W` (requests in
//! flight per connection, 32), `--data-bytes B` (100), `--no-sync` (forceSync=no),
//! `--no-snapshot` (a baseline: 8 s of steady writes without a snapshot), `--data-dir D`
//! (keep the data there), `--recover-only` (only time the recovery of `--data-dir`).

use corral_proto::frame::{begin_frame, end_frame, frame_len};
use corral_proto::{
    Acl, ConnectRequest, ConnectResponse, CreateRequest, DecodeError, Jute, ReplyHeader, Request,
    RequestHeader, SetDataRequest,
};
use corral_server::config::ServerConfig;
use corral_server::server::Server;
use corral_server::storage::{self, StorageConfig};
use std::collections::BTreeMap;
use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

type Error = Box<dyn std::error::Error + Send + Sync>;

struct Opts {
    nodes: u64,
    conns: u64,
    window: usize,
    data_bytes: usize,
    force_sync: bool,
    snapshot: bool,
    /// Use (and keep) this data directory instead of a temporary one.
    data_dir: Option<PathBuf>,
    /// Only time the recovery of `data_dir`.
    recover_only: bool,
}

fn parse_args() -> Result<Opts, Error> {
    let mut o = Opts {
        nodes: 200_000,
        conns: 4,
        window: 32,
        data_bytes: 100,
        force_sync: true,
        snapshot: true,
        data_dir: None,
        recover_only: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num =
            || -> Result<u64, Error> { Ok(args.next().ok_or("missing value")?.parse::<u64>()?) };
        match a.as_str() {
            "--nodes" => o.nodes = num()?,
            "--conns" => o.conns = num()?.max(1),
            "--window" => o.window = num()?.max(1) as usize,
            "--data-bytes" => o.data_bytes = num()? as usize,
            "--no-sync" => o.force_sync = false,
            "--no-snapshot" => o.snapshot = false,
            "--data-dir" => o.data_dir = Some(args.next().ok_or("missing value")?.into()),
            "--recover-only" => o.recover_only = true,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(o)
}

fn frame(payload: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut v = Vec::new();
    let at = begin_frame(&mut v);
    payload(&mut v);
    end_frame(&mut v, at);
    v
}

fn read_frame(r: &mut impl Read, buf: &mut Vec<u8>) -> Result<Vec<u8>, Error> {
    loop {
        match frame_len(buf, 16 << 20) {
            Ok(len) => {
                let payload = buf[4..4 + len].to_vec();
                buf.drain(..4 + len);
                return Ok(payload);
            }
            Err(DecodeError::Incomplete) => {
                let mut chunk = [0u8; 64 * 1024];
                let n = r.read(&mut chunk)?;
                if n == 0 {
                    return Err("connection closed".into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn connect(addr: SocketAddr) -> Result<TcpStream, Error> {
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    let req = ConnectRequest {
        timeout_ms: 30_000,
        passwd: vec![0; 16],
        ..ConnectRequest::default()
    };
    s.write_all(&frame(|b| req.write(b)))?;
    let resp = ConnectResponse::from_bytes(&read_frame(&mut s, &mut Vec::new())?)?;
    if resp.timeout_ms == 0 {
        return Err("session refused".into());
    }
    Ok(s)
}

fn create_frame(xid: i32, path: String, data: &[u8]) -> Vec<u8> {
    let req = Request::Create(CreateRequest {
        path,
        data: Some(data.to_vec()),
        acl: Acl::open_unsafe(),
        flags: 0,
    });
    frame(|b| {
        RequestHeader {
            xid,
            op: req.op() as i32,
        }
        .write(b);
        req.write_body(b);
    })
}

/// One write: when it was sent and how long its reply took, µs since the start.
#[derive(Clone, Copy)]
struct Sample {
    sent_us: u64,
    latency_us: u64,
}

/// Sends the frames `next` makes over one connection, `window` in flight, until it
/// returns `None`; returns every write's latency.
fn drive(
    addr: SocketAddr,
    window: usize,
    t0: Instant,
    mut next: impl FnMut(i32) -> Option<Vec<u8>>,
) -> Result<Vec<Sample>, Error> {
    let stream = connect(addr)?;
    let mut reader = BufReader::with_capacity(1 << 20, stream.try_clone()?);
    let mut writer = stream;
    let (permit_tx, permit_rx) = mpsc::sync_channel::<()>(window);
    let (sent_tx, sent_rx) = mpsc::channel::<Instant>();
    // One reply per timestamp; the sender sends the timestamp before the request.
    let receiver = std::thread::spawn(move || -> Result<Vec<Sample>, Error> {
        let mut buf = Vec::new();
        let mut samples = Vec::new();
        while let Ok(sent) = sent_rx.recv() {
            let payload = read_frame(&mut reader, &mut buf)?;
            let now = Instant::now();
            let h = ReplyHeader::from_bytes(&payload[..16])?;
            if h.err != 0 {
                return Err(format!("write failed: {}", h.err).into());
            }
            samples.push(Sample {
                sent_us: sent.duration_since(t0).as_micros() as u64,
                latency_us: now.duration_since(sent).as_micros() as u64,
            });
            permit_rx.recv()?;
        }
        Ok(samples)
    });
    let mut batch = Vec::new();
    let mut batch_n = 0;
    let mut xid = 1;
    while let Some(frame) = next(xid) {
        xid += 1;
        if let Err(mpsc::TrySendError::Full(())) = permit_tx.try_send(()) {
            flush(&mut writer, &mut batch, &mut batch_n, &sent_tx)?;
            permit_tx.send(())?;
        }
        batch.extend(frame);
        batch_n += 1;
        if batch_n == 16 {
            flush(&mut writer, &mut batch, &mut batch_n, &sent_tx)?;
        }
    }
    flush(&mut writer, &mut batch, &mut batch_n, &sent_tx)?;
    drop(sent_tx);
    receiver.join().map_err(|_| "receiver panicked")?
}

/// Pings every millisecond until `stop`: the node loop answers pings, so their round
/// trip shows the loop's own stalls, apart from the log's fsync.
fn pinger(addr: SocketAddr, t0: Instant, stop: Arc<AtomicBool>) -> Result<Vec<Sample>, Error> {
    let mut s = connect(addr)?;
    let ping = frame(|b| {
        RequestHeader {
            xid: corral_proto::XID_PING,
            op: corral_proto::OpCode::Ping as i32,
        }
        .write(b)
    });
    let mut buf = Vec::new();
    let mut samples = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        s.write_all(&ping)?;
        read_frame(&mut s, &mut buf)?;
        samples.push(Sample {
            sent_us: sent.duration_since(t0).as_micros() as u64,
            latency_us: sent.elapsed().as_micros() as u64,
        });
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(samples)
}

fn set_frame(xid: i32, path: String, data: &[u8]) -> Vec<u8> {
    let req = Request::SetData(SetDataRequest {
        path,
        data: Some(data.to_vec()),
        version: -1,
    });
    frame(|b| {
        RequestHeader {
            xid,
            op: req.op() as i32,
        }
        .write(b);
        req.write_body(b);
    })
}

fn flush(
    w: &mut TcpStream,
    batch: &mut Vec<u8>,
    n: &mut usize,
    sent: &mpsc::Sender<Instant>,
) -> Result<(), Error> {
    if *n == 0 {
        return Ok(());
    }
    let now = Instant::now();
    for _ in 0..*n {
        sent.send(now)?;
    }
    w.write_all(batch)?;
    batch.clear();
    *n = 0;
    Ok(())
}

/// Snapshot windows by zxid: when the `.tmp` file and the finished file were first seen.
type Windows = Arc<Mutex<BTreeMap<String, (Option<u64>, Option<u64>)>>>;

/// Watches the data dir: when each `snapshot.<zxid>.tmp` appears and when the finished
/// `snapshot.<zxid>` does, µs since `t0`.
fn watch_snapshots(dir: PathBuf, t0: Instant, stop: Arc<AtomicBool>, windows: Windows) {
    while !stop.load(Ordering::Relaxed) {
        let now = t0.elapsed().as_micros() as u64;
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let Some(rest) = name.strip_prefix("snapshot.") else {
                    continue;
                };
                let mut w = windows.lock().unwrap();
                match rest.strip_suffix(".tmp") {
                    Some(z) => {
                        w.entry(z.to_owned()).or_default().0.get_or_insert(now);
                    }
                    None => {
                        let entry = w.entry(rest.to_owned()).or_default();
                        entry.0.get_or_insert(now);
                        entry.1.get_or_insert(now);
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

fn dir_bytes(dir: &Path, prefix: &str) -> u64 {
    std::fs::read_dir(dir)
        .map(|es| {
            es.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CORRAL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let o = parse_args()?;
    let tmp = tempfile::tempdir()?;
    let dir = o.data_dir.clone().unwrap_or_else(|| tmp.path().to_owned());
    if o.recover_only {
        let scfg = StorageConfig::from_server_config(&ServerConfig {
            data_dir: dir,
            ..ServerConfig::default()
        });
        let started = Instant::now();
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let (_log, recovered) = storage::open(&scfg, tx)?;
        println!(
            "recovery:   {:.2} s to zxid 0x{:x}, {} nodes; peak RSS {} MiB",
            started.elapsed().as_secs_f64(),
            recovered.tree.last_zxid(),
            recovered.tree.node_count(),
            rss_kib("VmHWM:") / 1024
        );
        return Ok(());
    }
    let cfg = ServerConfig {
        client_port: 0,
        data_dir: dir.clone(),
        tick_time_ms: 2000,
        max_client_cnxns: 0,
        force_sync: o.force_sync,
        // The threshold is drawn from [snapCount/2, snapCount): the first snapshot comes
        // after the fill, while setData runs on the full tree.
        snap_count: if o.snapshot {
            (o.nodes * 2).max(2)
        } else {
            u64::MAX / 4
        },
        ..ServerConfig::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let server = rt.block_on(Server::start(cfg.clone()))?;
    let addr = server.addr();
    println!(
        "server on {addr}, data in {}, {} nodes of {} bytes over {} connections ({} in flight each), forceSync={}",
        dir.display(),
        o.nodes,
        o.data_bytes,
        o.conns,
        o.window,
        if o.force_sync { "yes" } else { "no" }
    );
    {
        let mut s = connect(addr)?;
        s.write_all(&create_frame(1, "/bench".into(), b""))?;
        let h = ReplyHeader::from_bytes(&read_frame(&mut s, &mut Vec::new())?[..16])?;
        assert_eq!(h.err, 0, "create /bench");
    }

    let t0 = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let windows = Arc::new(Mutex::new(BTreeMap::new()));
    let watcher = {
        let (dir, stop, windows) = (
            StorageConfig::from_server_config(&cfg).data_dir,
            stop.clone(),
            windows.clone(),
        );
        std::thread::spawn(move || watch_snapshots(dir, t0, stop, windows))
    };
    let data = Arc::new(vec![b'x'; o.data_bytes]);
    let per_conn = o.nodes / o.conns;
    let count = |c: u64| {
        if c == o.conns - 1 {
            o.nodes - per_conn * (o.conns - 1)
        } else {
            per_conn
        }
    };

    // Phase 1: fill the tree with creates.
    let fillers: Vec<_> = (0..o.conns)
        .map(|c| {
            let (data, n, window) = (data.clone(), count(c), o.window);
            std::thread::spawn(move || {
                let mut i = 0;
                drive(addr, window, t0, move |xid| {
                    i += 1;
                    (i <= n).then(|| create_frame(xid, format!("/bench/{c}-{}", i - 1), &data))
                })
            })
        })
        .collect();
    let mut fill_samples = Vec::new();
    for f in fillers {
        fill_samples.extend(f.join().map_err(|_| "filler panicked")??);
    }
    let fill_time = t0.elapsed();
    println!(
        "fill:       {} creates in {:.2} s ({:.0} writes/s)",
        fill_samples.len(),
        fill_time.as_secs_f64(),
        fill_samples.len() as f64 / fill_time.as_secs_f64()
    );

    // Phase 2: setData on the full tree until a snapshot of it was written, and a second
    // after (snapCount = 2N puts the first snapshot between N and 2N transactions).
    let steady_from = t0.elapsed().as_micros() as u64;
    let stop_writes = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..o.conns)
        .map(|c| {
            let (data, n, window, stop) = (data.clone(), count(c), o.window, stop_writes.clone());
            std::thread::spawn(move || {
                let mut i = 0u64;
                drive(addr, window, t0, move |xid| {
                    i += 1;
                    (!stop.load(Ordering::Relaxed))
                        .then(|| set_frame(xid, format!("/bench/{c}-{}", (i * 7919) % n), &data))
                })
            })
        })
        .collect();
    let pings = {
        let stop = stop_writes.clone();
        std::thread::spawn(move || pinger(addr, t0, stop))
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut done_at = None;
    let baseline = Duration::from_secs(8);
    loop {
        if !o.snapshot
            && t0.elapsed().as_micros() as u64 - steady_from > baseline.as_micros() as u64
        {
            break;
        }
        let complete = windows
            .lock()
            .unwrap()
            .values()
            .any(|(s, e)| s.is_some_and(|s| s >= steady_from) && e.is_some());
        if complete {
            let at = *done_at.get_or_insert_with(Instant::now);
            if at.elapsed() >= Duration::from_secs(1) {
                break;
            }
        }
        if Instant::now() > deadline {
            println!("no snapshot within 300 s of steady writes");
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    stop_writes.store(true, Ordering::Relaxed);
    let mut samples = Vec::new();
    for w in writers {
        samples.extend(w.join().map_err(|_| "writer panicked")??);
    }
    let pings = pings.join().map_err(|_| "pinger panicked")??;
    let steady_time = Duration::from_micros(t0.elapsed().as_micros() as u64 - steady_from);
    // Let a snapshot that is still being written finish.
    let deadline = Instant::now() + Duration::from_secs(120);
    while windows
        .lock()
        .unwrap()
        .values()
        .any(|(_, end)| end.is_none())
    {
        if Instant::now() > deadline {
            return Err("snapshot did not finish within 120 s".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    watcher.join().map_err(|_| "watcher panicked")?;
    let rss_after_fill = rss_kib("VmRSS:");

    let windows: Vec<(String, u64, u64)> = windows
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(z, (s, e))| Some((z.clone(), (*s)?, (*e)?)))
        .collect();
    let during = |s: &Sample| {
        windows
            .iter()
            .any(|(_, a, b)| s.sent_us <= *b && s.sent_us + s.latency_us >= *a)
    };
    let split = |samples: &[Sample]| {
        let mut inside: Vec<u64> = samples
            .iter()
            .filter(|s| during(s))
            .map(|s| s.latency_us)
            .collect();
        let mut outside: Vec<u64> = samples
            .iter()
            .filter(|s| !during(s))
            .map(|s| s.latency_us)
            .collect();
        inside.sort_unstable();
        outside.sort_unstable();
        (inside, outside)
    };
    println!(
        "steady:     {} setData in {:.2} s ({:.0} writes/s)",
        samples.len(),
        steady_time.as_secs_f64(),
        samples.len() as f64 / steady_time.as_secs_f64()
    );
    for (z, a, b) in &windows {
        println!(
            "snapshot:   0x{} written in {:.0} ms (from {:.2} s to {:.2} s; {})",
            z.trim_start_matches('0'),
            (b - a) as f64 / 1000.0,
            *a as f64 / 1e6,
            *b as f64 / 1e6,
            if *a >= steady_from {
                "steady phase"
            } else {
                "fill phase"
            }
        );
    }
    let show = |name: &str, v: &[u64]| {
        println!(
            "{name} {:>8} writes  p50 {:>6.2} ms  p99 {:>6.2} ms  p99.9 {:>6.2} ms  max {:>7.2} ms",
            v.len(),
            pct(v, 0.5) as f64 / 1000.0,
            pct(v, 0.99) as f64 / 1000.0,
            pct(v, 0.999) as f64 / 1000.0,
            v.last().copied().unwrap_or(0) as f64 / 1000.0
        );
    };
    let (fill_in, fill_out) = split(&fill_samples);
    let (inside, outside) = split(&samples);
    show("fill, during snapshot:   ", &fill_in);
    show("fill, outside snapshot:  ", &fill_out);
    show("steady, during snapshot: ", &inside);
    show("steady, outside snapshot:", &outside);
    let (ping_in, ping_out) = split(&pings);
    show("ping, during snapshot:   ", &ping_in);
    show("ping, outside snapshot:  ", &ping_out);
    let mut worst: Vec<&Sample> = samples.iter().collect();
    worst.sort_by_key(|s| std::cmp::Reverse(s.latency_us));
    let mut shown = Vec::<u64>::new();
    print!("slowest steady writes (sent at s: ms):");
    for s in worst {
        // One line per stall: skip writes sent within 50 ms of one already shown.
        if shown.iter().any(|t| t.abs_diff(s.sent_us) < 50_000) {
            continue;
        }
        shown.push(s.sent_us);
        print!(
            " {:.3}: {:.1}",
            s.sent_us as f64 / 1e6,
            s.latency_us as f64 / 1000.0
        );
        if shown.len() == 8 {
            break;
        }
    }
    println!();
    let worst_in = inside.last().copied().unwrap_or(0);
    println!(
        "worst write stall attributable to the snapshot (steady phase): {:.2} ms \
         (max during minus max outside)",
        worst_in.saturating_sub(outside.last().copied().unwrap_or(0)) as f64 / 1000.0
    );

    rt.block_on(server.shutdown());
    let scfg = StorageConfig::from_server_config(&cfg);
    println!(
        "on disk:    snapshots {:.1} MiB, log {:.1} MiB",
        dir_bytes(&scfg.data_dir, "snapshot.") as f64 / 1048576.0,
        dir_bytes(&scfg.data_log_dir, "log.") as f64 / 1048576.0
    );
    let started = Instant::now();
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let (mut log, recovered) = storage::open(&scfg, tx)?;
    let recovery = started.elapsed();
    println!(
        "recovery:   {:.2} s to zxid 0x{:x}, {} nodes",
        recovery.as_secs_f64(),
        recovered.tree.last_zxid(),
        recovered.tree.node_count()
    );
    rt.block_on(log.close());
    drop(recovered);
    println!(
        "RSS:        {} MiB after the fill, peak {} MiB",
        rss_after_fill / 1024,
        rss_kib("VmHWM:") / 1024
    );
    Ok(())
}
