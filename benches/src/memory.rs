//! How much memory a server takes: its process and every descendant (a
//! forking server's sessions), read from /proc.

use std::collections::HashMap;

use anyhow::{bail, Context, Result};

/// Memory of a process tree, KiB. RSS counts pages shared between the
/// processes once per process; PSS splits them, so it is what the tree
/// really costs the machine.
#[derive(Debug, Default, Clone, Copy)]
pub struct TreeMemory {
    pub processes: usize,
    pub rss_kib: u64,
    pub pss_kib: u64,
}

/// `root` and all its descendants.
pub(crate) fn tree(root: u32) -> Result<Vec<u32>> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in std::fs::read_dir("/proc")? {
        let Some(pid) = entry?
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // A process may exit between the listing and the read.
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The name (field 2) may hold spaces and parentheses; fields after
        // the last ')' are plain: state, then the parent's pid.
        let parent = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(parent) = parent {
            children.entry(parent).or_default().push(pid);
        }
    }
    let mut found = vec![root];
    let mut next = 0;
    while next < found.len() {
        found.extend(children.get(&found[next]).into_iter().flatten());
        next += 1;
    }
    Ok(found)
}

/// A `Key:   123 kB` line's number.
fn field_kib(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

pub fn of_tree(root: u32) -> Result<TreeMemory> {
    if !std::path::Path::new(&format!("/proc/{root}")).exists() {
        bail!("no process {root}");
    }
    let mut total = TreeMemory::default();
    for pid in tree(root)? {
        let Ok(rollup) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) else {
            continue;
        };
        total.processes += 1;
        total.rss_kib += field_kib(&rollup, "Rss:").unwrap_or(0);
        total.pss_kib += field_kib(&rollup, "Pss:").unwrap_or(0);
    }
    Ok(total)
}

/// MemAvailable of /proc/meminfo, KiB.
pub fn available_kib() -> Result<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo")?;
    field_kib(&meminfo, "MemAvailable:").context("no MemAvailable in /proc/meminfo")
}

/// Raises this process's open-file limit to at least `wanted` (up to the
/// hard limit); fails with what to do when the hard limit is lower.
pub fn raise_open_files(wanted: u64) -> Result<()> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        bail!("getrlimit: {}", std::io::Error::last_os_error());
    }
    if limit.rlim_cur >= wanted {
        return Ok(());
    }
    if limit.rlim_max < wanted {
        bail!(
            "open-file hard limit {} is below the {wanted} this run needs: raise it (ulimit -Hn)",
            limit.rlim_max
        );
    }
    limit.rlim_cur = wanted;
    // SAFETY: setrlimit reads the struct we own.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        bail!("setrlimit: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_holds_the_root_and_its_children() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let me = std::process::id();
        let found = tree(me).unwrap();
        assert_eq!(found[0], me);
        assert!(found.contains(&child.id()), "{found:?}");
        let memory = of_tree(me).unwrap();
        assert!(memory.processes >= 2 && memory.rss_kib > 0 && memory.pss_kib > 0);
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn fields_are_read_in_kib() {
        let text = "Rss:               12345 kB\nPss:                 678 kB\n";
        assert_eq!(field_kib(text, "Rss:"), Some(12345));
        assert_eq!(field_kib(text, "Pss:"), Some(678));
        assert_eq!(field_kib(text, "Swap:"), None);
    }
}
