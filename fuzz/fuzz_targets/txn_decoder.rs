//! Decodes arbitrary bytes as a transaction-log entry (TxnHeader + body typed by
//! `TxnHeader.txn_type`), and checks that whatever decodes re-encodes to an entry that
//! decodes to the same value.
#![no_main]

use corral_proto::{Jute, Reader, Txn, TxnHeader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    let Ok(h) = TxnHeader::read(&mut r) else {
        return;
    };
    let Ok(t) = Txn::decode(h.txn_type, r.rest()) else {
        return;
    };
    // create2 (15) is logged as a plain CreateTxn.
    let expected = if h.txn_type == 15 { 1 } else { h.txn_type };
    assert_eq!(t.txn_type(), expected);

    let mut entry = TxnHeader {
        txn_type: t.txn_type(),
        ..h.clone()
    }
    .to_bytes();
    t.write_body(&mut entry);
    let mut r = Reader::new(&entry);
    let h2 = TxnHeader::read(&mut r).expect("re-encoded header");
    assert_eq!(h2.zxid, h.zxid);
    assert_eq!(Txn::decode(h2.txn_type, r.rest()), Ok(t));
});
