//! Queue node names, their order, and Curator's item framing.

use crate::lock::common::parse_sequence;
use crate::RecipeError;

/// Curator's `DistributedQueue.QUEUE_ITEM_NAME`.
pub(crate) const CURATOR_PREFIX: &str = "queue-";
/// The prefix of Curator's `SimpleDistributedQueue` (and of ZooKeeper's own queue recipe).
pub(crate) const SIMPLE_PREFIX: &str = "qn-";

/// Curator's `ItemSerializer.VERSION`.
const FRAME_VERSION: u32 = 0x0001_0001;
/// Curator's `ItemSerializer.ITEM_OPCODE`.
const ITEM_OPCODE: u8 = 0x01;
/// Curator's `ItemSerializer.EOF_OPCODE`.
const EOF_OPCODE: u8 = 0x02;

/// How queue items are named and encoded.
///
/// ```
/// use corral_recipes::queue::QueueFormat;
/// assert_eq!(QueueFormat::default(), QueueFormat::Curator);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum QueueFormat {
    /// Curator's `DistributedQueue` (and `DistributedPriorityQueue`): items are
    /// `<path>/queue-<seq>` (`queue-<priority><seq>` with priorities), and each node's data
    /// is Curator's `ItemSerializer` framing of one or more items.
    #[default]
    Curator,
    /// Curator's `SimpleDistributedQueue` and the queue recipe of the ZooKeeper
    /// documentation: items are `<path>/qn-<seq>` and a node's data is the item itself.
    Simple,
}

impl QueueFormat {
    /// The prefix of item names.
    pub(crate) fn prefix(self) -> &'static str {
        match self {
            QueueFormat::Curator => CURATOR_PREFIX,
            QueueFormat::Simple => SIMPLE_PREFIX,
        }
    }

    /// The data of a node holding `items`.
    pub(crate) fn encode(self, items: &[&[u8]]) -> Result<Vec<u8>, RecipeError> {
        match self {
            QueueFormat::Curator => Ok(encode_items(items)),
            QueueFormat::Simple => match items {
                [one] => Ok(one.to_vec()),
                _ => Err(RecipeError::BadArguments(
                    "the simple queue format holds exactly one item per node".into(),
                )),
            },
        }
    }

    /// The items of a node's data.
    pub(crate) fn decode(self, data: &[u8]) -> Result<Vec<Vec<u8>>, RecipeError> {
        match self {
            QueueFormat::Curator => decode_items(data),
            QueueFormat::Simple => Ok(vec![data.to_vec()]),
        }
    }
}

/// Curator's `ItemSerializer.serialize`: a big-endian version, then `0x01 len bytes` per
/// item, then `0x02`.
pub(crate) fn encode_items(items: &[&[u8]]) -> Vec<u8> {
    let size: usize = items.iter().map(|i| 5 + i.len()).sum();
    let mut out = Vec::with_capacity(4 + size + 1);
    out.extend_from_slice(&FRAME_VERSION.to_be_bytes());
    for item in items {
        out.push(ITEM_OPCODE);
        out.extend_from_slice(&(item.len() as u32).to_be_bytes());
        out.extend_from_slice(item);
    }
    out.push(EOF_OPCODE);
    out
}

/// Curator's `ItemSerializer.deserialize`.
pub(crate) fn decode_items(data: &[u8]) -> Result<Vec<Vec<u8>>, RecipeError> {
    let bad = |why: &str| RecipeError::InvalidData(format!("queue item: {why}"));
    let (version, mut rest) = data
        .split_first_chunk::<4>()
        .ok_or_else(|| bad("shorter than its version"))?;
    if u32::from_be_bytes(*version) != FRAME_VERSION {
        return Err(bad("unknown framing version"));
    }
    let mut items = Vec::new();
    loop {
        let (&op, after) = rest.split_first().ok_or_else(|| bad("no end marker"))?;
        match op {
            EOF_OPCODE => return Ok(items),
            ITEM_OPCODE => {
                let (len, after) = after
                    .split_first_chunk::<4>()
                    .ok_or_else(|| bad("truncated length"))?;
                let len = i32::from_be_bytes(*len);
                let len = usize::try_from(len).map_err(|_| bad("negative length"))?;
                if after.len() < len {
                    return Err(bad("truncated item"));
                }
                items.push(after[..len].to_vec());
                rest = &after[len..];
            }
            _ => return Err(bad("unknown opcode")),
        }
    }
}

/// Curator's `DistributedPriorityQueue.priorityToString`: `1` and eight hex digits for
/// non-negative priorities, `0` and the two's complement for negative ones, so that the
/// text order is the numeric order.
pub(crate) fn priority_tag(priority: i32) -> String {
    format!(
        "{}{:08X}",
        if priority >= 0 { '1' } else { '0' },
        priority as u32
    )
}

/// The inverse of [`priority_tag`].
fn parse_priority(tag: &str) -> Option<i32> {
    let (sign, hex) = tag.split_at_checked(1)?;
    if hex.len() != 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let value = u32::from_str_radix(hex, 16).ok()? as i32;
    match (sign, value >= 0) {
        ("1", true) | ("0", false) => Some(value),
        _ => None,
    }
}

