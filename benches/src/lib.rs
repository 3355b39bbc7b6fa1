//! Benchmarks that drive real `wharf` processes (and their peers); each
//! binary prints a Markdown report for `benches/README.md`.

pub mod harness;
