//! Memory per znode of the in-memory tree, without networking or storage:
//! `cargo run --release -p corral-server --example tree_memory -- 1000000 100`
//! (node count, data bytes). Prints RSS before and after, and bytes per node.

use corral_proto::{Acl, CreateTxn, Txn, TxnHeader};
use corral_server::tree::DataTree;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let size: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let before = corral_server::admin::rss_bytes();
    let mut t = DataTree::new();
    let fanout = 1000;
    let mut zxid = 1;
    let mut create = |t: &mut DataTree, path: String, pcv: i32| {
        zxid += 1;
        let hdr = TxnHeader {
            client_id: 0,
            cxid: 0,
            zxid,
            time: 1_700_000_000_000,
            txn_type: 1,
        };
        let txn = Txn::Create(CreateTxn {
            path,
            data: Some(vec![b'x'; size]),
            acl: Acl::open_unsafe(),
            ephemeral: false,
            parent_cversion: pcv,
        });
        t.apply(&hdr, &txn).expect("create");
    };
    let dirs = n.div_ceil(fanout);
    for d in 0..dirs {
        create(&mut t, format!("/bench-{d:05}"), d as i32 + 1);
        for i in 0..fanout.min(n - d * fanout) {
            create(&mut t, format!("/bench-{d:05}/node-{i:07}"), i as i32 + 1);
        }
    }
    let after = corral_server::admin::rss_bytes();
    let nodes = t.node_count();
    println!(
        "nodes={nodes} data={size}B rss_before={}MiB rss_after={}MiB bytes_per_node={}",
        before >> 20,
        after >> 20,
        (after - before) / nodes as u64
    );
}
