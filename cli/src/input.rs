//! Reading command lines: with line editing, history and completion (rustyline) when
//! standard input is a terminal, else plain lines from standard input.
//!
//! A thread of its own reads, one line per request, so that the shell's task can print
//! watch events while a line is being typed:
//!
//! ```text
//!   shell task ── prompt ──► reader thread (rustyline / stdin)
//!              ◄── line ────
//! ```

use std::io::BufRead;
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::Duration;

use corral_client::Client;
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, ExternalPrinter, Helper};
use tokio::sync::mpsc;

use crate::shell::COMMANDS;

/// The client the completer lists children with, updated by the shell.
pub type ClientSlot = Arc<Mutex<Option<Client>>>;

/// The shell's end of the reader thread.
#[derive(Debug)]
pub struct LineReader {
    prompts: std_mpsc::Sender<String>,
    lines: mpsc::Receiver<Option<String>>,
}

impl LineReader {
    /// Starts a reader of plain lines from standard input (no prompt).
    pub fn piped() -> LineReader {
        let (prompts, prompt_rx) = std_mpsc::channel::<String>();
        let (line_tx, lines) = mpsc::channel(1);
        std::thread::spawn(move || {
            let stdin = std::io::stdin();
            let mut input = stdin.lock();
            while prompt_rx.recv().is_ok() {
                let mut buf = Vec::new();
                let line = match input.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => None,
                    Ok(_) => {
                        if buf.last() == Some(&b'\n') {
                            buf.pop();
                        }
                        if buf.last() == Some(&b'\r') {
                            buf.pop();
                        }
                        Some(String::from_utf8_lossy(&buf).into_owned())
                    }
                };
                let end = line.is_none();
                if line_tx.blocking_send(line).is_err() || end {
                    break;
                }
            }
        });
        LineReader { prompts, lines }
    }

    /// Starts a line editor on the terminal; returns the reader and the editor's printer
    /// for text printed while a line is edited.
    ///
    /// # Errors
    ///
    /// When the terminal cannot be set up.
    pub fn terminal(
        slot: ClientSlot,
        runtime: tokio::runtime::Handle,
    ) -> rustyline::Result<(LineReader, Box<dyn ExternalPrinter + Send>)> {
        let mut editor: Editor<ZnodeCompleter, DefaultHistory> = Editor::new()?;
        editor.set_helper(Some(ZnodeCompleter { slot, runtime }));
        let printer = Box::new(editor.create_external_printer()?);
        let (prompts, prompt_rx) = std_mpsc::channel::<String>();
        let (line_tx, lines) = mpsc::channel(1);
        std::thread::spawn(move || {
            while let Ok(prompt) = prompt_rx.recv() {
                let line = match editor.readline(&prompt) {
                    Ok(line) => {
                        if !line.trim().is_empty() {
                            let _ = editor.add_history_entry(line.as_str());
                        }
                        Some(line)
                    }
                    // Ctrl-C drops the line being typed, as a new prompt.
                    Err(ReadlineError::Interrupted) => Some(String::new()),
                    Err(_) => None,
                };
                let end = line.is_none();
                if line_tx.blocking_send(line).is_err() || end {
                    break;
                }
            }
        });
        Ok((LineReader { prompts, lines }, printer))
    }

    /// Asks for the next line, showing `prompt` if the reader edits lines.
    pub fn request(&self, prompt: String) {
        let _ = self.prompts.send(prompt);
    }

    /// The requested line; `None` at the end of the input.
    ///
    /// # Cancellation safety
    ///
    /// Cancel-safe: a line not returned stays queued.
    pub async fn recv(&mut self) -> Option<String> {
        self.lines.recv().await.flatten()
    }
}

/// Completes command names, and znode paths from the server's children lists.
struct ZnodeCompleter {
    slot: ClientSlot,
    runtime: tokio::runtime::Handle,
}

impl ZnodeCompleter {
    fn children(&self, dir: &str) -> Vec<String> {
        let Some(client) = self.slot.lock().ok().and_then(|c| c.clone()) else {
            return Vec::new();
        };
        let dir = dir.to_owned();
        // Runs on the reader thread while the shell's runtime (on the main thread) drives
        // the connection.
        self.runtime.block_on(async move {
            tokio::time::timeout(Duration::from_secs(2), client.get_children(&dir))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default()
        })
    }
}

impl Completer for ZnodeCompleter {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        let start = before.rfind(char::is_whitespace).map_or(0, |i| i + 1);
        let word = &before[start..];
        let pair = |s: String| Pair {
            display: s.clone(),
            replacement: s,
        };
        if before[..start].trim().is_empty() {
            let mut names: Vec<String> = COMMANDS
                .iter()
                .map(|(c, _)| (*c).to_owned())
                .filter(|c| c.starts_with(word))
                .collect();
            names.sort();
            return Ok((start, names.into_iter().map(pair).collect()));
        }
        if !word.starts_with('/') {
            return Ok((start, Vec::new()));
        }
        let cut = word.rfind('/').unwrap_or(0);
        let (dir, prefix) = (if cut == 0 { "/" } else { &word[..cut] }, &word[cut + 1..]);
        let base = if dir == "/" { "" } else { dir };
        let mut children: Vec<String> = self
            .children(dir)
            .into_iter()
            .filter(|c| c.starts_with(prefix))
            .map(|c| format!("{base}/{c}"))
            .collect();
        children.sort();
        Ok((start, children.into_iter().map(pair).collect()))
    }
}

impl Hinter for ZnodeCompleter {
    type Hint = String;
}

impl Highlighter for ZnodeCompleter {}

impl Validator for ZnodeCompleter {}

impl Helper for ZnodeCompleter {}
