//! The shell: zkCli's command loop (`ZooKeeperMain`) on a corral-client session.
//!
//! ```text
//!   line ─► split_command_line ─► process_cmd ─► process_zk_cmd ─► command (create, ls, ...)
//!                                     │ exit code = 0, or CliError → stderr + its code
//!   after each command and while idle: session state changes and watch events
//!   (WatchHub::drain) are printed as zkCli's default watcher prints them
//! ```
//!
//! The shell follows `ZooKeeperMain` closely, quirks included: the exit code is the last
//! command's; `quit` keeps it; `history`, `redo`, `printwatches` and `connect` are handled
//! first and then fall through to the "Not connected" check; the deprecated forms
//! `get path watch`, `stat path watch`, `ls path watch` and `delete path version` are
//! rewritten as zkCli rewrites them.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use corral_client::{Client, Error, EventType, KeeperState, StateWatcher, WatchedEvent};
use tokio::task::JoinHandle;

use crate::error::CliError;
use crate::hub::WatchHub;
use crate::input::{ClientSlot, LineReader};
use crate::output::Output;

mod commands;

/// Every command zkCli 3.8 knows, with its option string, in the order its usage lists
/// them (Java's string order).
pub const COMMANDS: &[(&str, &str)] = &[
    (
        "addWatch",
        "[-m mode] path # optional mode is one of [PERSISTENT, PERSISTENT_RECURSIVE] - \
         default is PERSISTENT_RECURSIVE",
    ),
    ("addauth", "scheme auth"),
    ("close", ""),
    ("config", "[-c] [-w] [-s]"),
    ("connect", "host:port"),
    ("create", "[-s] [-e] [-c] [-t ttl] path [data] [acl]"),
    ("delete", "[-v version] path"),
    ("deleteall", "path [-b batch size]"),
    ("delquota", "[-n|-b|-N|-B] path"),
    ("get", "[-s] [-w] path"),
    ("getAcl", "[-s] path"),
    ("getAllChildrenNumber", "path"),
    ("getEphemerals", "path"),
    ("history", ""),
    ("listquota", "path"),
    ("ls", "[-s] [-w] [-R] path"),
    ("printwatches", "on|off"),
    ("quit", ""),
    (
        "reconfig",
        "[-s] [-v version] [[-file path] | [-members serverID=host:port1:port2;port3[,...]*]] \
         | [-add serverId=host:port1:port2;port3[,...]]* [-remove serverId[,...]*]",
    ),
    ("redo", "cmdno"),
    ("removewatches", "path [-c|-d|-a] [-l]"),
    ("set", "[-s] [-v version] path data"),
    ("setAcl", "[-s] [-v version] [-R] path acl"),
    ("setquota", "-n|-b|-N|-B val path"),
    ("stat", "[-w] path"),
    ("sync", "path"),
    ("version", ""),
    ("whoami", ""),
];

/// How the shell connects: zkCli's `-server`, `-timeout` and `-r`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The connect string (`host:port[,host:port][/chroot]`).
    pub server: String,
    /// The session timeout to ask for.
    pub session_timeout: Duration,
    /// Whether a read-only server is acceptable.
    pub read_only: bool,
}

/// What a command asks the loop to do next.
enum Flow {
    Continue,
    /// `quit`: stop, keeping the previous command's exit code.
    Quit,
}

type CmdResult = Result<Flow, CliError>;

/// The connection, as zkCli's `ZooKeeper.getState()` sees it.
enum Conn {
    /// Closed by `close`, or never opened.
    Closed,
    /// The server refused credentials given with `addauth`.
    AuthFailed,
    /// A connection attempt is under way.
    Connecting(JoinHandle<Result<Client, Error>>),
    /// The last attempt failed; the next command starts another (Java's client keeps
    /// trying, so the state stays CONNECTING).
    Retry,
    /// A session.
    Ready {
        client: Client,
        /// `None` once the session task has ended.
        states: Option<StateWatcher>,
        /// The last keeper state printed.
        last: KeeperState,
    },
}

/// What woke the idle shell.
enum Activity {
    Line(Option<String>),
    Connected(Result<Result<Client, Error>, tokio::task::JoinError>),
    StateChanged,
    StatesEnded,
    Events,
}

/// The zkCli-compatible shell; see the module docs.
pub struct Shell {
    settings: Settings,
    /// The current connect string (`connect` changes it); shown in the prompt.
    host: String,
    out: Output,
    conn: Conn,
    hub: WatchHub,
    history: HashMap<usize, String>,
    command_count: usize,
    exit_code: i32,
    print_watches: bool,
    /// The client the line editor's completer uses.
    slot: ClientSlot,
}

