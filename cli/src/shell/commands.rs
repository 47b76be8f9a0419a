//! The commands themselves (`create`, `ls`, ...), each as zkCli's `CliCommand` of the
//! same name: option parsing, checks in the same order, the same output and messages.

use std::collections::HashMap;
use std::time::Duration;

use corral_client::{
    AddWatchMode, Client, CreateMode, CreateOptions, Error, EventType, WatchedEvent, WatcherType,
};

use super::{node_event_line, usage_str, CmdResult, Flow, Shell};
use crate::acl::parse_acl;
use crate::error::{keeper_message, CliError};
use crate::format::{acl_lines, java_list, java_sort, stat_lines};
use crate::hub::WatchKind;
use crate::options::{flag, parse, valued, OptSpec, Parsed};
use crate::path::{validate_create_path, validate_path};

/// The largest TTL ZooKeeper accepts, in ms (`EphemeralType.TTL.maxValue()`).
const MAX_TTL_MS: i64 = 0xFF_FFFF_FFFF;

/// The ensemble configuration node, which `config` reads.
const CONFIG_NODE: &str = "/zookeeper/config";

/// What `visit_subtree` does at each node.
enum Visit {
    /// `ls -R`: print the path.
    Print,
    /// `setAcl -R`: set this ACL (with this version) on every node.
    SetAcl(Vec<corral_client::Acl>, Option<i32>),
}

fn usage_error(cmd: &str) -> CliError {
    CliError::new(usage_str(cmd))
}

/// Java's `Integer.parseInt` for an option value.
fn parse_int(value: Option<&str>, option: char) -> Result<i32, CliError> {
    value
        .and_then(|v| v.parse::<i32>().ok())
        .ok_or_else(|| CliError::new(format!("-{option} argument must be an int value")))
}

/// The version of `-v`, -1 (any) when absent.
fn version_of(p: &Parsed) -> Result<Option<i32>, CliError> {
    if p.has('v') {
        parse_int(p.value('v'), 'v').map(Some)
    } else {
        Ok(None)
    }
}

/// `ConfigUtils.getClientConfigStr`: `<version> <host:port>,...` from a dynamic config.
fn client_config_str(config: &str) -> String {
    let mut version = String::new();
    let mut servers: Vec<(String, String)> = Vec::new();
    for line in config.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        if key == "version" {
            version = value.to_owned();
        }
        if let Some(id) = key.strip_prefix("server.") {
            let client = value.split_once(';').map(|(_, c)| {
                let c = c.trim();
                if c.contains(':') {
                    c.to_owned()
                } else {
                    format!("0.0.0.0:{c}")
                }
            });
            servers.push((id.to_owned(), client.unwrap_or_default()));
        }
    }
    servers.sort();
    let hosts: Vec<String> = servers.into_iter().map(|(_, c)| c).collect();
    format!("{version} {}", hosts.join(","))
}
impl Shell {
    /// The client for a command on `path`; a failed connection reads as zkCli's
    /// ConnectionLoss for that path.
    async fn client_for(&mut self, path: Option<&str>) -> Result<Client, CliError> {
        self.client()
            .await
            .map_err(|e| CliError::new(keeper_message(&e, path)))
    }

    fn print_stat(&mut self, stat: &corral_client::Stat) {
        for line in stat_lines(stat) {
            self.out.out(&line);
        }
    }

