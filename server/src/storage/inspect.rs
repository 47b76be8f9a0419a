//! Human- and machine-readable dumps of log segments and snapshots, for the `log-dump` and
//! `snapshot-dump` subcommands (ZooKeeper's `TxnLogToolkit` and `SnapshotFormatter`).

use super::log::{read_segment, LoggedTxn, SegmentEnd};
use super::{snapshot, StorageError};
use corral_proto::{ErrorCode, Txn};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};

fn out_err(e: std::io::Error) -> StorageError {
    StorageError::io(&PathBuf::from("<output>"), e)
}

/// ZooKeeper's name for a transaction type.
pub fn txn_type_name(txn: &Txn) -> &'static str {
    match txn {
        Txn::Create(_) => "create",
        Txn::CreateContainer(_) => "createContainer",
        Txn::CreateTtl(_) => "createTTL",
        Txn::Delete(_) => "delete",
        Txn::DeleteContainer(_) => "deleteContainer",
        Txn::SetData(_) => "setData",
        Txn::SetAcl(_) => "setACL",
        Txn::Check(_) => "check",
        Txn::CreateSession(_) => "createSession",
        Txn::CloseSession(_) => "closeSession",
        Txn::Error(_) => "error",
        Txn::Multi(_) => "multi",
    }
}

fn txn_path(txn: &Txn) -> Option<&str> {
    Some(match txn {
        Txn::Create(t) => &t.path,
        Txn::CreateContainer(t) => &t.path,
        Txn::CreateTtl(t) => &t.path,
        Txn::Delete(t) | Txn::DeleteContainer(t) => &t.path,
        Txn::SetData(t) => &t.path,
        Txn::SetAcl(t) => &t.path,
        Txn::Check(t) => &t.path,
        _ => return None,
    })
}

fn data_len(d: &Option<Vec<u8>>) -> String {
    d.as_ref()
        .map_or_else(|| "null".to_owned(), |d| format!("{}B", d.len()))
}

/// A one-line description of what a transaction does beyond its type and path.
pub fn txn_detail(txn: &Txn) -> String {
    match txn {
        Txn::Create(t) => format!(
            "data={} acl={} ephemeral={} parent_cversion={}",
            data_len(&t.data),
            t.acl.len(),
            t.ephemeral,
            t.parent_cversion
        ),
        Txn::CreateContainer(t) => format!(
            "data={} acl={} parent_cversion={}",
            data_len(&t.data),
            t.acl.len(),
            t.parent_cversion
        ),
        Txn::CreateTtl(t) => format!(
            "data={} acl={} parent_cversion={} ttl={}ms",
            data_len(&t.data),
            t.acl.len(),
            t.parent_cversion,
            t.ttl
        ),
        Txn::Delete(_) | Txn::DeleteContainer(_) => String::new(),
        Txn::SetData(t) => format!("data={} version={}", data_len(&t.data), t.version),
        Txn::SetAcl(t) => format!("acl={} version={}", t.acl.len(), t.version),
        Txn::Check(t) => format!("version={}", t.version),
        Txn::CreateSession(t) => format!("timeout={}ms", t.timeout_ms),
        Txn::CloseSession(t) => format!("ephemerals={:?}", t.paths_to_delete),
        Txn::Error(code) => match ErrorCode::from_i32(*code) {
            Some(e) => format!("err={e:?}({code})"),
            None => format!("err={code}"),
        },
        Txn::Multi(subs) => {
            let ops: Vec<String> = subs
                .iter()
                .map(|t| match txn_path(t) {
                    Some(p) => format!("{} {p}", txn_type_name(t)),
                    None => txn_type_name(t).to_owned(),
                })
                .collect();
            format!("{} ops: {}", subs.len(), ops.join(", "))
        }
    }
}

/// `2024-05-01T12:00:00.123Z` for ms since the epoch (UTC).
pub fn format_time_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn txn_line(t: &LoggedTxn) -> String {
    format!(
        "0x{:016x} {} session 0x{:x} cxid {} {} {} {}",
        t.hdr.zxid,
        format_time_ms(t.hdr.time),
        t.hdr.client_id,
        t.hdr.cxid,
        txn_type_name(&t.txn),
        txn_path(&t.txn).unwrap_or("-"),
        txn_detail(&t.txn)
    )
    .trim_end()
    .to_owned()
}

fn txn_json(t: &LoggedTxn) -> Value {
    json!({
        "offset": t.offset,
        "zxid": format!("0x{:x}", t.hdr.zxid),
        "time": format_time_ms(t.hdr.time),
        "time_ms": t.hdr.time,
        "session": format!("0x{:x}", t.hdr.client_id),
        "cxid": t.hdr.cxid,
        "type": txn_type_name(&t.txn),
        "path": txn_path(&t.txn),
        "detail": txn_detail(&t.txn),
    })
}

