//! Parsing `host:port,host:port/chroot` and applying the chroot to paths.

use crate::Error;

/// Default client port when a host has none.
const DEFAULT_PORT: u16 = 2181;

/// A parsed connect string: the servers to try and an optional chroot.
///
/// ```
/// use corral_client::ConnectString;
/// let cs: ConnectString = "zk1:2181,zk2,[::1]:2182/app/a".parse().unwrap();
/// assert_eq!(cs.hosts(), ["zk1:2181", "zk2:2181", "[::1]:2182"]);
/// assert_eq!(cs.chroot(), Some("/app/a"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectString {
    hosts: Vec<String>,
    chroot: Chroot,
}

impl ConnectString {
    /// The servers, each as `host:port`, in the order given.
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// The chroot, if one was given (never `/`).
    pub fn chroot(&self) -> Option<&str> {
        self.chroot.0.as_deref()
    }

    pub(crate) fn into_parts(self) -> (Vec<String>, Chroot) {
        (self.hosts, self.chroot)
    }
}

impl std::str::FromStr for ConnectString {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let s = s.trim();
        let (hosts_part, chroot) = match s.find('/') {
            Some(i) => (&s[..i], Some(&s[i..])),
            None => (s, None),
        };
        let chroot = match chroot {
            None | Some("/") => Chroot(None),
            Some(c) => {
                corral_proto::path::validate_path(c, false)?;
                Chroot(Some(c.to_owned()))
            }
        };
        let mut hosts = Vec::new();
        for h in hosts_part
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
        {
            hosts.push(normalize_host(h)?);
        }
        if hosts.is_empty() {
            return Err(Error::bad_arguments(format!(
                "connect string {s:?} names no server"
            )));
        }
        Ok(ConnectString { hosts, chroot })
    }
}

/// `host` → `host:2181`; checks the port of `host:port` and `[v6]:port`.
fn normalize_host(h: &str) -> Result<String, Error> {
    let bad = || Error::bad_arguments(format!("invalid server address {h:?}"));
    let (host, port) = if let Some(rest) = h.strip_prefix('[') {
        let end = rest.find(']').ok_or_else(bad)?;
        let host = &h[..end + 2];
        match &rest[end + 1..] {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else {
        match h.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => (host, Some(port)),
            Some(_) => return Err(bad()),
            None => (h, None),
        }
    };
    if host.is_empty() {
        return Err(bad());
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => p.parse::<u16>().map_err(|_| bad())?,
    };
    Ok(format!("{host}:{port}"))
}

/// The chroot of a client: prefixed to every path sent, stripped from every path received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Chroot(Option<String>);

impl Chroot {
    /// The server path for a client path (which is already validated, so starts with `/`).
    pub(crate) fn prefix(&self, path: &str) -> String {
        match &self.0 {
            None => path.to_owned(),
            Some(root) if path == "/" => root.clone(),
            Some(root) => format!("{root}{path}"),
        }
    }

    /// The client path for a server path. Paths outside the chroot (which a server should
    /// never send) are returned unchanged, as ZooKeeper's Java client does.
    pub(crate) fn strip(&self, path: &str) -> String {
        match &self.0 {
            None => path.to_owned(),
            Some(root) => match path.strip_prefix(root.as_str()) {
                Some("") => "/".to_owned(),
                Some(rest) if rest.starts_with('/') => rest.to_owned(),
                _ => path.to_owned(),
            },
        }
    }

    /// Whether a server path lies inside the chroot.
    pub(crate) fn contains(&self, path: &str) -> bool {
        match &self.0 {
            None => true,
            Some(root) => match path.strip_prefix(root.as_str()) {
                Some(rest) => rest.is_empty() || rest.starts_with('/'),
                None => false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ConnectString, Error> {
        s.parse()
    }

    #[test]
    fn hosts_get_the_default_port() {
        let cs = parse("a, b:1 ,c:2").unwrap();
        assert_eq!(cs.hosts(), ["a:2181", "b:1", "c:2"]);
        assert_eq!(cs.chroot(), None);
    }

    #[test]
    fn ipv6_literals_keep_their_brackets() {
        let cs = parse("[::1]:9,[fe80::1]").unwrap();
        assert_eq!(cs.hosts(), ["[::1]:9", "[fe80::1]:2181"]);
    }

    #[test]
    fn bad_connect_strings_are_rejected() {
        for s in [
            "", "/app", "a:x", "a:99999", "::1:2", "[::1", "a:1/bad/", "a:1/b//c",
        ] {
            assert!(parse(s).is_err(), "{s:?} should be rejected");
        }
    }

    #[test]
    fn root_chroot_means_no_chroot() {
        assert_eq!(parse("a/").unwrap().chroot(), None);
    }

    #[test]
    fn chroot_prefixes_and_strips() {
        let (_, c) = parse("a/app").unwrap().into_parts();
        assert_eq!(c.prefix("/"), "/app");
        assert_eq!(c.prefix("/x/y"), "/app/x/y");
        assert_eq!(c.strip("/app"), "/");
        assert_eq!(c.strip("/app/x"), "/x");
        assert_eq!(c.strip("/apple"), "/apple");
        assert!(c.contains("/app/x") && c.contains("/app"));
        assert!(!c.contains("/apple") && !c.contains("/"));
    }

    #[test]
    fn no_chroot_is_identity() {
        let c = Chroot::default();
        assert_eq!(c.prefix("/a"), "/a");
        assert_eq!(c.strip("/a"), "/a");
        assert!(c.contains("/a"));
    }
}
