//! Encoding of quorum messages (election and atomic broadcast) on peer links.
//!
//! A frame is `int32 length` + `byte tag` + the message's fields in Jute encoding. Peer
//! frames may be much larger than client frames (a snapshot travels as one frame).

use corral_proto::codec::{write_buffer, DecodeError, Jute, Reader};
use corral_zab::{Entry, Message, PeerState, Vote};

/// Largest peer frame accepted (a snapshot of a large tree).
pub const MAX_PEER_FRAME: usize = 1 << 30;

/// Magic and version opening every peer link, followed by the sender's id.
pub const HELLO_MAGIC: i64 = 0x436f_7272_616c_5a31; // "CorralZ1"

fn state_byte(s: PeerState) -> u8 {
    match s {
        PeerState::Looking => 0,
        PeerState::Following => 1,
        PeerState::Leading => 2,
        PeerState::Observing => 3,
    }
}

fn write_entry(out: &mut Vec<u8>, e: &Entry) {
    e.zxid.write(out);
    write_buffer(out, Some(&e.data));
}

fn read_entry(r: &mut Reader<'_>) -> Result<Entry, DecodeError> {
    Ok(Entry {
        zxid: r.i64("zxid")?,
        data: r.buffer("entry")?.unwrap_or_default().into(),
    })
}

/// Appends the encoding of `msg` (tag and fields, no length prefix).
pub fn encode(msg: &Message, out: &mut Vec<u8>) {
    match msg {
        Message::Notification {
            vote,
            election_epoch,
            state,
        } => {
            out.push(1);
            (vote.leader as i64).write(out);
            vote.zxid.write(out);
            (vote.peer_epoch as i32).write(out);
            (*election_epoch as i64).write(out);
            out.push(state_byte(*state));
        }
        Message::FollowerInfo {
            accepted_epoch,
            last_zxid,
            observer,
        } => {
            out.push(2);
            (*accepted_epoch as i32).write(out);
            last_zxid.write(out);
            observer.write(out);
        }
        Message::LeaderInfo { new_epoch } => {
            out.push(3);
            (*new_epoch as i32).write(out);
        }
        Message::AckEpoch {
            current_epoch,
            last_zxid,
        } => {
            out.push(4);
            (*current_epoch as i32).write(out);
            last_zxid.write(out);
        }
        Message::Trunc { zxid } => {
            out.push(5);
            zxid.write(out);
        }
        Message::Diff { entries } => {
            out.push(6);
            (entries.len() as i32).write(out);
            for e in entries {
                write_entry(out, e);
            }
        }
        Message::Snap { zxid, data } => {
            out.push(7);
            zxid.write(out);
            write_buffer(out, Some(data));
        }
        Message::NewLeader { zxid } => {
            out.push(8);
            zxid.write(out);
        }
        Message::AckNewLeader { zxid } => {
            out.push(9);
            zxid.write(out);
        }
        Message::UpToDate => out.push(10),
        Message::Proposal(e) => {
            out.push(11);
            write_entry(out, e);
        }
        Message::Ack { zxid } => {
            out.push(12);
            zxid.write(out);
        }
        Message::Acks { zxids } => {
            out.push(18);
            (zxids.len() as i32).write(out);
            for z in zxids {
                z.write(out);
            }
        }
        Message::Commit { zxid } => {
            out.push(13);
            zxid.write(out);
        }
        Message::Inform(e) => {
            out.push(14);
            write_entry(out, e);
        }
        Message::Ping => out.push(15),
        Message::Forward(b) => {
            out.push(16);
            write_buffer(out, Some(b));
        }
        Message::Reply(b) => {
            out.push(17);
            write_buffer(out, Some(b));
        }
    }
}