    pub(super) async fn create(&mut self, args: Vec<String>) -> CmdResult {
        const SPECS: &[OptSpec] = &[flag('e'), flag('s'), flag('c'), valued('t')];
        let p = parse(SPECS, &args)?;
        if p.args.len() < 2 {
            return Err(usage_error("create"));
        }
        let (e, s, c, t) = (p.has('e'), p.has('s'), p.has('c'), p.has('t'));
        if c && (e || s) {
            return Err(CliError::new(
                "-c cannot be combined with -s or -e. Containers cannot be ephemeral or \
                 sequential.",
            ));
        }
        let ttl = if t {
            p.value('t')
                .and_then(|v| v.parse::<i64>().ok())
                .ok_or_else(|| CliError::new("-t argument must be a long value"))?
        } else {
            0
        };
        if t && e {
            return Err(CliError::new("TTLs cannot be used with Ephemeral znodes"));
        }
        if t && c {
            return Err(CliError::new("TTLs cannot be used with Container znodes"));
        }
        let mode = match (e, s, c, t) {
            (true, true, _, _) => CreateMode::EphemeralSequential,
            (true, false, _, _) => CreateMode::Ephemeral,
            (false, true, _, true) => CreateMode::PersistentSequentialWithTtl,
            (false, true, _, false) => CreateMode::PersistentSequential,
            (false, false, true, _) => CreateMode::Container,
            (false, false, false, true) => CreateMode::PersistentWithTtl,
            (false, false, false, false) => CreateMode::Persistent,
        };
        if t && (ttl <= 0 || ttl > MAX_TTL_MS) {
            return Err(CliError::new(format!(
                "ttl must be positive and cannot be larger than: {MAX_TTL_MS}"
            )));
        }
        let path = p.args[1].clone();
        // zkCli sends null data when none is given; corral-client can only send bytes,
        // so that is empty data here.
        let data = p
            .args
            .get(2)
            .map(|d| d.as_bytes().to_vec())
            .unwrap_or_default();
        let mut options = CreateOptions::new(mode);
        let mut acl_given_but_empty = false;
        if let Some(text) = p.args.get(3) {
            let parsed = parse_acl(text);
            for w in &parsed.warnings {
                self.out.err(w);
            }
            acl_given_but_empty = parsed.acl.is_empty();
            options = options.with_acl(parsed.acl);
        }
        if t {
            options = options.with_ttl(Duration::from_millis(ttl as u64));
        }
        validate_create_path(&path, mode.is_sequential())?;
        if acl_given_but_empty {
            // Java's client refuses an empty ACL before sending, with no path.
            self.out.err(&keeper_message(&Error::InvalidAcl, None));
            return Err(CliError::keeper(&Error::InvalidAcl, None));
        }
        let client = self.client_for(Some(&path)).await?;
        match client.create(&path, &data, &options).await {
            Ok((created, _)) => {
                self.out.err(&format!("Created {created}"));
                Ok(Flow::Continue)
            }
            Err(err @ Error::EphemeralOnLocalSession) => {
                self.out
                    .err("Unable to create ephemeral node on a local session");
                Err(CliError::keeper(&err, Some(&path)))
            }
            Err(err @ Error::InvalidAcl) => {
                self.out.err(&keeper_message(&err, Some(&path)));
                Err(CliError::keeper(&err, Some(&path)))
            }
            Err(err) => Err(CliError::keeper(&err, Some(&path))),
        }
    }

    /// Parses `get`/`stat`/`ls` options, applying zkCli's rewrite of the deprecated
    /// `cmd path watch` form (the third token becomes `-w`).
    fn parse_with_watch_compat(
        &mut self,
        specs: &[OptSpec],
        mut args: Vec<String>,
        min_args: usize,
        deprecation: &str,
    ) -> Result<Parsed, CliError> {
        let cmd = args[0].clone();
        let p = parse(specs, &args)?;
        if p.args.len() < min_args {
            return Err(usage_error(&cmd));
        }
        if p.args.len() > 2 {
            args[2] = "-w".to_owned();
            self.out.err(deprecation);
            return parse(specs, &args);
        }
        Ok(p)
    }

    pub(super) async fn get(&mut self, args: Vec<String>) -> CmdResult {
        let p = self.parse_with_watch_compat(
            &[flag('s'), flag('w')],
            args,
            2,
            "'get path [watch]' has been deprecated. Please use 'get [-s] [-w] path' instead.",
        )?;
        let path = p.args[1].clone();
        validate_path(&path)?;
        let client = self.client_for(Some(&path)).await?;
        let result = if p.has('w') {
            client.get_and_watch_data(&path).await.map(|(d, s, w)| {
                self.hub.add_oneshot(&path, WatchKind::Data, w);
                (d, s)
            })
        } else {
            client.get_data(&path).await
        };
        let (data, stat) = result.map_err(|e| CliError::keeper(&e, Some(&path)))?;
        self.out.out(&String::from_utf8_lossy(&data));
        if p.has('s') {
            self.print_stat(&stat);
        }
        Ok(Flow::Continue)
    }

