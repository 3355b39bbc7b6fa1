//! Turns the scenarios' output lines (`label scenario metric value`,
//! tab-separated) into the Markdown tables of `benches/RESULTS.md`: absolute
//! figures, and each server's ratio to a baseline server.

use std::collections::HashMap;
use std::fmt::Write;

use anyhow::{bail, Result};

/// Whether more of a metric is better (throughput) or worse (memory, time).
#[derive(Clone, Copy)]
enum Better {
    Higher,
    Lower,
}

/// The headline columns: scenario, metric, heading, direction.
const HEADLINE: &[(&str, &str, &str, Better)] = &[
    ("retr-large", "MiB/s", "retr-large MiB/s", Better::Higher),
    ("stor-large", "MiB/s", "stor-large MiB/s", Better::Higher),
    (
        "sessions-full",
        "sessions/s",
        "sessions/s, full handshakes",
        Better::Higher,
    ),
    (
        "sessions-resumed",
        "sessions/s",
        "sessions/s, resumption",
        Better::Higher,
    ),
    (
        "ingest-small",
        "files/s",
        "ingest-small files/s",
        Better::Higher,
    ),
    (
        "idle",
        "RSS KiB/session",
        "idle RSS KiB/session",
        Better::Lower,
    ),
    (
        "idle",
        "PSS KiB/session",
        "idle PSS KiB/session",
        Better::Lower,
    ),
];

/// The server's CPU per unit of work (wharf-bench `--cpu-of`): what a
/// figure cost, whatever share of the machine the client took.
const CPU: &[(&str, &str, &str, Better)] = &[
    (
        "retr-large",
        "server CPU s/GiB",
        "retr-large CPU s/GiB",
        Better::Lower,
    ),
    (
        "stor-large",
        "server CPU s/GiB",
        "stor-large CPU s/GiB",
        Better::Lower,
    ),
    (
        "sessions-full",
        "server CPU ms/session",
        "full handshakes CPU ms/session",
        Better::Lower,
    ),
    (
        "sessions-resumed",
        "server CPU ms/session",
        "resumption CPU ms/session",
        Better::Lower,
    ),
    (
        "ingest-small",
        "server CPU ms/file",
        "ingest-small CPU ms/file",
        Better::Lower,
    ),
];

/// The detail columns (absolute only).
const DETAIL: &[(&str, &str, &str)] = &[
    ("sessions-full", "p50 ms", "full: p50 ms"),
    ("sessions-full", "p99 ms", "full: p99 ms"),
    ("sessions-resumed", "p50 ms", "resumption: p50 ms"),
    ("sessions-resumed", "p99 ms", "resumption: p99 ms"),
    ("sessions-resumed", "resumed %", "resumption: % resumed"),
    ("ingest-small", "p50 ms", "ingest: p50 ms"),
    ("ingest-small", "p99 ms", "ingest: p99 ms"),
    ("idle", "sessions held", "idle: sessions held"),
    ("idle", "alive after hold", "idle: alive after hold"),
    ("idle", "server processes", "idle: server processes"),
];

/// One figure, or what happened instead (`failed: …`, `skipped: …`).
type Figures = HashMap<(String, String, String), String>;

fn parse(text: &str) -> Result<(Vec<String>, Figures)> {
    let mut labels = Vec::new();
    let mut figures = Figures::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.splitn(4, '\t').collect();
        let [label, scenario, metric, value] = fields[..] else {
            bail!(
                "line {}: expected four tab-separated fields: {line:?}",
                n + 1
            );
        };
        if !labels.iter().any(|l| l == label) {
            labels.push(label.to_owned());
        }
        figures.insert((label.into(), scenario.into(), metric.into()), value.into());
    }
    Ok((labels, figures))
}

fn number(figures: &Figures, label: &str, scenario: &str, metric: &str) -> Option<f64> {
    figures
        .get(&(label.into(), scenario.into(), metric.into()))
        .and_then(|v| v.parse().ok())
}

/// What stands in a cell without a number: why the scenario has none.
fn missing(figures: &Figures, label: &str, scenario: &str) -> String {
    match figures.get(&(label.into(), scenario.into(), "outcome".into())) {
        Some(why) => why.clone(),
        None => "—".into(),
    }
}

