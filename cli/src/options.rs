//! Command option parsing as zkCli's commands do it (Apache commons-cli 1.5
//! `DefaultParser`, short options only).
//!
//! The rules that matter for compatibility:
//!
//! * options may appear anywhere, before or after the positional arguments;
//! * flags combine (`-se`), and a value may be attached (`-v3`, `-v=3`) or follow
//!   (`-v 3`); a following token that looks like a known option is not taken as the value
//!   unless it is a number (`-v -1`);
//! * `--` ends the options; any other unknown `-x` token is an error, worded as Java's
//!   exception text (`org.apache.commons.cli.UnrecognizedOptionException: ...`).

use crate::error::CliError;

/// One short option of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptSpec {
    /// The option letter (`s` for `-s`).
    pub name: char,
    /// Whether it takes a value (`-v version`).
    pub has_arg: bool,
}

/// A flag without a value.
pub const fn flag(name: char) -> OptSpec {
    OptSpec {
        name,
        has_arg: false,
    }
}

/// An option with one value.
pub const fn valued(name: char) -> OptSpec {
    OptSpec {
        name,
        has_arg: true,
    }
}

/// The outcome of parsing: positional arguments (the command name first) and options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// Positional arguments, in order, starting with the command name.
    pub args: Vec<String>,
    /// Options in the order seen, with their value if they take one.
    opts: Vec<(char, Option<String>)>,
}

impl Parsed {
    /// Whether the option was given.
    pub fn has(&self, name: char) -> bool {
        self.opts.iter().any(|(n, _)| *n == name)
    }

    /// The option's first value.
    pub fn value(&self, name: char) -> Option<&str> {
        self.opts
            .iter()
            .filter(|(n, _)| *n == name)
            .find_map(|(_, v)| v.as_deref())
    }
}

/// Parses `tokens` (the command name first) against `specs`.
///
/// # Errors
///
/// An unknown option, or an option without its value, as zkCli's `CliParseException`.
pub fn parse(specs: &[OptSpec], tokens: &[String]) -> Result<Parsed, CliError> {
    Parser {
        specs,
        out: Parsed::default(),
        current: None,
        skip: false,
    }
    .run(tokens)
}

struct Parser<'a> {
    specs: &'a [OptSpec],
    out: Parsed,
    /// Index in `out.opts` of the option still waiting for its value.
    current: Option<usize>,
    /// After `--`: everything is positional.
    skip: bool,
}

fn unrecognized(token: &str) -> CliError {
    CliError::new(format!(
        "org.apache.commons.cli.UnrecognizedOptionException: Unrecognized option: {token}"
    ))
}

fn missing(name: char) -> CliError {
    CliError::new(format!(
        "org.apache.commons.cli.MissingArgumentException: Missing argument for option: {name}"
    ))
}

impl Parser<'_> {
    fn run(mut self, tokens: &[String]) -> Result<Parsed, CliError> {
        for token in tokens {
            self.token(token)?;
        }
        self.check_required_arg()?;
        Ok(self.out)
    }

    fn spec(&self, name: &str) -> Option<OptSpec> {
        let mut chars = name.chars();
        let c = chars.next()?;
        if chars.next().is_some() {
            return None;
        }
        self.specs.iter().copied().find(|s| s.name == c)
    }

    fn token(&mut self, token: &str) -> Result<(), CliError> {
        if self.skip {
            self.out.args.push(token.to_owned());
        } else if token == "--" {
            self.skip = true;
        } else if self.current.is_some() && self.is_argument(token) {
            self.set_value(strip_quotes(token));
        } else if token.starts_with("--") {
            // No command has long options.
            return Err(unrecognized(token));
        } else if token.starts_with('-') && token != "-" {
            self.short(token)?;
        } else {
            self.out.args.push(token.to_owned());
        }
        Ok(())
    }

    fn short(&mut self, token: &str) -> Result<(), CliError> {
        let t = &token[1..];
        match t.find('=') {
            None if t.chars().count() == 1 => match self.spec(t) {
                Some(spec) => self.option(spec),
                None => Err(unrecognized(token)),
            },
            None => self.concatenated(token),
            Some(pos) => {
                let (name, value) = (&t[..pos], &t[pos + 1..]);
                match self.spec(name) {
                    Some(spec) if spec.has_arg => {
                        self.option(spec)?;
                        self.set_value(value.to_owned());
                        Ok(())
                    }
                    _ => Err(unrecognized(token)),
                }
            }
        }
    }

    /// `-se` (flags) or `-v3` (an option and its value).
    fn concatenated(&mut self, token: &str) -> Result<(), CliError> {
        for (i, c) in token.char_indices().skip(1) {
            let Some(spec) = self.specs.iter().copied().find(|s| s.name == c) else {
                return Err(unrecognized(token));
            };
            self.option(spec)?;
            let rest = &token[i + c.len_utf8()..];
            if spec.has_arg && !rest.is_empty() {
                self.set_value(rest.to_owned());
                break;
            }
        }
        Ok(())
    }

    fn option(&mut self, spec: OptSpec) -> Result<(), CliError> {
        self.check_required_arg()?;
        self.out.opts.push((spec.name, None));
        self.current = spec.has_arg.then(|| self.out.opts.len() - 1);
        Ok(())
    }

    fn set_value(&mut self, value: String) {
        if let Some(i) = self.current.take() {
            self.out.opts[i].1 = Some(value);
        }
    }

    fn check_required_arg(&mut self) -> Result<(), CliError> {
        match self.current {
            Some(i) => Err(missing(self.out.opts[i].0)),
            None => Ok(()),
        }
    }

    /// commons-cli `isArgument`: not a known option, or a number.
    fn is_argument(&self, token: &str) -> bool {
        !self.is_short_option(token) || is_number(token)
    }

    fn is_short_option(&self, token: &str) -> bool {
        if !token.starts_with('-') || token.len() == 1 {
            return false;
        }
        let name = match token.find('=') {
            Some(pos) => &token[1..pos],
            None => &token[1..],
        };
        self.spec(name).is_some()
            || name
                .chars()
                .next()
                .is_some_and(|c| self.specs.iter().any(|s| s.name == c))
    }
}