    pub(super) async fn set(&mut self, args: Vec<String>) -> CmdResult {
        let p = parse(&[flag('s'), valued('v')], &args)?;
        if p.args.len() < 3 {
            return Err(usage_error("set"));
        }
        let (path, data) = (p.args[1].clone(), p.args[2].clone());
        let version = version_of(&p)?;
        validate_path(&path)?;
        let client = self.client_for(Some(&path)).await?;
        let stat = client
            .set_data(&path, data.as_bytes(), version)
            .await
            .map_err(|e| CliError::keeper(&e, Some(&path)))?;
        if p.has('s') {
            self.print_stat(&stat);
        }
        Ok(Flow::Continue)
    }

    pub(super) async fn stat(&mut self, args: Vec<String>) -> CmdResult {
        let p = self.parse_with_watch_compat(
            &[flag('w')],
            args,
            2,
            "'stat path [watch]' has been deprecated. Please use 'stat [-w] path' instead.",
        )?;
        let path = p.args[1].clone();
        validate_path(&path)?;
        let client = self.client_for(Some(&path)).await?;
        let stat = if p.has('w') {
            client.exists_and_watch(&path).await.map(|(s, w)| {
                self.hub.add_oneshot(&path, WatchKind::Data, w);
                s
            })
        } else {
            client.exists(&path).await
        };
        match stat.map_err(|e| CliError::keeper(&e, Some(&path)))? {
            Some(stat) => {
                self.print_stat(&stat);
                Ok(Flow::Continue)
            }
            None => Err(CliError::keeper(&Error::NoNode, Some(&path))),
        }
    }

    pub(super) async fn ls(&mut self, args: Vec<String>) -> CmdResult {
        const SPECS: &[OptSpec] = &[flag('?'), flag('s'), flag('w'), flag('R')];
        let first = parse(SPECS, &args)?;
        if first.has('?') {
            for line in [
                "usage: ls [options] path",
                " -?   help",
                " -R   recurse",
                " -s   stat",
                " -w   watch",
            ] {
                self.out.out(line);
            }
        }
        let p = self.parse_with_watch_compat(
            SPECS,
            args,
            0,
            "'ls path [watch]' has been deprecated. Please use 'ls [-w] path' instead.",
        )?;
        if p.args.len() < 2 {
            return Err(usage_error("ls"));
        }
        let path = p.args[1].clone();
        let watch = p.has('w');
        if p.has('R') {
            return self.visit_subtree(&path, watch, &Visit::Print).await;
        }
        validate_path(&path)?;
        let client = self.client_for(Some(&path)).await?;
        let (mut children, stat) = match (watch, p.has('s')) {
            (false, false) => client.get_children(&path).await.map(|c| (c, None)),
            (false, true) => client
                .get_children_with_stat(&path)
                .await
                .map(|(c, s)| (c, Some(s))),
            (true, false) => client.get_and_watch_children(&path).await.map(|(c, w)| {
                self.hub.add_oneshot(&path, WatchKind::Child, w);
                (c, None)
            }),
            (true, true) => {
                client
                    .get_and_watch_children_with_stat(&path)
                    .await
                    .map(|(c, s, w)| {
                        self.hub.add_oneshot(&path, WatchKind::Child, w);
                        (c, Some(s))
                    })
            }
        }
        .map_err(|e| CliError::keeper(&e, Some(&path)))?;
        java_sort(&mut children);
        self.out.out(&java_list(&children));
        if let Some(stat) = stat {
            self.print_stat(&stat);
        }
        Ok(Flow::Continue)
    }