/// Decodes one message from a frame payload.
///
/// # Errors
/// Malformed input (unknown tag, truncated fields, trailing bytes).
pub fn decode(payload: &[u8]) -> Result<Message, DecodeError> {
    let mut r = Reader::with_max_len(payload, MAX_PEER_FRAME);
    let tag = r.take(1, "tag")?[0];
    let msg = match tag {
        1 => {
            let leader = r.i64("leader")? as u64;
            let zxid = r.i64("zxid")?;
            let peer_epoch = r.i32("peer epoch")? as u32;
            let election_epoch = r.i64("election epoch")? as u64;
            let state = match r.take(1, "state")?[0] {
                0 => PeerState::Looking,
                1 => PeerState::Following,
                2 => PeerState::Leading,
                3 => PeerState::Observing,
                v => {
                    return Err(DecodeError::InvalidValue {
                        what: "peer state",
                        value: v.into(),
                    })
                }
            };
            Message::Notification {
                vote: Vote {
                    leader,
                    zxid,
                    peer_epoch,
                },
                election_epoch,
                state,
            }
        }
        2 => Message::FollowerInfo {
            accepted_epoch: r.i32("accepted epoch")? as u32,
            last_zxid: r.i64("last zxid")?,
            observer: r.bool("observer")?,
        },
        3 => Message::LeaderInfo {
            new_epoch: r.i32("new epoch")? as u32,
        },
        4 => Message::AckEpoch {
            current_epoch: r.i32("current epoch")? as u32,
            last_zxid: r.i64("last zxid")?,
        },
        5 => Message::Trunc {
            zxid: r.i64("zxid")?,
        },
        6 => {
            let n = r.count("entries", 12)?.unwrap_or(0);
            let mut entries = Vec::with_capacity(n);
            for _ in 0..n {
                entries.push(read_entry(&mut r)?);
            }
            Message::Diff { entries }
        }
        7 => Message::Snap {
            zxid: r.i64("zxid")?,
            data: r.buffer("snapshot")?.unwrap_or_default(),
        },
        8 => Message::NewLeader {
            zxid: r.i64("zxid")?,
        },
        9 => Message::AckNewLeader {
            zxid: r.i64("zxid")?,
        },
        10 => Message::UpToDate,
        11 => Message::Proposal(read_entry(&mut r)?),
        12 => Message::Ack {
            zxid: r.i64("zxid")?,
        },
        13 => Message::Commit {
            zxid: r.i64("zxid")?,
        },
        14 => Message::Inform(read_entry(&mut r)?),
        15 => Message::Ping,
        16 => Message::Forward(r.buffer("forward")?.unwrap_or_default()),
        17 => Message::Reply(r.buffer("reply")?.unwrap_or_default()),
        18 => {
            let n = r.count("acks", 8)?.unwrap_or(0);
            let mut zxids = Vec::with_capacity(n);
            for _ in 0..n {
                zxids.push(r.i64("zxid")?);
            }
            Message::Acks { zxids }
        }
        v => {
            return Err(DecodeError::InvalidValue {
                what: "message tag",
                value: v.into(),
            })
        }
    };
    r.finish("peer message")?;
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<Message> {
        let e = Entry {
            zxid: 0x1_0000_0002,
            data: vec![1, 2, 3].into(),
        };
        vec![
            Message::Notification {
                vote: Vote {
                    leader: 3,
                    zxid: 7,
                    peer_epoch: 2,
                },
                election_epoch: 9,
                state: PeerState::Following,
            },
            Message::FollowerInfo {
                accepted_epoch: 4,
                last_zxid: 5,
                observer: true,
            },
            Message::LeaderInfo { new_epoch: 6 },
            Message::AckEpoch {
                current_epoch: 5,
                last_zxid: 8,
            },
            Message::Trunc { zxid: 3 },
            Message::Diff {
                entries: vec![e.clone(), e.clone()],
            },
            Message::Snap {
                zxid: 9,
                data: vec![7; 100],
            },
            Message::NewLeader { zxid: 6 << 32 },
            Message::AckNewLeader { zxid: 6 << 32 },
            Message::UpToDate,
            Message::Proposal(e.clone()),
            Message::Ack { zxid: 1 },
            Message::Acks {
                zxids: vec![1, 2, 0x2_0000_0001],
            },
            Message::Commit { zxid: 1 },
            Message::Inform(e),
            Message::Ping,
            Message::Forward(vec![9, 9]),
            Message::Reply(vec![]),
        ]
    }

    #[test]
    fn every_message_round_trips() {
        for m in all() {
            let mut v = Vec::new();
            encode(&m, &mut v);
            assert_eq!(decode(&v).unwrap(), m);
        }
    }

    #[test]
    fn every_strict_prefix_is_an_error_not_a_panic() {
        for m in all() {
            let mut v = Vec::new();
            encode(&m, &mut v);
            for cut in 0..v.len() {
                assert!(decode(&v[..cut]).is_err(), "{m:?} cut at {cut}");
            }
        }
    }

    #[test]
    fn unknown_tag_is_rejected() {
        assert!(decode(&[99]).is_err());
    }
}
