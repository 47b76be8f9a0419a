//! ACL strings (`scheme:id:perms[,...]`), parsed as zkCli's `AclParser` parses them.

use corral_client::{perms, Acl};

/// The outcome of parsing an ACL string: the entries, and the complaints zkCli prints to
/// standard error about the parts it skipped (it goes on with the rest).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParsedAcl {
    /// The well-formed entries, in order.
    pub acl: Vec<Acl>,
    /// `x does not have the form scheme:id:perm` / `Unknown perm type: q` lines.
    pub warnings: Vec<String>,
}

/// Parses `scheme:id:perms` entries separated by commas. The id is everything between
/// the first and the last colon (`digest:bob:hash=:cdrwa`, `ip:127.0.0.1:r`); unknown
/// permission letters are reported and ignored.
///
/// ```
/// use corral_cli::acl::parse_acl;
/// let parsed = parse_acl("world:anyone:cdrwa,bad");
/// assert_eq!(parsed.acl.len(), 1);
/// assert_eq!(parsed.warnings, ["bad does not have the form scheme:id:perm"]);
/// ```
pub fn parse_acl(text: &str) -> ParsedAcl {
    let mut out = ParsedAcl::default();
    for entry in java_split_commas(text) {
        let (Some(first), Some(last)) = (entry.find(':'), entry.rfind(':')) else {
            out.warnings
                .push(format!("{entry} does not have the form scheme:id:perm"));
            continue;
        };
        if first == last {
            out.warnings
                .push(format!("{entry} does not have the form scheme:id:perm"));
            continue;
        }
        let mut bits = 0;
        for c in entry[last + 1..].chars() {
            bits |= match c {
                'r' => perms::READ,
                'w' => perms::WRITE,
                'c' => perms::CREATE,
                'd' => perms::DELETE,
                'a' => perms::ADMIN,
                other => {
                    out.warnings.push(format!("Unknown perm type: {other}"));
                    0
                }
            };
        }
        out.acl
            .push(Acl::new(bits, &entry[..first], &entry[first + 1..last]));
    }
    out
}

/// Java's `String.split(",")`: trailing empty parts are dropped.
fn java_split_commas(text: &str) -> Vec<&str> {
    if !text.contains(',') {
        return vec![text];
    }
    let mut parts: Vec<&str> = text.split(',').collect();
    while parts.last() == Some(&"") {
        parts.pop();
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_spans_first_to_last_colon() {
        let p = parse_acl("digest:bob:fyVm=:cdrw,world:anyone:r");
        assert!(p.warnings.is_empty());
        assert_eq!(
            p.acl,
            [
                Acl::new(perms::ALL & !perms::ADMIN, "digest", "bob:fyVm="),
                Acl::new(perms::READ, "world", "anyone"),
            ]
        );
    }

    #[test]
    fn malformed_parts_are_reported_and_skipped() {
        let p = parse_acl("foo,world:anyone:rx");
        assert_eq!(
            p.warnings,
            [
                "foo does not have the form scheme:id:perm",
                "Unknown perm type: x"
            ]
        );
        assert_eq!(p.acl, [Acl::new(perms::READ, "world", "anyone")]);
        assert!(parse_acl(",").acl.is_empty());
        assert_eq!(
            parse_acl("").warnings,
            [" does not have the form scheme:id:perm"]
        );
    }
}