    /// `ZKUtil.visitSubTreeDFS`: visits the root, then each node's sorted children
    /// before descending into them, doing `action` at each. With `watch`, a data watch on
    /// the root and a child watch on every node. A node deleted meanwhile is skipped; any
    /// other failure to list children ends the walk with that node's error.
    async fn visit_subtree(&mut self, root: &str, watch: bool, action: &Visit) -> CmdResult {
        validate_path(root)?;
        let client = self.client_for(Some(root)).await?;
        if watch {
            let (_, _, w) = client
                .get_and_watch_data(root)
                .await
                .map_err(|e| CliError::keeper(&e, Some(root)))?;
            self.hub.add_oneshot(root, WatchKind::Data, w);
        } else {
            client
                .get_data(root)
                .await
                .map_err(|e| CliError::keeper(&e, Some(root)))?;
        }
        self.visit_node(&client, root, action).await;
        let mut stack = vec![root.to_owned()];
        while let Some(node) = stack.pop() {
            let listed = if watch {
                client.get_and_watch_children(&node).await.map(|(c, w)| {
                    self.hub.add_oneshot(&node, WatchKind::Child, w);
                    c
                })
            } else {
                client.get_children(&node).await
            };
            let mut children = match listed {
                Ok(c) => c,
                Err(Error::NoNode) => continue,
                Err(e) => return Err(CliError::keeper(&e, Some(&node))),
            };
            java_sort(&mut children);
            let base = if node == "/" { "" } else { node.as_str() };
            let paths: Vec<String> = children.iter().map(|c| format!("{base}/{c}")).collect();
            for p in &paths {
                self.visit_node(&client, p, action).await;
            }
            stack.extend(paths.into_iter().rev());
        }
        Ok(Flow::Continue)
    }

    async fn visit_node(&mut self, client: &Client, path: &str, action: &Visit) {
        match action {
            Visit::Print => self.out.out(path),
            Visit::SetAcl(acl, version) => {
                let result = if acl.is_empty() {
                    Err((Error::InvalidAcl, None))
                } else {
                    client
                        .set_acl(path, acl, *version)
                        .await
                        .map(|_| ())
                        .map_err(|e| (e, Some(path)))
                };
                // zkCli prints these without a newline.
                if let Err((e, at)) = result {
                    self.out.out_raw(&keeper_message(&e, at));
                }
            }
        }
    }

    pub(super) async fn delete(&mut self, args: Vec<String>) -> CmdResult {
        let p = parse(&[valued('v')], &args)?;
        if p.args.len() < 2 {
            return Err(usage_error("delete"));
        }
        if p.args.len() > 2 {
            self.out.err(
                "'delete path [version]' has been deprecated. Please use 'delete [-v version] \
                 path' instead.",
            );
        }
        let path = p.args[1].clone();
        let version = version_of(&p)?;
        validate_path(&path)?;
        let client = self.client_for(Some(&path)).await?;
        client
            .delete(&path, version)
            .await
            .map_err(|e| CliError::keeper(&e, Some(&path)))?;
        Ok(Flow::Continue)
    }

    /// `deleteall`: lists the subtree breadth-first, then deletes it leaves first in
    /// atomic batches (multi) of `-b` operations (default 1000).
    pub(super) async fn delete_all(&mut self, args: Vec<String>) -> CmdResult {
        let p = parse(&[valued('b')], &args)?;
        if p.args.len() < 2 {
            return Err(usage_error("deleteall"));
        }
        let batch = if p.has('b') {
            parse_int(p.value('b'), 'b')?
        } else {
            1000
        };
        let root = p.args[1].clone();
        validate_path(&root)?;
        let client = self.client_for(Some(&root)).await?;
        let mut tree = vec![root.clone()];
        let mut next = 0;
        while next < tree.len() {
            let node = tree[next].clone();
            next += 1;
            let children = client
                .get_children(&node)
                .await
                .map_err(|e| CliError::keeper(&e, Some(&node)))?;
            let base = if node == "/" { "" } else { node.as_str() };
            tree.extend(children.iter().map(|c| format!("{base}/{c}")));
        }
        let mut ok = true;
        let mut ops = client.multi();
        for (i, path) in tree.iter().enumerate().rev() {
            ops = ops.delete(path, None);
            if ops.len() as i64 == i64::from(batch) || i == 0 {
                if !ok {
                    break;
                }
                let sent = std::mem::replace(&mut ops, client.multi());
                ok = sent.commit().await.is_ok();
            }
        }
        // One multi fires many notifications; print them in the server's order.
        let events = order_multi_delete_events(self.hub.drain(), &tree);
        for WatchedEvent {
            event_type, path, ..
        } in events
        {
            self.print_event(&node_event_line(event_type, &path));
        }
        if !ok {
            self.out
                .err("Failed to delete some node(s) in the subtree!");
        }
        Ok(Flow::Continue)
    }