/// A queue item node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ItemNode {
    /// The node name.
    pub(crate) name: String,
    /// Its priority (0 without priorities).
    pub(crate) priority: i32,
    /// Its sequence number.
    pub(crate) seq: i32,
}

/// Parses an item name: `<prefix><seq>`, or `<prefix><priority tag><seq>` with priorities.
pub(crate) fn parse_item(name: &str, prefix: &str, priorities: bool) -> Option<ItemNode> {
    let rest = name.strip_prefix(prefix)?;
    let (priority, digits) = if priorities {
        let (tag, digits) = rest.split_at_checked(9)?;
        (parse_priority(tag)?, digits)
    } else {
        (0, rest)
    };
    // `parse_sequence` reads the number after a marker; the digits are all that is left.
    let seq = parse_sequence(&format!("#{digits}"), "#")?;
    Some(ItemNode {
        name: name.to_owned(),
        priority,
        seq,
    })
}

/// The items among `children` in the order they are consumed: by priority (lowest
/// first), then in creation order. Foreign children are left out.
///
/// Creation order is the circular order of the sequence numbers (robust to the signed
/// 32-bit wrap, as in the locks): sort as unsigned, then start after the largest gap.
pub(crate) fn order_items<S: AsRef<str>>(
    children: &[S],
    prefix: &str,
    priorities: bool,
) -> Vec<ItemNode> {
    let mut items: Vec<ItemNode> = children
        .iter()
        .filter_map(|c| parse_item(c.as_ref(), prefix, priorities))
        .collect();
    items.sort_by(|a, b| {
        (a.seq as u32)
            .cmp(&(b.seq as u32))
            .then_with(|| a.name.cmp(&b.name))
    });
    if items.len() > 1 {
        let first = items[0].seq as u32;
        let last = items[items.len() - 1].seq as u32;
        let mut best_gap = first.wrapping_sub(last);
        let mut start = 0;
        for i in 1..items.len() {
            let gap = (items[i].seq as u32).wrapping_sub(items[i - 1].seq as u32);
            if gap > best_gap {
                best_gap = gap;
                start = i;
            }
        }
        items.rotate_left(start);
    }
    // Stable: creation order within a priority.
    items.sort_by_key(|i| i.priority);
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(items: &[ItemNode]) -> Vec<&str> {
        items.iter().map(|i| i.name.as_str()).collect()
    }

    #[test]
    fn curator_framing_round_trips_and_matches_item_serializer_bytes() {
        let encoded = encode_items(&[b"ab", b""]);
        assert_eq!(
            encoded,
            [0, 1, 0, 1, 1, 0, 0, 0, 2, b'a', b'b', 1, 0, 0, 0, 0, 2]
        );
        assert_eq!(
            decode_items(&encoded).unwrap(),
            vec![b"ab".to_vec(), Vec::new()]
        );
    }

    #[test]
    fn malformed_frames_are_errors_not_panics() {
        for bad in [
            &b""[..],
            &[0, 1, 0, 2, 2][..],
            &[0, 1, 0, 1][..],
            &[0, 1, 0, 1, 1, 0, 0][..],
            &[0, 1, 0, 1, 1, 0, 0, 0, 5, 1][..],
            &[0, 1, 0, 1, 1, 0xFF, 0xFF, 0xFF, 0xFF, 2][..],
            &[0, 1, 0, 1, 7][..],
        ] {
            assert!(
                matches!(decode_items(bad), Err(RecipeError::InvalidData(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn priority_tags_sort_as_their_numbers() {
        let mut values = [i32::MIN, -5, -1, 0, 1, 7, i32::MAX];
        let tags: Vec<String> = values.iter().map(|p| priority_tag(*p)).collect();
        let mut sorted = tags.clone();
        sorted.sort();
        assert_eq!(tags, sorted);
        assert_eq!(priority_tag(-1), "0FFFFFFFF");
        assert_eq!(priority_tag(5), "100000005");
        for v in &mut values {
            assert_eq!(parse_priority(&priority_tag(*v)), Some(*v));
        }
        assert_eq!(parse_priority("1FFFFFFFF"), None);
    }

    #[test]
    fn items_are_taken_by_priority_then_creation_order_across_the_wrap() {
        // Created in this order: MAX-1, MAX, MIN, MIN+1.
        let children = [
            "queue--2147483647",
            "foreign",
            "queue-2147483646",
            "queue--2147483648",
            "queue-banana",
            "queue-2147483647",
        ];
        assert_eq!(
            names(&order_items(&children, CURATOR_PREFIX, false)),
            [
                "queue-2147483646",
                "queue-2147483647",
                "queue--2147483648",
                "queue--2147483647"
            ]
        );
        let children = [
            format!("queue-{}0000000001", priority_tag(5)),
            format!("queue-{}0000000002", priority_tag(-3)),
            format!("queue-{}0000000003", priority_tag(5)),
            format!("queue-{}0000000004", priority_tag(0)),
            "queue-0000000009".to_owned(),
        ];
        let ordered = order_items(&children, CURATOR_PREFIX, true);
        let prio: Vec<(i32, i32)> = ordered.iter().map(|i| (i.priority, i.seq)).collect();
        assert_eq!(prio, [(-3, 2), (0, 4), (5, 1), (5, 3)]);
    }
}