/// commons-cli strips one pair of double quotes around an option value.
fn strip_quotes(token: &str) -> String {
    let inner = token
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .filter(|inner| !inner.contains('"'));
    inner.unwrap_or(token).to_owned()
}

/// Whether Java's `Double.parseDouble` accepts the token (decimal forms).
fn is_number(token: &str) -> bool {
    let t = token.trim_matches(|c: char| c <= ' ');
    let t = t.strip_prefix(['+', '-']).unwrap_or(t);
    if t == "NaN" || t == "Infinity" {
        return true;
    }
    let t = t.strip_suffix(['f', 'F', 'd', 'D']).unwrap_or(t);
    let (mantissa, exponent) = match t.find(['e', 'E']) {
        Some(pos) => (&t[..pos], Some(&t[pos + 1..])),
        None => (t, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    let mantissa_ok = digits(int) && digits(frac) && !(int.is_empty() && frac.is_empty());
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    const SET: &[OptSpec] = &[flag('s'), valued('v')];
    const CREATE: &[OptSpec] = &[flag('e'), flag('s'), flag('c'), valued('t')];

    fn p(specs: &[OptSpec], line: &str) -> Result<Parsed, CliError> {
        let tokens: Vec<String> = line.split(' ').map(str::to_owned).collect();
        parse(specs, &tokens)
    }

    #[test]
    fn options_may_follow_arguments() {
        let r = p(SET, "set /a x -v 3 -s").unwrap();
        assert_eq!(r.args, ["set", "/a", "x"]);
        assert_eq!(r.value('v'), Some("3"));
        assert!(r.has('s'));
    }

    #[test]
    fn flags_combine_and_values_attach() {
        let r = p(CREATE, "create -se /a").unwrap();
        assert!(r.has('s') && r.has('e') && !r.has('c'));
        let r = p(SET, "set -v3 /a x").unwrap();
        assert_eq!(r.value('v'), Some("3"));
        let r = p(SET, "set -v=4 /a x").unwrap();
        assert_eq!(r.value('v'), Some("4"));
        let r = p(SET, "set -sv5 /a x").unwrap();
        assert_eq!(r.value('v'), Some("5"));
    }

    #[test]
    fn a_negative_number_is_a_value() {
        let r = p(SET, "set -v -1 /a x").unwrap();
        assert_eq!(r.value('v'), Some("-1"));
        // An unknown option-like token is a value too.
        let r = p(SET, "set -v -x /a x").unwrap();
        assert_eq!(r.value('v'), Some("-x"));
    }

    #[test]
    fn errors_read_like_commons_cli() {
        assert_eq!(
            p(CREATE, "create -x /a").unwrap_err().message,
            "org.apache.commons.cli.UnrecognizedOptionException: Unrecognized option: -x"
        );
        assert_eq!(
            p(CREATE, "create -t").unwrap_err().message,
            "org.apache.commons.cli.MissingArgumentException: Missing argument for option: t"
        );
        assert_eq!(
            p(SET, "set -v -s /a x").unwrap_err().message,
            "org.apache.commons.cli.MissingArgumentException: Missing argument for option: v"
        );
        assert!(p(SET, "set --foo /a x").is_err());
        assert!(p(CREATE, "create -sx /a").is_err());
    }

    #[test]
    fn double_dash_ends_options() {
        let r = p(SET, "set -- /a -s").unwrap();
        assert_eq!(r.args, ["set", "/a", "-s"]);
        assert!(!r.has('s'));
        let r = p(SET, "set /a -").unwrap();
        assert_eq!(r.args, ["set", "/a", "-"]);
    }

    #[test]
    fn numbers_follow_java() {
        for n in ["1", "-1", "+2.5", "1e3", "-.5", "3d", "NaN", "-Infinity"] {
            assert!(is_number(n), "{n}");
        }
        for n in ["-", "-x", "1e", ".", "0x10", "inf"] {
            assert!(!is_number(n), "{n}");
        }
    }
}