    pub(super) async fn set_acl(&mut self, args: Vec<String>) -> CmdResult {
        let p = parse(&[flag('s'), valued('v'), flag('R')], &args)?;
        if p.args.len() < 3 {
            return Err(usage_error("setAcl"));
        }
        let path = p.args[1].clone();
        let parsed = parse_acl(&p.args[2]);
        for w in &parsed.warnings {
            self.out.err(w);
        }
        let acl = parsed.acl;
        let version = version_of(&p)?;
        if p.has('R') {
            return self
                .visit_subtree(&path, false, &Visit::SetAcl(acl, version))
                .await;
        }
        validate_path(&path)?;
        if acl.is_empty() {
            return Err(CliError::keeper(&Error::InvalidAcl, None));
        }
        let client = self.client_for(Some(&path)).await?;
        let stat = client
            .set_acl(&path, &acl, version)
            .await
            .map_err(|e| CliError::keeper(&e, Some(&path)))?;
        if p.has('s') {
            self.print_stat(&stat);
        }
        Ok(Flow::Continue)
    }

    pub(super) async fn get_acl(&mut self, args: Vec<String>) -> CmdResult {
        let p = parse(&[flag('s')], &args)?;
        if p.args.len() < 2 {
            return Err(usage_error("getAcl"));
        }
        let path = p.args[1].clone();
        validate_path(&path)?;
        let client = self.client_for(Some(&path)).await?;
        let (acl, stat) = client
            .get_acl(&path)
            .await
            .map_err(|e| CliError::keeper(&e, Some(&path)))?;
        for entry in &acl {
            for line in acl_lines(entry) {
                self.out.out(&line);
            }
        }
        if p.has('s') {
            self.print_stat(&stat);
        }
        Ok(Flow::Continue)
    }

    /// `addauth`: zkCli does not wait for the answer; a refusal shows as the AuthFailed
    /// event and ends the session.
    pub(super) async fn add_auth(&mut self, args: Vec<String>) -> CmdResult {
        let p = parse(&[], &args)?;
        if p.args.len() < 2 {
            return Err(usage_error("addauth"));
        }
        let scheme = p.args[1].clone();
        let auth = p
            .args
            .get(2)
            .map(|a| a.as_bytes().to_vec())
            .unwrap_or_default();
        let Ok(client) = self.client().await else {
            return Ok(Flow::Continue);
        };
        if let Err(Error::AuthFailed) = client.add_auth(&scheme, &auth).await {
            self.on_auth_failed().await;
        }
        Ok(Flow::Continue)
    }

    pub(super) async fn sync(&mut self, args: Vec<String>) -> CmdResult {
        let p = parse(&[], &args)?;
        if p.args.len() < 2 {
            return Err(usage_error("sync"));
        }
        let path = p.args[1].clone();
        validate_path(&path)?;
        let client = self.client_for(Some(&path)).await?;
        match client.sync(&path).await {
            Ok(()) => self.out.out("Sync is OK"),
            Err(e) => {
                let rc = e.code().map_or(-4, |c| c.code());
                self.out.out(&format!("Sync has failed. rc={rc}"));
            }
        }
        Ok(Flow::Continue)
    }

    /// `addWatch [-m mode] path`; the mode defaults to PERSISTENT_RECURSIVE each time
    /// (zkCli 3.8 keeps the previous command's mode instead, a bug not copied).
    pub(super) async fn add_watch(&mut self, args: Vec<String>) -> CmdResult {
        let p = parse(&[valued('m')], &args)?;
        if p.args.len() != 2 {
            return Err(usage_error("addWatch"));
        }
        let mode = match p.value('m').map(str::to_uppercase).as_deref() {
            None | Some("PERSISTENT_RECURSIVE") => AddWatchMode::PersistentRecursive,
            Some("PERSISTENT") => AddWatchMode::Persistent,
            Some(_) => return Err(usage_error("addWatch")),
        };
        let path = p.args[1].clone();
        validate_path(&path)?;
        let client = self.client_for(Some(&path)).await?;
        let watcher = client
            .add_watch(&path, mode)
            .await
            .map_err(|e| CliError::keeper(&e, Some(&path)))?;
        self.hub
            .add_persistent(&path, mode == AddWatchMode::PersistentRecursive, watcher);
        Ok(Flow::Continue)
    }