impl std::fmt::Debug for Shell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shell")
            .field("host", &self.host)
            .field("state", &self.state_name())
            .field("command_count", &self.command_count)
            .field("exit_code", &self.exit_code)
            .finish_non_exhaustive()
    }
}

fn usage_str(cmd: &str) -> String {
    let opts = COMMANDS
        .iter()
        .find(|(c, _)| *c == cmd)
        .map_or("", |(_, o)| o);
    format!("{cmd} {opts}")
}

/// Java's `Integer.decode`: decimal, `0x`/`#` hex or leading-zero octal, with a sign.
fn java_decode(s: &str) -> Option<i64> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (radix, digits) = if let Some(h) = body
        .strip_prefix("0x")
        .or_else(|| body.strip_prefix("0X"))
        .or_else(|| body.strip_prefix('#'))
    {
        (16, h)
    } else if body.len() > 1 && body.starts_with('0') {
        (8, &body[1..])
    } else {
        (10, body)
    };
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return None;
    }
    let v = i64::from_str_radix(digits, radix).ok()?;
    let v = if neg { -v } else { v };
    i32::try_from(v).ok().map(i64::from)
}

fn state_name(state: KeeperState) -> &'static str {
    match state {
        KeeperState::Disconnected => "Disconnected",
        KeeperState::SyncConnected => "SyncConnected",
        KeeperState::AuthFailed => "AuthFailed",
        KeeperState::ConnectedReadOnly => "ConnectedReadOnly",
        KeeperState::SaslAuthenticated => "SaslAuthenticated",
        KeeperState::Expired => "Expired",
        KeeperState::Closed => "Closed",
    }
}

fn event_type_name(t: EventType) -> &'static str {
    match t {
        EventType::None => "None",
        EventType::NodeCreated => "NodeCreated",
        EventType::NodeDeleted => "NodeDeleted",
        EventType::NodeDataChanged => "NodeDataChanged",
        EventType::NodeChildrenChanged => "NodeChildrenChanged",
        EventType::DataWatchRemoved => "DataWatchRemoved",
        EventType::ChildWatchRemoved => "ChildWatchRemoved",
        EventType::PersistentWatchRemoved => "PersistentWatchRemoved",
    }
}

/// `WatchedEvent.toString()` of a session state change.
fn state_event_line(state: KeeperState) -> String {
    format!(
        "WatchedEvent state:{} type:None path:null",
        state_name(state)
    )
}

/// `WatchedEvent.toString()` of a node event.
fn node_event_line(event_type: EventType, path: &str) -> String {
    format!(
        "WatchedEvent state:SyncConnected type:{} path:{path}",
        event_type_name(event_type)
    )
}

impl Shell {
    /// A shell that will connect with `settings`; nothing happens until
    /// [`Shell::run_interactive`] or [`Shell::run_one_shot`].
    pub fn new(settings: Settings) -> Shell {
        Shell {
            host: settings.server.clone(),
            settings,
            out: Output::new(),
            conn: Conn::Closed,
            hub: WatchHub::new(),
            history: HashMap::new(),
            command_count: 0,
            exit_code: 0,
            print_watches: true,
            slot: Arc::new(Mutex::new(None)),
        }
    }

    /// Runs zkCli's interactive loop: reads commands until the end of the input or
    /// `quit`, and returns the exit code (the last command's).
    ///
    /// With `terminal`, lines are edited with rustyline (history, completion, prompt);
    /// otherwise they are read from standard input as they come, without a prompt.
    pub async fn run_interactive(mut self, terminal: bool) -> i32 {
        self.out
            .out(&format!("Connecting to {}", self.settings.server));
        self.start_connect(self.settings.server.clone());
        self.out.out("Welcome to ZooKeeper!");
        let mut reader = if terminal {
            match LineReader::terminal(self.slot.clone(), tokio::runtime::Handle::current()) {
                Ok((reader, printer)) => {
                    self.out.set_printer(printer);
                    self.out.out("JLine support is enabled");
                    reader
                }
                Err(_) => {
                    self.out.out("JLine support is disabled");
                    LineReader::piped()
                }
            }
        } else {
            self.out.out("JLine support is disabled");
            LineReader::piped()
        };
        loop {
            let prompt = if terminal {
                self.prompt()
            } else {
                String::new()
            };
            reader.request(prompt);
            let Some(line) = self.next_line(&mut reader).await else {
                break;
            };
            if let Flow::Quit = self.execute_line(line).await {
                break;
            }
        }
        self.after_command();
        self.finish().await
    }

