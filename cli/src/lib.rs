//! corral-cli: a zkCli-compatible shell on [`corral_client`].
//!
//! It speaks Apache ZooKeeper's `zkCli.sh` (3.8) dialect: the same commands, flags,
//! output formats, error messages and exit codes, so scripts written for zkCli work
//! unchanged. Dependency direction: `cli → client → proto`.
//!
//! ```text
//!   stdin ─► input (rustyline on a terminal, plain lines otherwise) ─► shell
//!   shell ─► tokenize ─► options ─► command ─► corral_client::Client ─► server
//!     ▲                                         │ one watcher value per watch
//!     └── hub (one event stream, server order) ◄┘
//!   shell ─► output (stdout / stderr, one flushed line at a time)
//! ```
//!
//! Modes, as zkCli:
//!
//! * `corral-cli [-server host:port] [-timeout ms] [-r]`: interactive; with line editing
//!   and history when standard input is a terminal, otherwise each line of standard
//!   input is run in order (scriptable). The exit code is the last command's.
//! * `corral-cli -server host:port CMD ARGS`: runs one command; exit code 0 on success.
//!
//! # Notable behaviors
//!
//! Differences from zkCli, all because of what corral-client offers or on purpose:
//!
//! * `create path` without data creates the node with empty data, not null data, and
//!   `get` prints empty data for a node whose data is null (the client does not tell
//!   null from empty).
//! * The session is closed when the shell exits (zkCli leaves it to expire).
//! * `addWatch` without `-m` is always PERSISTENT_RECURSIVE (zkCli 3.8 reuses the mode of
//!   the previous `addWatch`), and bad numbers (`set -v x`, `redo x`) are reported instead
//!   of ending the shell with a Java stack trace.
//! * `setquota`, `listquota`, `delquota` and `reconfig` are not supported.

pub mod acl;
pub mod error;
pub mod format;
pub mod hub;
pub mod input;
pub mod options;
pub mod output;
pub mod path;
pub mod shell;
pub mod tokenize;

use std::io::IsTerminal;
use std::time::Duration;

pub use error::CliError;
pub use shell::{Settings, Shell};

/// zkCli's command line: options, then an optional command for one-shot mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    /// How to connect.
    pub server: String,
    /// The session timeout in ms (`-timeout`, default 30000).
    pub timeout_ms: u64,
    /// `-r`: accept a read-only server.
    pub read_only: bool,
    /// The command and its arguments, for one-shot mode.
    pub command: Option<Vec<String>>,
}

impl CommandLine {
    /// Parses arguments as zkCli's `parseOptions` does: `-server`, `-timeout`, `-r`,
    /// `-client-configuration` (ignored), `-waitforconnection` (always the case); the
    /// first argument not starting with `-` begins the command. Other options are
    /// ignored. Problems are returned as messages for standard error.
    pub fn parse(args: &[String]) -> (CommandLine, Vec<String>) {
        let mut cl = CommandLine {
            server: "localhost:2181".to_owned(),
            timeout_ms: 30_000,
            read_only: false,
            command: None,
        };
        let mut warnings = Vec::new();
        let mut it = args.iter();
        while let Some(opt) = it.next() {
            let needs_value = matches!(
                opt.as_str(),
                "-server" | "-timeout" | "-client-configuration"
            );
            if needs_value {
                let Some(value) = it.next() else {
                    warnings.push(format!("Error: no argument found for option {opt}"));
                    break;
                };
                match opt.as_str() {
                    "-server" => cl.server = value.clone(),
                    "-timeout" => match value.parse::<u64>() {
                        Ok(ms) => cl.timeout_ms = ms,
                        Err(_) => warnings.push(format!(
                            "Error: -timeout needs a number of milliseconds, not {value}"
                        )),
                    },
                    _ => warnings.push(format!("Ignoring {opt} {value}: not supported")),
                }
                continue;
            }
            if opt == "-r" {
                cl.read_only = true;
            }
            if !opt.starts_with('-') {
                let mut command = vec![opt.clone()];
                command.extend(it.by_ref().cloned());
                cl.command = Some(command);
                break;
            }
        }
        (cl, warnings)
    }
}

/// Runs the shell for the process arguments (without the program name) and returns its
/// exit code.
///
/// # Panics
///
/// When the Tokio runtime cannot be built.
pub fn run(args: &[String]) -> i32 {
    let (cl, warnings) = CommandLine::parse(args);
    for w in warnings {
        eprintln!("{w}");
    }
    let settings = Settings {
        server: cl.server.clone(),
        session_timeout: Duration::from_millis(cl.timeout_ms),
        read_only: cl.read_only,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let shell = Shell::new(settings);
    runtime.block_on(async move {
        match cl.command {
            Some(command) => shell.run_one_shot(command).await,
            None => shell.run_interactive(std::io::stdin().is_terminal()).await,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn options_then_command() {
        let (cl, w) = CommandLine::parse(&args("-server h:1 -timeout 5000 -r ls -s /"));
        assert!(w.is_empty());
        assert_eq!(cl.server, "h:1");
        assert_eq!(cl.timeout_ms, 5000);
        assert!(cl.read_only);
        assert_eq!(cl.command, Some(args("ls -s /")));
    }

    #[test]
    fn defaults_and_unknown_options() {
        let (cl, w) = CommandLine::parse(&args("-x"));
        assert!(w.is_empty());
        assert_eq!(cl.server, "localhost:2181");
        assert_eq!(cl.command, None);
        let (_, w) = CommandLine::parse(&args("-server"));
        assert_eq!(w, ["Error: no argument found for option -server"]);
    }
}