    /// `removewatches path [-c|-d|-a] [-l]`: removes this shell's watches of the kind on
    /// the server and locally, then prints the `*WatchRemoved` events Java's client makes.
    /// With `-l` the local watches go even when the server fails.
    pub(super) async fn remove_watches(&mut self, args: Vec<String>) -> CmdResult {
        let p = parse(&[flag('c'), flag('d'), flag('a'), flag('l')], &args)?;
        if p.args.len() < 2 {
            return Err(usage_error("removewatches"));
        }
        let kind = if p.has('c') {
            WatcherType::Children
        } else if p.has('d') {
            WatcherType::Data
        } else {
            WatcherType::Any
        };
        let local = p.has('l');
        let path = p.args[1].clone();
        validate_path(&path)?;
        let client = self.client_for(Some(&path)).await?;
        // Events delivered before the removal print first.
        self.print_watch_events();
        // The client tells removed one-shot watchers with *WatchRemoved events; the hub
        // drops them unread and prints Java's events instead.
        let result = client.remove_watches(&path, kind).await;
        if let Err(e) = result {
            if !local || !self.hub.has(&path, kind) {
                return Err(CliError::new(keeper_message(&e, Some(&path))));
            }
        }
        let removed = self.hub.remove(&path, kind);
        if !removed.any() {
            return Err(CliError::new(keeper_message(
                &Error::NoWatcher,
                Some(&path),
            )));
        }
        for (hit, t) in [
            (removed.child, EventType::ChildWatchRemoved),
            (removed.data, EventType::DataWatchRemoved),
            (removed.persistent, EventType::PersistentWatchRemoved),
        ] {
            if hit {
                self.print_event(&node_event_line(t, &path));
            }
        }
        Ok(Flow::Continue)
    }

    pub(super) async fn get_ephemerals(&mut self, args: Vec<String>) -> CmdResult {
        let p = parse(&[], &args)?;
        let prefix = match p.args.get(1) {
            Some(path) => {
                validate_path(path)?;
                path.clone()
            }
            None => "/".to_owned(),
        };
        let client = self.client_for(Some(&prefix)).await?;
        let paths = client
            .get_ephemerals(&prefix)
            .await
            .map_err(|e| CliError::keeper(&e, Some(&prefix)))?;
        self.out.out(&java_list(&paths));
        Ok(Flow::Continue)
    }

    pub(super) async fn get_all_children_number(&mut self, args: Vec<String>) -> CmdResult {
        let p = parse(&[], &args)?;
        if p.args.len() < 2 {
            return Err(usage_error("getAllChildrenNumber"));
        }
        let path = p.args[1].clone();
        validate_path(&path)?;
        let client = self.client_for(Some(&path)).await?;
        let n = client
            .get_all_children_number(&path)
            .await
            .map_err(|e| CliError::keeper(&e, Some(&path)))?;
        self.out.out(&n.to_string());
        Ok(Flow::Continue)
    }

    pub(super) async fn who_am_i(&mut self) -> CmdResult {
        let client = self.client_for(None).await?;
        let ids = client
            .who_am_i()
            .await
            .map_err(|e| CliError::new(keeper_message(&e, None)))?;
        self.out.out("Auth scheme: User");
        for id in ids {
            self.out.out(&format!("{}: {}", id.auth_scheme, id.user));
        }
        Ok(Flow::Continue)
    }