/// Prints every transaction of a log segment: zxid, time, session, cxid, type, path and a
/// short detail, one per line, or one JSON document with `--json`. Reports how the records
/// end (clean, or a torn tail with its offset).
///
/// # Errors
/// [`StorageError`] when the file cannot be read or is corrupt (the transactions before the
/// corruption are printed first; in JSON the error is also in an `"error"` field).
pub fn dump_log(path: &Path, json: bool, out: &mut dyn Write) -> Result<(), StorageError> {
    let mut txns = Vec::new();
    let result = read_segment(path, |t| {
        if json {
            txns.push(txn_json(&t));
        } else {
            writeln!(out, "{}", txn_line(&t)).map_err(out_err)?;
        }
        Ok(())
    });
    let end = match &result {
        Ok(info) => match &info.end {
            SegmentEnd::Clean => json!("clean"),
            SegmentEnd::Torn { offset, reason } => {
                json!({"torn": {"offset": offset, "reason": reason}})
            }
        },
        Err(_) => Value::Null,
    };
    if json {
        let mut doc = json!({
            "file": path.display().to_string(),
            "transactions": txns,
            "end": end,
        });
        if let Ok(info) = &result {
            doc["first_zxid"] = json!(info.first_zxid.map(|z| format!("0x{z:x}")));
            doc["count"] = json!(info.records);
        }
        if let Err(e) = &result {
            doc["error"] = json!(e.to_string());
        }
        serde_json::to_writer_pretty(&mut *out, &doc).map_err(|e| out_err(e.into()))?;
        writeln!(out).map_err(out_err)?;
    } else if let Ok(info) = &result {
        let end = match &info.end {
            SegmentEnd::Clean => "clean end".to_owned(),
            SegmentEnd::Torn { offset, reason } => {
                format!("torn tail at offset {offset}: {reason}")
            }
        };
        writeln!(out, "{} transactions; {end}", info.records).map_err(out_err)?;
    }
    result.map(|_| ())
}

/// Prints a snapshot's summary: zxid, node count, data size, digest, and every session
/// with its timeout and ephemeral count; one JSON document with `--json`.
///
/// # Errors
/// [`StorageError`] when the file cannot be read or is corrupt.
pub fn dump_snapshot(path: &Path, json: bool, out: &mut dyn Write) -> Result<(), StorageError> {
    let s = snapshot::read(path)?;
    let sessions: Vec<(i64, i32, usize)> = s
        .sessions
        .iter()
        .map(|(id, t)| (*id, *t, s.tree.ephemerals(*id).count()))
        .collect();
    if json {
        let doc = json!({
            "file": path.display().to_string(),
            "zxid": format!("0x{:x}", s.summary.zxid),
            "nodes": s.summary.nodes,
            "data_size": s.tree.approximate_data_size(),
            "digest": format!("0x{:016x}", s.tree.digest()),
            "file_size": s.summary.bytes,
            "sessions": sessions.iter().map(|(id, t, e)| json!({
                "id": format!("0x{id:x}"),
                "timeout_ms": t,
                "ephemerals": e,
            })).collect::<Vec<_>>(),
        });
        serde_json::to_writer_pretty(&mut *out, &doc).map_err(|e| out_err(e.into()))?;
        writeln!(out).map_err(out_err)?;
        return Ok(());
    }
    let mut text = format!(
        "snapshot {}\nzxid: 0x{:x}\nnodes: {}\ndata size: {} bytes\ndigest: 0x{:016x}\n\
         file size: {} bytes\nsessions: {}\n",
        path.display(),
        s.summary.zxid,
        s.summary.nodes,
        s.tree.approximate_data_size(),
        s.tree.digest(),
        s.summary.bytes,
        sessions.len()
    );
    for (id, t, e) in &sessions {
        text.push_str(&format!("  0x{id:x} timeout {t} ms, {e} ephemerals\n"));
    }
    out.write_all(text.as_bytes()).map_err(out_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_proto::{CreateSessionTxn, DeleteTxn};

    #[test]
    fn times_format_as_utc() {
        assert_eq!(format_time_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_time_ms(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(
            format_time_ms(1_700_000_000_000),
            "2023-11-14T22:13:20.000Z"
        );
    }

    #[test]
    fn multi_detail_lists_its_steps() {
        let m = Txn::Multi(vec![
            Txn::Delete(DeleteTxn { path: "/a".into() }),
            Txn::CreateSession(CreateSessionTxn { timeout_ms: 5 }),
        ]);
        assert_eq!(txn_detail(&m), "2 ops: delete /a, createSession");
        assert_eq!(txn_detail(&Txn::Error(-101)), "err=NoNode(-101)");
    }
}
