//! Client-side path checks with the messages of Java's `PathUtils.validatePath`.
//!
//! zkCli reports a malformed path before sending anything, with Java's wording and with
//! positions counted in UTF-16 code units; corral-client's own check words it differently,
//! so the shell checks first.

use crate::error::CliError;

/// Checks a node path as `PathUtils.validatePath` does.
///
/// # Errors
///
/// The message zkCli prints, e.g. `Path must start with / character` or
/// `Invalid path string "/a//b" caused by empty node name specified @3`.
pub fn validate_path(path: &str) -> Result<(), CliError> {
    let chars: Vec<u16> = path.encode_utf16().collect();
    if chars.is_empty() {
        return Err(CliError::new("Path length must be > 0"));
    }
    if chars[0] != u16::from(b'/') {
        return Err(CliError::new("Path must start with / character"));
    }
    if chars.len() == 1 {
        return Ok(());
    }
    if chars[chars.len() - 1] == u16::from(b'/') {
        return Err(CliError::new("Path must not end with / character"));
    }
    let slash = u16::from(b'/');
    let dot = u16::from(b'.');
    let ends_name = |i: usize| i + 1 == chars.len() || chars[i + 1] == slash;
    let mut last = slash;
    for i in 1..chars.len() {
        let c = chars[i];
        let reason = if c == 0 {
            Some("null character not allowed")
        } else if c == slash && last == slash {
            Some("empty node name specified")
        } else if c == dot && last == dot {
            (chars[i - 2] == slash && ends_name(i)).then_some("relative paths not allowed")
        } else if c == dot {
            (chars[i - 1] == slash && ends_name(i)).then_some("relative paths not allowed")
        } else if (0x01..=0x1f).contains(&c)
            || (0x7f..=0x9f).contains(&c)
            || (0xd800..=0xf8ff).contains(&c)
            || c >= 0xfff0
        {
            Some("invalid character")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(CliError::new(format!(
                "Invalid path string \"{path}\" caused by {reason} @{i}"
            )));
        }
        last = c;
    }
    Ok(())
}

/// The check of a create path: a sequential node's path is checked with a digit appended,
/// so `/a/` is a valid sequential prefix.
///
/// # Errors
///
/// As [`validate_path`], naming the path with the appended `1`.
pub fn validate_create_path(path: &str, sequential: bool) -> Result<(), CliError> {
    if sequential {
        validate_path(&format!("{path}1"))
    } else {
        validate_path(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(path: &str) -> String {
        validate_path(path).unwrap_err().message
    }

    #[test]
    fn good_paths_pass() {
        for p in ["/", "/a", "/a/b", "/a.b", "/..a", "/a/...", "/zookeeper"] {
            validate_path(p).unwrap();
        }
        validate_create_path("/a/", true).unwrap();
    }

    #[test]
    fn messages_match_path_utils() {
        assert_eq!(msg(""), "Path length must be > 0");
        assert_eq!(msg("a"), "Path must start with / character");
        assert_eq!(msg("/a/"), "Path must not end with / character");
        assert_eq!(
            msg("/cli-create//dbl"),
            "Invalid path string \"/cli-create//dbl\" caused by empty node name specified @12"
        );
        assert_eq!(
            msg("/cli-create/./dot"),
            "Invalid path string \"/cli-create/./dot\" caused by relative paths not allowed @12"
        );
        assert_eq!(
            msg("/a/.."),
            "Invalid path string \"/a/..\" caused by relative paths not allowed @4"
        );
        assert_eq!(
            msg("/a\u{1}"),
            "Invalid path string \"/a\u{1}\" caused by invalid character @2"
        );
        assert_eq!(
            validate_create_path("/a//", true).unwrap_err().message,
            "Invalid path string \"/a//1\" caused by empty node name specified @3"
        );
    }
}