    /// `config [-c] [-w] [-s]`: the data of /zookeeper/config. With `-w` the watch is
    /// set through `get_and_watch_data`, which misses it under a chroot (the client has
    /// no watching twin of `get_config`).
    pub(super) async fn config(&mut self, args: Vec<String>) -> CmdResult {
        let p = parse(&[flag('c'), flag('w'), flag('s')], &args)?;
        let client = self.client_for(Some(CONFIG_NODE)).await?;
        let result = if p.has('w') {
            client
                .get_and_watch_data(CONFIG_NODE)
                .await
                .map(|(d, s, w)| {
                    self.hub.add_oneshot(CONFIG_NODE, WatchKind::Data, w);
                    (d, s)
                })
        } else {
            client.get_config().await
        };
        let (data, stat) = result.map_err(|e| CliError::keeper(&e, Some(CONFIG_NODE)))?;
        let text = String::from_utf8_lossy(&data);
        if p.has('c') {
            self.out.out(&client_config_str(&text));
        } else {
            self.out.out(&text);
        }
        if p.has('s') {
            self.print_stat(&stat);
        }
        Ok(Flow::Continue)
    }
}

/// Puts the events of a `deleteall` in the order the server sent them.
///
/// The hub orders events by the first delivery to each watcher, so a persistent watcher
/// that got several events of one multi would have them all placed together. The server
/// applies the deletes in order (`tree` reversed), each firing NodeDeleted of the node,
/// then NodeChildrenChanged of its parent; the n-th NodeChildrenChanged of a parent belongs
/// to the n-th deleted child. Other events keep their place after those.
fn order_multi_delete_events(events: Vec<WatchedEvent>, tree: &[String]) -> Vec<WatchedEvent> {
    let order: HashMap<&str, usize> = tree
        .iter()
        .rev()
        .enumerate()
        .map(|(i, p)| (p.as_str(), i))
        .collect();
    let mut children_deleted: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, p) in tree.iter().rev().enumerate() {
        if p != "/" {
            let parent = match p.rfind('/') {
                Some(0) => "/".to_owned(),
                Some(cut) => p[..cut].to_owned(),
                None => continue,
            };
            children_deleted.entry(parent).or_default().push(i);
        }
    }
    let mut seen_changed: HashMap<String, usize> = HashMap::new();
    let mut keyed: Vec<((usize, u8), WatchedEvent)> = events
        .into_iter()
        .map(|e| {
            let key = match e.event_type {
                EventType::NodeDeleted => order.get(e.path.as_str()).map(|i| (*i, 0)),
                EventType::NodeChildrenChanged => {
                    let n = seen_changed.entry(e.path.clone()).or_insert(0);
                    *n += 1;
                    children_deleted
                        .get(&e.path)
                        .and_then(|v| v.get(*n - 1))
                        .map(|i| (*i, 1))
                }
                _ => None,
            };
            (key.unwrap_or((usize::MAX, 0)), e)
        })
        .collect();
    keyed.sort_by_key(|(k, _)| *k);
    keyed.into_iter().map(|(_, e)| e).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_delete_events_follow_the_delete_order() {
        let ev = |t, p: &str| WatchedEvent {
            event_type: t,
            path: p.to_owned(),
            zxid: None,
        };
        let tree: Vec<String> = ["/d", "/d/a", "/d/c", "/d/a/b"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let drained = vec![
            ev(EventType::NodeDeleted, "/d/a/b"),
            ev(EventType::NodeDeleted, "/d/c"),
            ev(EventType::NodeDeleted, "/d/a"),
            ev(EventType::NodeDeleted, "/d"),
            ev(EventType::NodeChildrenChanged, "/d/a"),
            ev(EventType::NodeChildrenChanged, "/d"),
        ];
        let got: Vec<String> = order_multi_delete_events(drained, &tree)
            .into_iter()
            .map(|e| format!("{:?} {}", e.event_type, e.path))
            .collect();
        assert_eq!(
            got,
            [
                "NodeDeleted /d/a/b",
                "NodeChildrenChanged /d/a",
                "NodeDeleted /d/c",
                "NodeChildrenChanged /d",
                "NodeDeleted /d/a",
                "NodeDeleted /d",
            ]
        );
    }

    #[test]
    fn client_config_lists_client_addresses() {
        let cfg = "server.1=a:2888:3888:participant;127.0.0.1:2181\n\
                   server.2=b:2888:3888:participant;2182\nversion=100000000\n";
        assert_eq!(
            client_config_str(cfg),
            "100000000 127.0.0.1:2181,0.0.0.0:2182"
        );
        assert_eq!(client_config_str(""), " ");
    }
}