fn figure(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// One row per server, each column a figure and its ratio to `baseline`
/// (above 1 is better than the baseline, whichever way the figure points).
fn ratio_table(
    out: &mut String,
    labels: &[String],
    figures: &Figures,
    baseline: &str,
    columns: &[(&str, &str, &str, Better)],
) -> Result<()> {
    let headings: Vec<&str> = columns.iter().map(|c| c.2).collect();
    writeln!(out, "| server | {} |", headings.join(" | "))?;
    writeln!(out, "|---|{}", "---|".repeat(headings.len()))?;
    for label in labels {
        let mut cells = Vec::new();
        for &(scenario, metric, _, better) in columns {
            let Some(value) = number(figures, label, scenario, metric) else {
                cells.push(missing(figures, label, scenario));
                continue;
            };
            let base = number(figures, baseline, scenario, metric);
            let ratio = match (base, better) {
                _ if label == baseline => None,
                (Some(b), Better::Higher) if b > 0.0 => Some(value / b),
                (Some(b), Better::Lower) if value > 0.0 => Some(b / value),
                _ => None,
            };
            cells.push(match ratio {
                Some(r) => format!("{} (×{r:.2})", figure(value)),
                None => figure(value),
            });
        }
        writeln!(out, "| {label} | {} |", cells.join(" | "))?;
    }
    Ok(())
}

pub fn render(text: &str, baseline: &str) -> Result<String> {
    let (labels, figures) = parse(text)?;
    let mut out = String::new();
    ratio_table(&mut out, &labels, &figures, baseline, HEADLINE)?;
    writeln!(out)?;
    let measured_cpu = figures.keys().any(|(_, _, m)| m.starts_with("server CPU"));
    if measured_cpu {
        ratio_table(&mut out, &labels, &figures, baseline, CPU)?;
        writeln!(out)?;
    }
    let headings: Vec<&str> = DETAIL.iter().map(|c| c.2).collect();
    writeln!(out, "| server | {} |", headings.join(" | "))?;
    writeln!(out, "|---|{}", "---|".repeat(headings.len()))?;
    for label in &labels {
        let cells: Vec<String> = DETAIL
            .iter()
            .map(
                |&(scenario, metric, _)| match number(&figures, label, scenario, metric) {
                    Some(v) => figure(v),
                    None => missing(&figures, label, scenario),
                },
            )
            .collect();
        writeln!(out, "| {label} | {} |", cells.join(" | "))?;
    }
    Ok(out)
}

/// Which server a target is about, or is measured against.
#[derive(Clone, Copy)]
enum Role {
    Baseline,
    Single,
    Cluster,
}

/// DESIGN.md §10's targets: `role`'s figure divided by `against`'s (or the
/// figure itself when `against` is `None`) must be at least `at_least`, or
/// at most `at_most`.
struct Goal {
    what: &'static str,
    role: Role,
    scenario: &'static str,
    metric: &'static str,
    against: Option<Role>,
    bound: Bound,
}

#[derive(Clone, Copy)]
enum Bound {
    AtLeast(f64),
    AtMost(f64),
}

const GOALS: &[Goal] = &[
    Goal {
        what: "retr-large, one node ≥ 1.5× vsftpd",
        role: Role::Single,
        scenario: "retr-large",
        metric: "MiB/s",
        against: Some(Role::Baseline),
        bound: Bound::AtLeast(1.5),
    },
    Goal {
        what: "stor-large, one node ≥ 1.5× vsftpd",
        role: Role::Single,
        scenario: "stor-large",
        metric: "MiB/s",
        against: Some(Role::Baseline),
        bound: Bound::AtLeast(1.5),
    },
    Goal {
        what: "sessions (full handshakes) ≥ 3× vsftpd",
        role: Role::Single,
        scenario: "sessions-full",
        metric: "sessions/s",
        against: Some(Role::Baseline),
        bound: Bound::AtLeast(3.0),
    },
    Goal {
        what: "sessions (with resumption) ≥ 3× vsftpd",
        role: Role::Single,
        scenario: "sessions-resumed",
        metric: "sessions/s",
        against: Some(Role::Baseline),
        bound: Bound::AtLeast(3.0),
    },
    Goal {
        what: "ingest-small ≥ 2× vsftpd",
        role: Role::Single,
        scenario: "ingest-small",
        metric: "files/s",
        against: Some(Role::Baseline),
        bound: Bound::AtLeast(2.0),
    },
    Goal {
        what: "idle: ≤ 64 KiB RSS per session",
        role: Role::Single,
        scenario: "idle",
        metric: "RSS KiB/session",
        against: None,
        bound: Bound::AtMost(64.0),
    },
    Goal {
        what: "3 nodes: retr-large within 10% of one node",
        role: Role::Cluster,
        scenario: "retr-large",
        metric: "MiB/s",
        against: Some(Role::Single),
        bound: Bound::AtLeast(0.9),
    },
    Goal {
        what: "3 nodes: stor-large ≥ 50% of one node",
        role: Role::Cluster,
        scenario: "stor-large",
        metric: "MiB/s",
        against: Some(Role::Single),
        bound: Bound::AtLeast(0.5),
    },
];

/// The labels that play each role in a run.
pub struct Roles<'a> {
    pub baseline: &'a str,
    pub single: &'a str,
    pub cluster: &'a str,
}

