//! Feeds arbitrary bytes to a live in-process server, as a sequence of frames on a session
//! that completed its handshake, and checks after each input that the server still answers
//! another session. A panic in any server task aborts the process, which libFuzzer reports.
#![no_main]

use corral_proto::frame::{begin_frame, end_frame};
use corral_proto::{ConnectRequest, Jute};
use corral_server::testing::TestingServer;
use libfuzzer_sys::fuzz_target;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::time::Duration;

struct Harness {
    addr: SocketAddr,
    _rt: tokio::runtime::Runtime,
    _server: TestingServer,
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        // tokio catches panics in spawned tasks; make every panic fatal so it is found.
        std::panic::set_hook(Box::new(|info| {
            eprintln!("{info}");
            std::process::abort();
        }));
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let server = rt.block_on(TestingServer::start()).expect("server");
        Harness {
            addr: server.addr(),
            _rt: rt,
            _server: server,
        }
    })
}

fn connect(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut frame = Vec::new();
    let at = begin_frame(&mut frame);
    ConnectRequest {
        timeout_ms: 30_000,
        passwd: vec![0; 16],
        read_only: Some(false),
        ..Default::default()
    }
    .write(&mut frame);
    end_frame(&mut frame, at);
    s.write_all(&frame).expect("send connect");
    let mut resp = [0u8; 41];
    s.read_exact(&mut resp).expect("connect response");
    s
}

fuzz_target!(|data: &[u8]| {
    let h = harness();
    let mut s = connect(h.addr);
    let _ = s.write_all(data);
    let _ = s.shutdown(std::net::Shutdown::Write);
    // Drain until the server closes or stays quiet.
    let mut sink = [0u8; 4096];
    while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
    // Another session must still be served: ping and read the 16-byte reply.
    let mut probe = connect(h.addr);
    probe
        .write_all(&[0, 0, 0, 8, 0xff, 0xff, 0xff, 0xfe, 0, 0, 0, 11])
        .expect("ping");
    let mut reply = [0u8; 20];
    probe.read_exact(&mut reply).expect("server still answers");
    assert_eq!(&reply[4..8], &[0xff, 0xff, 0xff, 0xfe]);
});
