//! Benchmarks that drive real `wharf` processes (and their peers): the
//! binaries print Markdown reports for `benches/README.md`, and
//! `wharf-bench` is the load generator of `benches/compare.sh`.

pub mod cpu;
pub mod footprint;
pub mod harness;
pub mod memory;
pub mod payload;
pub mod report;
