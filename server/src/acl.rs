//! ACL schemes (world, auth, digest, ip, super) and permission checks.

use base64::Engine;
use corral_proto::{Acl, ErrorCode, Id};
use sha1::{Digest, Sha1};
use std::net::IpAddr;

/// The digest id ZooKeeper derives from `user:password`: `user:base64(sha1(user:password))`.
///
/// ```
/// assert_eq!(
///     corral_server::acl::digest_id("bob:secret"),
///     "bob:fyVmFCwVbTJYrznoSu1koqYEYF0="
/// );
/// ```
pub fn digest_id(user_password: &str) -> String {
    let user = user_password.split(':').next().unwrap_or("");
    let hash = Sha1::digest(user_password.as_bytes());
    format!(
        "{user}:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// Authenticates `scheme`/`auth` as an auth packet would. Returns the ids to add to the
/// connection, or `AuthFailed`.
pub fn authenticate(
    scheme: &str,
    auth: &[u8],
    super_digest: Option<&str>,
) -> Result<Vec<Id>, ErrorCode> {
    match scheme {
        "digest" => {
            let text = std::str::from_utf8(auth).map_err(|_| ErrorCode::AuthFailed)?;
            let digest = digest_id(text);
            let mut ids = Vec::new();
            if super_digest == Some(digest.as_str()) {
                ids.push(Id::new("super", ""));
            }
            ids.push(Id::new("digest", digest));
            Ok(ids)
        }
        _ => Err(ErrorCode::AuthFailed),
    }
}

/// Whether `ids` (a connection's identities) grant any bit of `perm` on a node with `acl`.
pub fn check(acl: &[Acl], perm: i32, ids: &[Id]) -> bool {
    if acl.is_empty() || ids.iter().any(|id| id.scheme == "super") {
        return true;
    }
    acl.iter().any(|a| {
        a.perms & perm != 0
            && ((a.id.scheme == "world" && a.id.id == "anyone")
                || ids
                    .iter()
                    .any(|me| me.scheme == a.id.scheme && matches(&a.id.scheme, &me.id, &a.id.id)))
    })
}

fn matches(scheme: &str, mine: &str, acl_id: &str) -> bool {
    match scheme {
        "digest" => mine == acl_id,
        "ip" => ip_matches(mine, acl_id),
        _ => false,
    }
}

/// Whether address `addr` falls in `acl_id` (`a.b.c.d` or `a.b.c.d/bits`, IPv4 or IPv6).
pub fn ip_matches(addr: &str, acl_id: &str) -> bool {
    let Ok(addr) = addr.parse::<IpAddr>() else {
        return false;
    };
    let Some((net, bits)) = parse_ip_acl(acl_id) else {
        return false;
    };
    match (addr, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

fn parse_ip_acl(id: &str) -> Option<(IpAddr, u32)> {
    let (ip, bits) = match id.split_once('/') {
        Some((ip, bits)) => (ip, Some(bits.parse::<u32>().ok()?)),
        None => (id, None),
    };
    let ip: IpAddr = ip.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let bits = bits.unwrap_or(max);
    (bits <= max).then_some((ip, bits))
}

/// Java's `String.hashCode` (over UTF-16 code units).
pub fn java_string_hash(s: &str) -> u32 {
    s.encode_utf16()
        .fold(0u32, |h, c| h.wrapping_mul(31).wrapping_add(u32::from(c)))
}

/// The order in which a Java `HashMap`/`HashSet` (or `ConcurrentHashMap`) of default
/// capacity iterates keys with the given hashes, inserted in the given order: by bin
/// (`(h ^ h >>> 16) & (capacity - 1)`, the capacity doubling past three quarters full),
/// insertion order within a bin. Returns indexes into `hashes`.
pub fn java_hash_order(hashes: &[u32]) -> Vec<usize> {
    let mut n = 16usize;
    while hashes.len() > n - n / 4 {
        n *= 2;
    }
    let mut v: Vec<(usize, usize)> = hashes
        .iter()
        .enumerate()
        .map(|(i, h)| (((h ^ (h >> 16)) as usize) & (n - 1), i))
        .collect();
    v.sort_unstable();
    v.into_iter().map(|(_, i)| i).collect()
}

/// The order of a Java `HashSet` *clone* of a set iterated in `order` (indexes into `hashes`):
/// the clone's table has `tableSizeFor(len / 0.75 + 1)` bins and is filled in the original
/// iteration order. Apache ZooKeeper answers getEphemerals from such a clone.
pub fn java_clone_order(hashes: &[u32], order: &[usize]) -> Vec<usize> {
    let want = (hashes.len() as f64 / 0.75) as usize + 1;
    let n = want.next_power_of_two().max(1);
    let mut v: Vec<(usize, usize, usize)> = order
        .iter()
        .enumerate()
        .map(|(pos, &i)| {
            let h = hashes[i];
            (((h ^ (h >> 16)) as usize) & (n - 1), pos, i)
        })
        .collect();
    v.sort_unstable();
    v.into_iter().map(|(_, _, i)| i).collect()
}

/// Orders a connection's ids as Apache ZooKeeper iterates them: its auth info is a
/// hash set of Jute `Id` records, so the order is the hash-table order. whoAmI and the `auth`
/// ACL expansion show it.
pub fn zookeeper_order(ids: &[Id]) -> Vec<Id> {
    zookeeper_order_index(ids)
        .into_iter()
        .map(|i| ids[i].clone())
        .collect()
}

/// [`zookeeper_order`] as indexes into `ids`.
fn zookeeper_order_index(ids: &[Id]) -> Vec<usize> {
    let hashes: Vec<u32> = ids
        .iter()
        .map(|id| {
            let r = 17u32
                .wrapping_mul(37)
                .wrapping_add(java_string_hash(&id.scheme));
            r.wrapping_mul(37).wrapping_add(java_string_hash(&id.id))
        })
        .collect();
    java_hash_order(&hashes)
}

/// Validates and expands an ACL for create / setACL as ZooKeeper does: duplicates removed,
/// `auth` expanded to the caller's authenticated (digest) ids, unknown schemes and invalid
/// ids rejected with `InvalidAcl`.
pub fn fixup(acl: &[Acl], ids: &[Id]) -> Result<Vec<Acl>, ErrorCode> {
    fixup_owned(acl.to_vec(), ids)
}

/// [`fixup`] of an ACL the caller owns. It runs on every create, so it allocates nothing
/// unless the ACL has an `auth` entry: the entries are checked and deduplicated in place, and
/// only an `auth` entry needs the ids in ZooKeeper's hash order and a new vector.
pub fn fixup_owned(mut acl: Vec<Acl>, ids: &[Id]) -> Result<Vec<Acl>, ErrorCode> {
    // Keep the first of equal entries, in order.
    let mut uniq = 0;
    for i in 0..acl.len() {
        if !acl[..uniq].contains(&acl[i]) {
            if uniq != i {
                acl.swap(uniq, i);
            }
            uniq += 1;
        }
    }
    acl.truncate(uniq);
    if acl.is_empty() {
        return Err(ErrorCode::InvalidAcl);
    }
    let mut auth = false;
    for a in &acl {
        let valid = match a.id.scheme.as_str() {
            "world" => a.id.id == "anyone",
            "auth" => {
                auth = true;
                true
            }
            "digest" => {
                a.id.id.split(':').filter(|s| !s.is_empty()).count() == 2
                    && a.id.id.matches(':').count() == 1
            }
            "ip" => parse_ip_acl(&a.id.id).is_some(),
            _ => false,
        };
        if !valid {
            return Err(ErrorCode::InvalidAcl);
        }
    }
    if !auth {
        return Ok(acl);
    }
    let order = zookeeper_order_index(ids);
    let digests = || {
        order
            .iter()
            .map(|&i| &ids[i])
            .filter(|id| id.scheme == "digest")
    };
    if digests().next().is_none() {
        return Err(ErrorCode::InvalidAcl);
    }
    let mut out = Vec::with_capacity(acl.len() + ids.len());
    for a in acl {
        if a.id.scheme == "auth" {
            out.extend(digests().map(|id| Acl {
                perms: a.perms,
                id: id.clone(),
            }));
        } else {
            out.push(a);
        }
    }
    Ok(out)
}

/// The ACL as getACL shows it to a caller without ADMIN: digest hashes masked as `user:x`.
pub fn mask_digests(acl: &[Acl]) -> Vec<Acl> {
    acl.iter()
        .map(|a| {
            if a.id.scheme == "digest" {
                let user = a.id.id.split(':').next().unwrap_or("");
                Acl {
                    perms: a.perms,
                    id: Id::new("digest", format!("{user}:x")),
                }
            } else {
                a.clone()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_proto::perms;

    #[test]
    fn digest_matches_zookeeper_vectors() {
        assert_eq!(
            digest_id("super:admin"),
            "super:xQJmxLMiHGwaqBvst5y6rkB6HQs="
        );
    }

    #[test]
    fn super_digest_grants_super() {
        let ids = authenticate(
            "digest",
            b"super:admin",
            Some("super:xQJmxLMiHGwaqBvst5y6rkB6HQs="),
        )
        .unwrap();
        assert_eq!(ids[0], Id::new("super", ""));
        assert!(check(
            &[Acl::new(perms::READ, "digest", "x:y")],
            perms::ADMIN,
            &ids
        ));
    }

    #[test]
    fn unknown_auth_scheme_fails() {
        assert_eq!(
            authenticate("kerberos", b"x", None),
            Err(ErrorCode::AuthFailed)
        );
    }

    #[test]
    fn ip_cidr_matching() {
        assert!(ip_matches("127.0.0.1", "127.0.0.1"));
        assert!(ip_matches("10.1.2.3", "10.0.0.0/8"));
        assert!(!ip_matches("11.1.2.3", "10.0.0.0/8"));
        assert!(ip_matches("::1", "::1/128"));
        assert!(!ip_matches("127.0.0.1", "::1"));
        assert!(!ip_matches("127.0.0.1", "127.0.0.1/33"));
    }

    #[test]
    fn world_anyone_allows_only_its_bits() {
        let acl = Acl::read_unsafe();
        assert!(check(&acl, perms::READ, &[]));
        assert!(!check(&acl, perms::WRITE, &[]));
    }

    #[test]
    fn fixup_expands_auth_and_rejects_bad_ids() {
        let ids = vec![Id::new("ip", "127.0.0.1"), Id::new("digest", "bob:h")];
        let out = fixup(&Acl::creator_all(), &ids).unwrap();
        assert_eq!(out, vec![Acl::new(perms::ALL, "digest", "bob:h")]);
        assert_eq!(
            fixup(&Acl::creator_all(), &[Id::new("ip", "127.0.0.1")]),
            Err(ErrorCode::InvalidAcl)
        );
        assert_eq!(fixup(&[], &ids), Err(ErrorCode::InvalidAcl));
        assert_eq!(
            fixup(&[Acl::new(1, "world", "someone")], &ids),
            Err(ErrorCode::InvalidAcl)
        );
        assert_eq!(
            fixup(&[Acl::new(1, "digest", "nocolon")], &ids),
            Err(ErrorCode::InvalidAcl)
        );
        assert_eq!(
            fixup(&[Acl::new(1, "ip", "300.1.1.1")], &ids),
            Err(ErrorCode::InvalidAcl)
        );
        let dup = [
            Acl::new(1, "ip", "10.0.0.0/8"),
            Acl::new(1, "ip", "10.0.0.0/8"),
        ];
        assert_eq!(fixup(&dup, &ids).unwrap().len(), 1);
    }

    #[test]
    fn fixup_keeps_entry_order_and_expands_auth_in_hash_order() {
        let ids = vec![
            Id::new("ip", "127.0.0.1"),
            Id::new("digest", "bob:wrong"),
            Id::new("digest", "bob:secret"),
        ];
        let order: Vec<String> = zookeeper_order(&ids).into_iter().map(|i| i.id).collect();
        let acl = vec![
            Acl::new(1, "ip", "10.0.0.0/8"),
            Acl::new(3, "auth", ""),
            Acl::new(1, "ip", "10.0.0.0/8"),
            Acl::new(perms::READ, "world", "anyone"),
        ];
        let mut want = vec![Acl::new(1, "ip", "10.0.0.0/8")];
        want.extend(
            order
                .iter()
                .filter(|id| id.starts_with("bob:"))
                .map(|id| Acl::new(3, "digest", id.as_str())),
        );
        want.push(Acl::new(perms::READ, "world", "anyone"));
        assert_eq!(fixup(&acl, &ids).unwrap(), want);
        assert_eq!(fixup_owned(acl, &ids).unwrap(), want);
        let plain = vec![Acl::new(perms::ALL, "world", "anyone")];
        assert_eq!(fixup_owned(plain.clone(), &[]).unwrap(), plain);
    }

    #[test]
    fn ids_come_in_zookeeper_hash_order() {
        // Observed on Apache ZooKeeper 3.8: the digest ids before the ip id, and of two
        // digests for "bob" the one for "secret" first, whatever the order they were added.
        let ids = vec![
            Id::new("ip", "127.0.0.1"),
            Id::new("digest", digest_id("bob:wrong")),
            Id::new("digest", digest_id("bob:secret")),
        ];
        let got: Vec<String> = zookeeper_order(&ids).into_iter().map(|i| i.id).collect();
        assert_eq!(
            got,
            [
                "bob:fyVmFCwVbTJYrznoSu1koqYEYF0=",
                "bob:7e5oQdf4IqOAJ9OLk9OTl5I4cwM=",
                "127.0.0.1"
            ]
        );
    }

    #[test]
    fn get_acl_masks_digest_hashes() {
        let acl = [Acl::new(31, "digest", "bob:fyVmFCwVbTJYrznoSu1koqYEYF0=")];
        assert_eq!(mask_digests(&acl)[0].id.id, "bob:x");
    }
}
