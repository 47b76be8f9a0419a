//! zkCli's output formats: the Stat block, Java's `Date.toString()`, ACL lines, lists.

use std::cmp::Ordering;

use corral_client::{perms, Acl, Id, Stat};

/// The Stat block of `stat`, `ls -s`, `get -s`, `set -s`, `getAcl -s` (zkCli's
/// `StatPrinter`), one line per field.
pub fn stat_lines(stat: &Stat) -> Vec<String> {
    vec![
        format!("cZxid = 0x{:x}", stat.czxid),
        format!("ctime = {}", java_date(stat.ctime)),
        format!("mZxid = 0x{:x}", stat.mzxid),
        format!("mtime = {}", java_date(stat.mtime)),
        format!("pZxid = 0x{:x}", stat.pzxid),
        format!("cversion = {}", stat.cversion),
        format!("dataVersion = {}", stat.version),
        format!("aclVersion = {}", stat.aversion),
        format!("ephemeralOwner = 0x{:x}", stat.ephemeral_owner),
        format!("dataLength = {}", stat.data_length),
        format!("numChildren = {}", stat.num_children),
    ]
}

/// Java's `new Date(ms).toString()`: `Sat Nov 21 21:51:20 UTC 2026` in the local zone
/// (`TZ`, else the system zone).
///
/// # Notable behaviors
///
/// The zone is named by its tz database abbreviation (`UTC`, `CET`); Java uses its own
/// names, which differ for a few zones (where tzdata has only a numeric abbreviation).
pub fn java_date(ms: i64) -> String {
    let Ok(ts) = jiff::Timestamp::from_millisecond(ms) else {
        return ms.to_string();
    };
    let tz = jiff::tz::TimeZone::try_system().unwrap_or(jiff::tz::TimeZone::UTC);
    ts.to_zoned(tz)
        .strftime("%a %b %d %H:%M:%S %Z %Y")
        .to_string()
}

/// ZooKeeper's permission letters in zkCli's order: `cdrwa`.
pub fn perm_string(perms: i32) -> String {
    [
        (perms::CREATE, 'c'),
        (perms::DELETE, 'd'),
        (perms::READ, 'r'),
        (perms::WRITE, 'w'),
        (perms::ADMIN, 'a'),
    ]
    .iter()
    .filter(|(bit, _)| perms & bit != 0)
    .map(|(_, c)| *c)
    .collect()
}

/// The two lines `getAcl` prints per entry: the Id as a Jute CSV record (`'world,'anyone`)
/// and `: <perms>`.
pub fn acl_lines(acl: &Acl) -> [String; 2] {
    [id_csv(&acl.id), format!(": {}", perm_string(acl.perms))]
}

/// A Jute record's `toString()` for an `Id`: `'scheme,'id`, with CSV escapes.
fn id_csv(id: &Id) -> String {
    format!("{},{}", csv_string(&id.scheme), csv_string(&id.id))
}

fn csv_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 1);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\0' => out.push_str("%00"),
            '\n' => out.push_str("%0A"),
            '\r' => out.push_str("%0D"),
            ',' => out.push_str("%2C"),
            '}' => out.push_str("%7D"),
            '%' => out.push_str("%25"),
            c => out.push(c),
        }
    }
    out
}

/// Java's `List.toString()`: `[a, b, c]`.
pub fn java_list<S: AsRef<str>>(items: &[S]) -> String {
    let items: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
    format!("[{}]", items.join(", "))
}

/// Java's `String.compareTo`: by UTF-16 code units.
pub fn java_cmp(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// Sorts as Java's `Collections.sort` sorts strings.
pub fn java_sort(items: &mut [String]) {
    items.sort_by(|a, b| java_cmp(a, b));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perms_in_cdrwa_order() {
        assert_eq!(perm_string(perms::ALL), "cdrwa");
        assert_eq!(perm_string(perms::READ | perms::ADMIN), "ra");
        assert_eq!(perm_string(0), "");
    }

    #[test]
    fn acl_lines_look_like_jute_csv() {
        let acl = Acl::new(perms::ALL, "world", "anyone");
        assert_eq!(acl_lines(&acl), ["'world,'anyone", ": cdrwa"]);
        let odd = Acl::new(perms::READ, "x", "a,b%}");
        assert_eq!(acl_lines(&odd)[0], "'x,'a%2Cb%25%7D");
    }

    #[test]
    fn lists_and_sorting_follow_java() {
        assert_eq!(java_list(&["a", "b"]), "[a, b]");
        assert_eq!(java_list::<&str>(&[]), "[]");
        let mut v = vec!["b".to_owned(), "B".to_owned(), "a".to_owned()];
        java_sort(&mut v);
        assert_eq!(v, ["B", "a", "b"]);
    }

    #[test]
    fn the_epoch_prints_like_java_in_utc() {
        let d = java_date(0);
        // The zone depends on the machine; the shape does not.
        let parts: Vec<&str> = d.split(' ').collect();
        assert_eq!(parts.len(), 6, "{d}");
        assert_eq!(parts[5], if parts[4] == "UTC" { "1970" } else { parts[5] });
        if parts[4] == "UTC" {
            assert_eq!(d, "Thu Jan 01 00:00:00 UTC 1970");
        }
    }
}
