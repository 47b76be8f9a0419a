//! ZooKeeper's path rules.

use std::fmt;

/// Why a path was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathError {
    /// The path as given.
    pub path: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Invalid path string \"{}\" caused by {}",
            self.path, self.reason
        )
    }
}

impl std::error::Error for PathError {}

/// Checks a znode path: absolute, no trailing `/` (except the root), no empty, `.` or `..`
/// component, and no control or reserved characters.
///
/// With `sequential`, the path is a prefix to which the server appends digits, so a trailing
/// `/` is allowed (as ZooKeeper validates `path + "1"`).
///
/// ```
/// use corral_proto::path::validate_path;
/// assert!(validate_path("/a/b", false).is_ok());
/// assert!(validate_path("/a/", false).is_err());
/// assert!(validate_path("/a/", true).is_ok());
/// assert!(validate_path("/a/../b", false).is_err());
/// ```
pub fn validate_path(path: &str, sequential: bool) -> Result<(), PathError> {
    if sequential {
        // The server appends digits, so validate the name as it will be.
        let full = format!("{path}1");
        return check(&full).map_err(|reason| PathError {
            path: path.to_owned(),
            reason,
        });
    }
    check(path).map_err(|reason| PathError {
        path: path.to_owned(),
        reason,
    })
}

fn check(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("path length must be > 0");
    }
    if !path.starts_with('/') {
        return Err("path must start with / character");
    }
    if path == "/" {
        return Ok(());
    }
    if path.ends_with('/') {
        return Err("path must not end with / character");
    }
    for comp in path[1..].split('/') {
        if comp.is_empty() {
            return Err("empty node name specified");
        }
        if comp == "." || comp == ".." {
            return Err("relative paths not allowed");
        }
    }
    let bad = |c: char| {
        c == '\0'
            || ('\u{1}'..='\u{1f}').contains(&c)
            || ('\u{7f}'..='\u{9f}').contains(&c)
            || ('\u{e000}'..='\u{f8ff}').contains(&c)
            || ('\u{fff0}'..='\u{ffff}').contains(&c)
    };
    if path.chars().any(bad) {
        return Err("invalid character");
    }
    Ok(())
}

/// The parent of an absolute path (`/` for top-level nodes and for `/`).
///
/// ```
/// assert_eq!(corral_proto::path::parent("/a/b"), "/a");
/// assert_eq!(corral_proto::path::parent("/a"), "/");
/// ```
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// The last component of an absolute path.
///
/// ```
/// assert_eq!(corral_proto::path::name("/a/b"), "b");
/// ```
pub fn name(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_the_bad_paths_zookeeper_rejects() {
        for p in [
            "",
            "a",
            "/a/",
            "//",
            "/a//b",
            "/a/./b",
            "/a/..",
            "/a\0b",
            "/a\u{1}",
            "/\u{fff5}",
        ] {
            assert!(validate_path(p, false).is_err(), "{p:?} should be rejected");
        }
    }

    #[test]
    fn accepts_ordinary_paths() {
        for p in ["/", "/a", "/a/b.c", "/a/...", "/zookeeper/quota", "/ü/名前"] {
            assert!(validate_path(p, false).is_ok(), "{p:?} should be accepted");
        }
    }

    #[test]
    fn sequential_prefix_may_end_with_slash() {
        assert!(validate_path("/a/", true).is_ok());
        assert!(validate_path("/a/.", true).is_ok());
        assert!(validate_path("/a//", true).is_err());
    }
}
