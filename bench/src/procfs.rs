//! Resource use of a local server process, read from `/proc/<pid>/{status,stat}`.

use std::sync::OnceLock;

use anyhow::{anyhow, Context, Result};
use serde::{Deserialize, Serialize};

/// One reading of a process's memory and CPU time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProcessSample {
    /// Resident set size (`VmRSS`), KiB.
    pub rss_kb: u64,
    /// Peak resident set size since start (`VmHWM`), KiB.
    pub rss_peak_kb: u64,
    /// User plus system CPU time since start (`utime + stime`), seconds.
    pub cpu_s: f64,
}

/// Reads `pid`'s memory and CPU time.
///
/// # Errors
///
/// When the process does not exist (or is not readable) or its files do not parse.
pub fn sample(pid: u32) -> Result<ProcessSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status (is --server-pid local?)"))?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let rss_kb = status_kb(&status, "VmRSS").ok_or_else(|| anyhow!("no VmRSS for {pid}"))?;
    let rss_peak_kb = status_kb(&status, "VmHWM").unwrap_or(rss_kb);
    let ticks = cpu_ticks(&stat).ok_or_else(|| anyhow!("malformed /proc/{pid}/stat"))?;
    Ok(ProcessSample {
        rss_kb,
        rss_peak_kb,
        cpu_s: ticks as f64 / clock_ticks_per_s(),
    })
}

/// The summed memory and CPU time of `pids` (e.g. the members of a local ensemble); `None`
/// for no PIDs.
///
/// # Errors
///
/// When any of the processes cannot be sampled.
pub fn sample_sum(pids: &[u32]) -> Result<Option<ProcessSample>> {
    let mut sum: Option<ProcessSample> = None;
    for &pid in pids {
        let s = sample(pid)?;
        sum = Some(match sum {
            None => s,
            Some(t) => ProcessSample {
                rss_kb: t.rss_kb + s.rss_kb,
                rss_peak_kb: t.rss_peak_kb + s.rss_peak_kb,
                cpu_s: t.cpu_s + s.cpu_s,
            },
        });
    }
    Ok(sum)
}

/// The value in KiB of a `Key:   123 kB` line of `/proc/<pid>/status`.
pub fn status_kb(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// `utime + stime` (clock ticks) from the text of `/proc/<pid>/stat`.
///
/// The command name (field 2) may contain spaces and parentheses, so fields are counted
/// from the last `)`: utime and stime are fields 14 and 15 of the line.
pub fn cpu_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state), so field N is at index N - 3.
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some(utime + stime)
}

/// `sysconf(_SC_CLK_TCK)`, asked of `getconf` once (the crate forbids `unsafe`); 100 if that
/// fails, which is its value on every mainstream Linux.
fn clock_ticks_per_s() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_are_found() {
        let status = "Name:\tjava\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n";
        assert_eq!(status_kb(status, "VmRSS"), Some(102_400));
        assert_eq!(status_kb(status, "VmHWM"), Some(204_800));
        assert_eq!(status_kb(status, "VmSwap"), None);
    }

    #[test]
    fn stat_ticks_skip_a_command_with_spaces() {
        let stat = "42 (my (odd) srv) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0";
        assert_eq!(cpu_ticks(stat), Some(300));
    }

    #[test]
    fn samples_of_several_processes_add_up() {
        let me = std::process::id();
        assert_eq!(sample_sum(&[]).unwrap(), None);
        let two = sample_sum(&[me, me]).unwrap().unwrap();
        assert!(two.rss_kb > 0 && two.cpu_s >= 0.0);
    }

    #[test]
    fn own_process_can_be_sampled() {
        let s = sample(std::process::id()).unwrap();
        assert!(s.rss_kb > 0 && s.rss_peak_kb >= s.rss_kb);
    }
}
