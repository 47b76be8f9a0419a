//! Pipelining: many requests in flight, call order, dropped futures.

mod common;

use std::time::Duration;

use common::{ok, within};
use corral_client::{CreateOptions, Error};

#[tokio::test]
async fn ten_thousand_pipelined_requests_complete_in_call_order() {
    let ctx = ctx_or_skip!();
    let c = ctx.client().await;
    ok(
        "create",
        c.create("/n", b"", &CreateOptions::persistent()).await,
    );
    const N: i32 = 10_000;
    // Every request is sent when called; none is awaited before all are queued.
    let writes: Vec<_> = (0..N)
        .map(|i| c.set_data("/n", &i.to_be_bytes(), Some(i)))
        .collect();
    let reads: Vec<_> = (0..100).map(|_| c.get_data("/n")).collect();
    for (i, write) in writes.into_iter().enumerate() {
        let stat = ok("pipelined set", within("pipelined set", write).await);
        assert_eq!(stat.version, i as i32 + 1, "reply {i} out of order");
    }
    for read in reads {
        let (data, stat) = ok("pipelined get", within("pipelined get", read).await);
        assert_eq!((data, stat.version), ((N - 1).to_be_bytes().to_vec(), N));
    }
}

#[tokio::test]
async fn requests_follow_call_order_not_poll_order() {
    let ctx = ctx_or_skip!();
    let c = ctx.client().await;
    let create = c.create("/o", b"", &CreateOptions::persistent());
    let delete = c.delete("/o", None);
    let exists = c.exists("/o");
    // Polled in reverse: the delete would fail with NoNode if polling sent requests.
    assert_eq!(ok("exists", within("exists", exists).await), None);
    ok("delete", within("delete", delete).await);
    ok("create", within("create", create).await);
}

#[tokio::test]
async fn dropped_futures_do_not_desynchronise_the_connection() {
    let ctx = ctx_or_skip!();
    let c = ctx.client().await;
    for i in 0..20 {
        ok(
            "create",
            c.create(
                &format!("/d{i}"),
                format!("{i}").as_bytes(),
                &CreateOptions::persistent(),
            )
            .await,
        );
    }
    let mut kept = Vec::new();
    for i in 0..20 {
        let fut = c.get_data(&format!("/d{i}"));
        if i % 2 == 0 {
            drop(fut);
        } else {
            kept.push((i, fut));
        }
    }
    // A future dropped while its request is in flight, after being polled once.
    let slow = c.get_data("/d0");
    let _ = tokio::time::timeout(Duration::from_micros(1), slow).await;
    // A dropped write still applies: it was sent when called.
    drop(c.set_data("/d1", b"changed", None));
    for (i, fut) in kept {
        let (data, _) = ok("kept read", within("kept read", fut).await);
        // Sent before the set_data, so /d1 still reads "1".
        assert_eq!(
            String::from_utf8(data).unwrap(),
            i.to_string(),
            "reply for /d{i}"
        );
    }
    let (data, _) = ok("after drops", c.get_data("/d1").await);
    assert_eq!(data, b"changed");
    assert_err!(c.get_data("/missing").await, Error::NoNode);
}
