//! Four-letter words (`srvr`, `ruok`, `mntr`, ...) on a server's client port.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// The largest answer read; `mntr` and `srvr` are a few KiB at most.
const ANSWER_BYTES_MAX: u64 = 1 << 20;

/// A server's role, from the `Mode:` line of `srvr` (or `stat`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// The ensemble's leader.
    Leader,
    /// A voting follower.
    Follower,
    /// A non-voting observer.
    Observer,
    /// A single server.
    Standalone,
    /// Cut off from its quorum, serving reads only.
    ReadOnly,
    /// Anything else, verbatim.
    Other(String),
}

/// Sends `word` to `addr` (`host:port`) and returns the whole answer.
///
/// # Errors
///
/// When the connection fails or the answer does not come within `timeout`.
///
/// # Cancellation safety
///
/// Cancel-safe: dropping the future closes the connection.
pub async fn ask(addr: &str, word: &str, timeout: Duration) -> Result<String> {
    let talk = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(word.as_bytes()).await?;
        let mut answer = Vec::new();
        (&mut stream)
            .take(ANSWER_BYTES_MAX)
            .read_to_end(&mut answer)
            .await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&answer).into_owned())
    };
    tokio::time::timeout(timeout, talk)
        .await
        .with_context(|| format!("`{word}` to {addr}: no answer within {timeout:?}"))?
        .with_context(|| format!("`{word}` to {addr}"))
}

/// The `Mode:` of a `srvr`/`stat` answer; `None` when the server is not serving (ZooKeeper
/// then answers "This ZooKeeper instance is not currently serving requests").
pub fn parse_mode(srvr: &str) -> Option<Mode> {
    let mode = srvr
        .lines()
        .find_map(|l| l.strip_prefix("Mode:"))?
        .trim()
        .to_ascii_lowercase();
    Some(match mode.as_str() {
        "leader" => Mode::Leader,
        "follower" => Mode::Follower,
        "observer" => Mode::Observer,
        "standalone" => Mode::Standalone,
        "read-only" | "readonly" => Mode::ReadOnly,
        _ => Mode::Other(mode),
    })
}

/// The numeric `key value` lines of a `mntr` answer (`zk_znode_count`, ...).
pub fn parse_mntr(mntr: &str) -> std::collections::BTreeMap<String, f64> {
    mntr.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let (k, v) = (it.next()?, it.next()?);
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

/// The server's mode, or `None` when it does not answer or is not serving.
pub async fn mode(addr: &str, timeout: Duration) -> Option<Mode> {
    ask(addr, "srvr", timeout)
        .await
        .ok()
        .and_then(|a| parse_mode(&a))
}

/// Waits until `addr` serves (its `srvr` answer has a `Mode:` line), polling every 50 ms.
///
/// # Errors
///
/// When it does not within `timeout`.
pub async fn wait_serving(addr: &str, timeout: Duration) -> Result<Mode> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Some(m) = mode(addr, left.min(Duration::from_secs(2))).await {
            return Ok(m);
        }
        if Instant::now() >= deadline {
            bail!("{addr} is not serving after {timeout:?} (no `Mode:` in its `srvr` answer)");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_lines_parse() {
        let zk =
            "Zookeeper version: 3.8.0\nLatency min/avg/max: 0/0.0/0\nMode: leader\nNode count: 5\n";
        assert_eq!(parse_mode(zk), Some(Mode::Leader));
        assert_eq!(parse_mode("Mode: follower\n"), Some(Mode::Follower));
        assert_eq!(parse_mode("Mode: standalone"), Some(Mode::Standalone));
        assert_eq!(parse_mode("Mode: read-only\n"), Some(Mode::ReadOnly));
        assert_eq!(
            parse_mode("Mode: participant\n"),
            Some(Mode::Other("participant".into()))
        );
        let m = parse_mntr(
            "zk_version\t3.8.0-x, built\nzk_znode_count\t1005\nzk_server_state\tleader\n",
        );
        assert_eq!(m.get("zk_znode_count"), Some(&1005.0));
        assert_eq!(m.len(), 1);
        assert_eq!(
            parse_mode("This ZooKeeper instance is not currently serving requests\n"),
            None
        );
    }
}