    /// Runs one command given on the command line (`corral-cli -server h:p ls /`) and
    /// returns its exit code.
    pub async fn run_one_shot(mut self, args: Vec<String>) -> i32 {
        self.out
            .out(&format!("Connecting to {}", self.settings.server));
        self.start_connect(self.settings.server.clone());
        self.process_cmd(args).await;
        self.after_command();
        self.finish().await
    }

    /// Ends the session without the Closed event (zkCli exits without closing) and
    /// returns the exit code.
    async fn finish(mut self) -> i32 {
        self.close_connection(false).await;
        self.exit_code
    }

    /// zkCli's prompt: `[zk: host(STATE) n] `.
    fn prompt(&self) -> String {
        format!(
            "[zk: {}({}) {}] ",
            self.host,
            self.state_name(),
            self.command_count
        )
    }

    /// `ZooKeeper.getState()` as zkCli shows it.
    fn state_name(&self) -> &'static str {
        match &self.conn {
            Conn::Closed => "CLOSED",
            Conn::AuthFailed => "AUTH_FAILED",
            Conn::Connecting(_) | Conn::Retry => "CONNECTING",
            Conn::Ready { last, .. } => match last {
                KeeperState::SyncConnected | KeeperState::SaslAuthenticated => "CONNECTED",
                KeeperState::ConnectedReadOnly => "CONNECTEDREADONLY",
                KeeperState::Disconnected => "CONNECTING",
                KeeperState::AuthFailed => "AUTH_FAILED",
                KeeperState::Expired | KeeperState::Closed => "CLOSED",
            },
        }
    }

    /// `State.isAlive()`: anything but CLOSED and AUTH_FAILED.
    fn is_alive(&self) -> bool {
        !matches!(self.state_name(), "CLOSED" | "AUTH_FAILED")
    }

    // ---------------------------------------------------------------------------------
    // Connection

    fn start_connect(&mut self, host: String) {
        self.host = host.clone();
        let builder = Client::builder(host)
            .with_session_timeout(self.settings.session_timeout)
            .with_connection_timeout(
                self.settings
                    .session_timeout
                    .clamp(Duration::from_secs(1), Duration::from_secs(10)),
            )
            .with_read_only(self.settings.read_only);
        self.conn = Conn::Connecting(tokio::spawn(builder.connect()));
    }

    /// Takes the result of a connection attempt; prints the SyncConnected event.
    fn on_connected(
        &mut self,
        result: Result<Result<Client, Error>, tokio::task::JoinError>,
    ) -> Result<Client, Error> {
        match result {
            Ok(Ok(client)) => {
                let states = client.state_watcher();
                let last = states.current().keeper_state;
                self.conn = Conn::Ready {
                    client: client.clone(),
                    states: Some(states),
                    last,
                };
                if let Ok(mut slot) = self.slot.lock() {
                    *slot = Some(client.clone());
                }
                self.print_event(&state_event_line(last));
                Ok(client)
            }
            Ok(Err(e)) => {
                self.conn = Conn::Retry;
                Err(if e == Error::Timeout {
                    Error::ConnectionLoss
                } else {
                    e
                })
            }
            Err(_) => {
                self.conn = Conn::Retry;
                Err(Error::ConnectionLoss)
            }
        }
    }

    /// The session's client, waiting for the connection if need be.
    async fn client(&mut self) -> Result<Client, Error> {
        loop {
            match &mut self.conn {
                Conn::Ready { client, .. } => return Ok(client.clone()),
                Conn::Connecting(handle) => {
                    let result = handle.await;
                    return self.on_connected(result);
                }
                Conn::Retry => {
                    let host = self.host.clone();
                    self.start_connect(host);
                }
                Conn::Closed | Conn::AuthFailed => return Err(Error::ClientClosed),
            }
        }
    }

    /// Closes the session (or abandons the attempt); prints the Closed event if asked
    /// and the connection was alive.
    async fn close_connection(&mut self, print: bool) {
        let alive = self.is_alive();
        match std::mem::replace(&mut self.conn, Conn::Closed) {
            Conn::Ready { client, .. } => {
                let _ = client.close().await;
            }
            Conn::Connecting(handle) => handle.abort(),
            Conn::Retry | Conn::Closed => {}
            Conn::AuthFailed => self.conn = Conn::AuthFailed,
        }
        if let Ok(mut slot) = self.slot.lock() {
            *slot = None;
        }
        self.hub.clear();
        if print && alive {
            self.print_event(&state_event_line(KeeperState::Closed));
        }
    }

    /// The server refused `addauth` credentials: like Java's client, the shell's session
    /// is then dead (AUTH_FAILED) and every further command says "Not connected".
    async fn on_auth_failed(&mut self) {
        self.print_event(&state_event_line(KeeperState::AuthFailed));
        self.close_connection(false).await;
        self.conn = Conn::AuthFailed;
    }

    // ---------------------------------------------------------------------------------
    // Events

    fn print_event(&mut self, line: &str) {
        if self.print_watches {
            self.out.event(line);
        }
    }

    /// Prints session state changes and delivered watch events.
    fn after_command(&mut self) {
        self.check_states();
        self.print_watch_events();
    }

    fn print_watch_events(&mut self) {
        for WatchedEvent {
            event_type, path, ..
        } in self.hub.drain()
        {
            self.print_event(&node_event_line(event_type, &path));
        }
    }

    /// Prints a change of the session's keeper state as the default watcher sees it.
    fn check_states(&mut self) {
        let Conn::Ready {
            states: Some(states),
            last,
            ..
        } = &mut self.conn
        else {
            return;
        };
        let now = states.current().keeper_state;
        if now == *last {
            return;
        }
        *last = now;
        match now {
            KeeperState::Expired => {
                self.hub.clear();
                self.print_event(&state_event_line(now));
            }
            // Our own close and auth failures are printed where they happen.
            KeeperState::Closed | KeeperState::AuthFailed => {}
            _ => self.print_event(&state_event_line(now)),
        }
    }

    /// Waits for the next input line, printing events that arrive meanwhile.
    async fn next_line(&mut self, reader: &mut LineReader) -> Option<String> {
        loop {
            self.out.set_editing(true);
            let activity = {
                let conn = &mut self.conn;
                let hub = &self.hub;
                tokio::select! {
                    biased;
                    line = reader.recv() => Activity::Line(line),
                    a = conn_activity(conn) => a,
                    () = hub.ready() => Activity::Events,
                }
            };
            match activity {
                Activity::Line(line) => {
                    self.out.set_editing(false);
                    return line;
                }
                Activity::Connected(result) => {
                    let _ = self.on_connected(result);
                }
                Activity::StatesEnded => {
                    if let Conn::Ready { states, .. } = &mut self.conn {
                        *states = None;
                    }
                    self.check_states();
                }
                Activity::StateChanged => self.check_states(),
                Activity::Events => self.print_watch_events(),
            }
        }
    }

    // ---------------------------------------------------------------------------------
    // Command loop

    /// zkCli's `executeLine`: records the line in the history and runs it.
    async fn execute_line(&mut self, line: String) -> Flow {
        if line.is_empty() {
            return Flow::Continue;
        }
        let args = crate::tokenize::split_command_line(&line);
        self.history.insert(self.command_count, line);
        // zkCli would run the previous command again for a line without any token (a
        // lone quote); the shell just skips it.
        let flow = if args.is_empty() {
            Flow::Continue
        } else {
            self.process_cmd(args).await
        };
        self.command_count += 1;
        self.after_command();
        flow
    }

    /// zkCli's `processCmd`: runs a command and records its exit code.
    fn process_cmd(&mut self, args: Vec<String>) -> Pin<Box<dyn Future<Output = Flow> + '_>> {
        Box::pin(async move {
            match self.process_zk_cmd(args).await {
                Ok(Flow::Continue) => {
                    self.exit_code = 0;
                    Flow::Continue
                }
                Ok(Flow::Quit) => Flow::Quit,
                Err(e) => {
                    self.exit_code = e.exit_code;
                    self.out.err(&e.message);
                    Flow::Continue
                }
            }
        })
    }

    fn usage(&mut self) {
        self.out
            .err("ZooKeeper -server host:port -client-configuration properties-file cmd args");
        for (cmd, opts) in COMMANDS {
            self.out.err(&format!("\t{cmd} {opts}"));
        }
    }

    /// zkCli's `processZKCmd`.
    async fn process_zk_cmd(&mut self, args: Vec<String>) -> CmdResult {
        let cmd = args[0].clone();
        if !COMMANDS.iter().any(|(c, _)| *c == cmd) {
            self.usage();
            return Err(CliError::command_not_found(&cmd));
        }
        match cmd.as_str() {
            "quit" => {
                self.close_connection(true).await;
                return Ok(Flow::Quit);
            }
            "redo" if args.len() >= 2 => {
                if let Flow::Quit = self.redo(&args[1]).await? {
                    return Ok(Flow::Quit);
                }
            }
            "history" => {
                let from = self.command_count.saturating_sub(10);
                for i in from..=self.command_count {
                    let line = self.history.get(&i).map_or("null", String::as_str);
                    let text = format!("{i} - {line}");
                    self.out.out(&text);
                }
            }
            "printwatches" => match args.get(1) {
                None => {
                    let state = if self.print_watches { "on" } else { "off" };
                    self.out.out(&format!("printwatches is {state}"));
                }
                Some(v) => self.print_watches = v == "on",
            },
            "connect" => {
                let host = args.get(1).cloned().unwrap_or_else(|| self.host.clone());
                if self.is_alive() {
                    self.close_connection(true).await;
                }
                self.start_connect(host);
            }
            _ => {}
        }
        if !self.is_alive() {
            self.out.out("Not connected");
            return Ok(Flow::Continue);
        }
        match cmd.as_str() {
            "create" => self.create(args).await,
            "get" => self.get(args).await,
            "set" => self.set(args).await,
            "stat" => self.stat(args).await,
            "ls" => self.ls(args).await,
            "delete" => self.delete(args).await,
            "deleteall" => self.delete_all(args).await,
            "setAcl" => self.set_acl(args).await,
            "getAcl" => self.get_acl(args).await,
            "addauth" => self.add_auth(args).await,
            "sync" => self.sync(args).await,
            "addWatch" => self.add_watch(args).await,
            "removewatches" => self.remove_watches(args).await,
            "getEphemerals" => self.get_ephemerals(args).await,
            "getAllChildrenNumber" => self.get_all_children_number(args).await,
            "whoami" => self.who_am_i().await,
            "config" => self.config(args).await,
            "close" => {
                self.close_connection(true).await;
                Ok(Flow::Continue)
            }
            "version" => {
                let v = format!(
                    "ZooKeeper CLI version: corral-cli {}",
                    env!("CARGO_PKG_VERSION")
                );
                self.out.out(&v);
                Ok(Flow::Continue)
            }
            "setquota" | "listquota" | "delquota" | "reconfig" => Err(CliError::new(format!(
                "{cmd} is not supported by corral-cli"
            ))),
            // history, redo, printwatches, connect: done above.
            _ => Ok(Flow::Continue),
        }
    }

    /// `redo n`: runs history entry n again, recorded as this command.
    async fn redo(&mut self, index: &str) -> CmdResult {
        let i = java_decode(index)
            .ok_or_else(|| CliError::new(format!("For input string: \"{index}\"")))?;
        if i < 0 || i as usize >= self.command_count {
            return Err(CliError::new("Command index out of range"));
        }
        let line = self.history.get(&(i as usize)).cloned().unwrap_or_default();
        let args = crate::tokenize::split_command_line(&line);
        if args.first().is_none_or(|c| c == "redo") {
            return Err(CliError::new("No redoing redos"));
        }
        self.history.insert(self.command_count, line);
        Ok(self.process_cmd(args).await)
    }
}