impl Roles<'_> {
    fn label(&self, role: Role) -> &str {
        match role {
            Role::Baseline => self.baseline,
            Role::Single => self.single,
            Role::Cluster => self.cluster,
        }
    }
}

/// A table of the targets: what each measured, and whether it was met.
pub fn render_goals(text: &str, roles: &Roles) -> Result<String> {
    let (_, figures) = parse(text)?;
    let mut out = String::from("| target | measured | |\n|---|---|---|\n");
    for goal in GOALS {
        let value = number(&figures, roles.label(goal.role), goal.scenario, goal.metric);
        let base = match goal.against {
            Some(role) => number(&figures, roles.label(role), goal.scenario, goal.metric),
            None => Some(1.0),
        };
        let (measured, verdict) = match (value, base) {
            (Some(v), Some(b)) if b > 0.0 => {
                let x = v / b;
                let met = match goal.bound {
                    Bound::AtLeast(min) => x >= min,
                    Bound::AtMost(max) => x <= max,
                };
                let shown = match goal.against {
                    Some(_) => format!("×{x:.2}"),
                    None => figure(x),
                };
                (shown, if met { "met" } else { "**missed**" })
            }
            _ => ("no figure".to_owned(), "**not measured**"),
        };
        writeln!(out, "| {} | {measured} | {verdict} |", goal.what)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINES: &str = "vsftpd\tretr-large\tMiB/s\t400.000\n\
        vsftpd\tidle\tRSS KiB/session\t1000.000\n\
        wharf\tretr-large\tMiB/s\t600.000\n\
        wharf\tidle\tRSS KiB/session\t50.000\n\
        wharf\tstor-large\toutcome\tfailed: 425\n";

    #[test]
    fn ratios_say_how_many_times_better_than_the_baseline() {
        let table = render(LINES, "vsftpd").unwrap();
        let wharf = table.lines().find(|l| l.starts_with("| wharf")).unwrap();
        // Throughput: 600 / 400; memory: 1000 / 50 (less is better).
        assert!(wharf.contains("600 (×1.50)"), "{wharf}");
        assert!(wharf.contains("50.0 (×20.00)"), "{wharf}");
        assert!(wharf.contains("failed: 425"), "{wharf}");
        let vsftpd = table.lines().find(|l| l.starts_with("| vsftpd")).unwrap();
        assert!(vsftpd.contains("| 400 |"), "{vsftpd}");
    }

    #[test]
    fn targets_are_judged_on_ratios_to_their_reference() {
        let lines = "vsftpd\tretr-large\tMiB/s\t400\nwharf\tretr-large\tMiB/s\t500\n\
            wharf-3\tretr-large\tMiB/s\t480\nwharf\tidle\tRSS KiB/session\t40\n";
        let roles = Roles {
            baseline: "vsftpd",
            single: "wharf",
            cluster: "wharf-3",
        };
        let table = render_goals(lines, &roles).unwrap();
        let row = |what: &str| table.lines().find(|l| l.contains(what)).unwrap().to_owned();
        assert!(
            row("retr-large, one node").contains("×1.25 | **missed**"),
            "{table}"
        );
        assert!(
            row("retr-large within 10%").contains("×0.96 | met"),
            "{table}"
        );
        assert!(row("64 KiB").contains("40.0 | met"), "{table}");
        assert!(row("stor-large ≥ 50%").contains("not measured"), "{table}");
    }

    #[test]
    fn cpu_per_unit_of_work_gets_its_own_table_only_when_measured() {
        assert!(!render(LINES, "vsftpd").unwrap().contains("CPU s/GiB"));
        let lines = format!(
            "{LINES}vsftpd\tretr-large\tserver CPU s/GiB\t3.000\n\
             wharf\tretr-large\tserver CPU s/GiB\t1.500\n"
        );
        let table = render(&lines, "vsftpd").unwrap();
        let cpu_row = table
            .lines()
            .skip_while(|l| !l.contains("retr-large CPU s/GiB"))
            .find(|l| l.starts_with("| wharf"))
            .unwrap();
        // Less CPU is better: 3.0 / 1.5.
        assert!(cpu_row.contains("1.50 (×2.00)"), "{table}");
    }

    #[test]
    fn a_malformed_line_is_refused_with_its_number() {
        let err = render("vsftpd\tretr-large\n", "vsftpd").unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }
}
