//! How long `Command::parse` takes for the lines a real session sends.
//!
//! Every control-connection line goes through the parser, so it sits on the
//! path of every reply. Each line is measured alone, then the whole mix once
//! per iteration (throughput in lines per second). `SITE CHMOD` and the bad
//! `PORT` line are refused by the parser; refusals are measured too, since a
//! peer chooses what it sends.

// Test and benchmark code: a failed unwrap is the run failing (the workspace
// denies these lints outside tests).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wharf_ftp::Command;

/// `(label, line as received, terminator included)`.
const SESSION: &[(&str, &[u8])] = &[
    ("user", b"USER backup-operator\r\n"),
    ("pass", b"PASS correct horse battery staple\r\n"),
    ("epsv", b"EPSV\r\n"),
    (
        "retr_long_path",
        b"RETR /exports/2026/11/customer-archive/finance/q3-reconciliation/ledger entries (final, signed) 2026-11-20T23-59-59Z.csv.gz\r\n",
    ),
    ("stor", b"STOR incoming/nightly-dump-2026-11-21.tar.zst\r\n"),
    ("list_la", b"LIST -la\r\n"),
    ("site_chmod", b"SITE CHMOD 644 incoming/report.pdf\r\n"),
    ("malformed_port", b"PORT 10,0,0,1,300\r\n"),
];

fn parse_lines(c: &mut Criterion) {
    let mut group = c.benchmark_group("command_parse");
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_millis(1500));

    group.throughput(Throughput::Elements(1));
    for (label, line) in SESSION {
        group.bench_function(*label, |b| b.iter(|| Command::parse(black_box(line))));
    }

    group.throughput(Throughput::Elements(SESSION.len() as u64));
    group.bench_function("session_mix", |b| {
        b.iter(|| {
            for (_, line) in SESSION {
                let _ = black_box(Command::parse(black_box(line)));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, parse_lines);
criterion_main!(benches);
