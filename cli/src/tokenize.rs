//! Splitting a command line into arguments exactly as zkCli does.
//!
//! zkCli (`ZooKeeperMain.MyCommandOptions.parseCommand`) repeatedly finds the pattern
//! `\s*([^"']\S*|"[^"]*"|'[^']*')\s*` and strips the quotes of a token that is wholly
//! quoted. This module reproduces that matcher by hand (leftmost match, alternatives in
//! order, greedy `\s*` that backtracks), including its corner cases: an unclosed quote is
//! skipped (`"abc` gives `abc`), and a line of blanks gives a one-blank token.

/// Java's `\s`: space, tab, newline, vertical tab, form feed, carriage return.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r')
}

/// Java regex line terminators, which `.` does not match.
fn is_line_terminator(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// The arguments of a command line (the command itself first); empty when the line holds
/// no token at all.
///
/// ```
/// use corral_cli::tokenize::split_command_line;
/// assert_eq!(split_command_line(r#"create /a "x y" 'z'"#), ["create", "/a", "x y", "z"]);
/// assert_eq!(split_command_line(r#"set /a "open"#), ["set", "/a", "open"]);
/// ```
pub fn split_command_line(line: &str) -> Vec<String> {
    let chars: Vec<char> = line.chars().collect();
    let mut args = Vec::new();
    let mut from = 0;
    while from <= chars.len() {
        let Some((start, end, next)) = (from..=chars.len()).find_map(|p| match_at(&chars, p))
        else {
            break;
        };
        args.push(unquote(&chars[start..end]));
        from = next;
    }
    args
}

/// Matches the pattern at `p`: (group start, group end, match end).
fn match_at(chars: &[char], p: usize) -> Option<(usize, usize, usize)> {
    let blanks_end = p + chars[p..].iter().take_while(|c| is_space(**c)).count();
    // `\s*` is greedy: try the longest run of blanks first, then give them back one by one.
    (p..=blanks_end).rev().find_map(|q| {
        let end = group_at(chars, q)?;
        let next = end + chars[end..].iter().take_while(|c| is_space(**c)).count();
        Some((q, end, next))
    })
}

/// Matches the group `([^"']\S*|"[^"]*"|'[^']*')` at `q`, returning its end.
fn group_at(chars: &[char], q: usize) -> Option<usize> {
    let c = *chars.get(q)?;
    if c != '"' && c != '\'' {
        let rest = chars[q + 1..].iter().take_while(|c| !is_space(**c)).count();
        return Some(q + 1 + rest);
    }
    let close = chars[q + 1..].iter().position(|x| *x == c)?;
    Some(q + 1 + close + 1)
}

/// Strips the quotes of a token that is wholly `"..."` or `'...'`.
fn unquote(token: &[char]) -> String {
    let quoted = token.len() >= 2
        && matches!(token[0], '"' | '\'')
        && token[token.len() - 1] == token[0]
        && !token[1..token.len() - 1]
            .iter()
            .any(|c| is_line_terminator(*c));
    let inner = if quoted {
        &token[1..token.len() - 1]
    } else {
        token
    };
    inner.iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> Vec<String> {
        split_command_line(s)
    }

    #[test]
    fn words_are_split_on_blanks() {
        assert_eq!(split("ls   -s\t/a  "), ["ls", "-s", "/a"]);
        assert_eq!(split("  ls /"), ["ls", "/"]);
        assert!(split("").is_empty());
    }

    #[test]
    fn quoted_tokens_keep_blanks_and_lose_quotes() {
        assert_eq!(
            split(r#"create "/h i" "a b c""#),
            ["create", "/h i", "a b c"]
        );
        assert_eq!(split("create /q  'x y'  "), ["create", "/q", "x y"]);
        assert_eq!(split(r#"create /e """#), ["create", "/e", ""]);
    }

    #[test]
    fn quotes_inside_a_word_stay() {
        assert_eq!(split(r#"set /a x"y"#), ["set", "/a", r#"x"y"#]);
        assert_eq!(split(r#"set /a "x"y"#), ["set", "/a", "x", "y"]);
    }

    #[test]
    fn an_unclosed_quote_is_skipped() {
        assert_eq!(
            split(r#"create /r "unclosed"#),
            ["create", "/r", "unclosed"]
        );
        assert!(split(r#"""#).is_empty());
    }

    #[test]
    fn a_line_of_blanks_is_one_blank_token() {
        assert_eq!(split("   "), [" "]);
    }
}