/// Waits for a connection attempt to finish or the session state to change.
async fn conn_activity(conn: &mut Conn) -> Activity {
    match conn {
        Conn::Connecting(handle) => Activity::Connected(handle.await),
        Conn::Ready {
            states: Some(states),
            ..
        } => match states.changed().await {
            Ok(_) => Activity::StateChanged,
            Err(_) => Activity::StatesEnded,
        },
        _ => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_follows_java() {
        assert_eq!(java_decode("12"), Some(12));
        assert_eq!(java_decode("0x1f"), Some(31));
        assert_eq!(java_decode("#10"), Some(16));
        assert_eq!(java_decode("010"), Some(8));
        assert_eq!(java_decode("-3"), Some(-3));
        assert_eq!(java_decode("0"), Some(0));
        assert_eq!(java_decode("x1"), None);
        assert_eq!(java_decode(""), None);
        assert_eq!(java_decode("99999999999"), None);
    }

    #[test]
    fn usage_strings_keep_the_trailing_blank() {
        assert_eq!(usage_str("whoami"), "whoami ");
        assert_eq!(usage_str("set"), "set [-s] [-v version] path data");
    }

    #[test]
    fn event_lines_match_java() {
        assert_eq!(
            state_event_line(KeeperState::SyncConnected),
            "WatchedEvent state:SyncConnected type:None path:null"
        );
        assert_eq!(
            node_event_line(EventType::NodeDataChanged, "/x"),
            "WatchedEvent state:SyncConnected type:NodeDataChanged path:/x"
        );
    }
}
