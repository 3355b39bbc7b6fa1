//! How much CPU a server spends: user and system time of its processes and
//! of every descendant, living or already reaped, read from /proc.

use std::collections::BTreeSet;

use anyhow::{Context, Result};

use crate::memory::tree;

/// /proc reports times in USER_HZ ticks, 100 per second on Linux.
const TICKS_PER_SECOND: f64 = 100.0;

/// utime + stime + cutime + cstime of one `/proc/PID/stat` line, in ticks:
/// the process itself and its children it has reaped (a forking server's
/// finished sessions).
fn ticks(stat: &str) -> Option<u64> {
    // After the name (which may hold spaces and parentheses) come the plain
    // fields from the third on: utime is the 14th, so the 12th here.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields
        .get(11..15)?
        .iter()
        .map(|f| f.parse::<u64>().ok())
        .sum()
}

/// CPU seconds spent so far by the trees under `roots` (a cluster's nodes).
pub fn of_trees(roots: &[u32]) -> Result<f64> {
    let mut pids = BTreeSet::new();
    for &root in roots {
        pids.extend(tree(root)?);
    }
    let mut total = 0;
    for pid in pids {
        // A process may exit between the listing and the read.
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        total += ticks(&stat).with_context(|| format!("unreadable /proc/{pid}/stat"))?;
    }
    Ok(total as f64 / TICKS_PER_SECOND)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_times_are_summed_whatever_the_name_holds() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 2 1 20 0 1 0";
        assert_eq!(ticks(stat), Some(13));
        assert_eq!(ticks("42 (short) S 1"), None);
    }

    #[test]
    fn this_process_has_spent_some_cpu() {
        let spin = std::time::Instant::now();
        let mut x = 0u64;
        while spin.elapsed() < std::time::Duration::from_millis(50) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0);
        assert!(of_trees(&[std::process::id()]).unwrap() > 0.0);
    }
}
