//! How fast a chunk is named: `ChunkHash::of` (BLAKE3) over buffers from one
//! small file to a full chunk. Every uploaded byte is hashed once on the
//! receiving node, so this bounds a single node's ingest rate. Beside it,
//! `Checksum::of` (XXH3-128), the check every read of a stored chunk pays,
//! and SHA-256, the digest every upload's `file.uploaded` event carries
//! (computed on the receiving node as the bytes arrive, once per byte).

// Test and benchmark code: a failed unwrap is the run failing (the workspace
// denies these lints outside tests).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sha2::{Digest, Sha256};
use wharf_blob::{Checksum, ChunkHash};

const SIZES: &[(&str, usize)] = &[
    ("4KiB", 4 * 1024),
    ("1MiB", 1024 * 1024),
    ("8MiB", 8 * 1024 * 1024),
];

/// Bytes that do not repeat in any short period, so nothing about the input
/// is friendlier to the hash than real file content.
fn filler(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn over_sizes<T>(c: &mut Criterion, name: &str, f: fn(&[u8]) -> T) {
    let mut group = c.benchmark_group(name);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));
    group.sample_size(30);
    for &(label, len) in SIZES {
        let bytes = filler(len);
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::from_parameter(label), &bytes, |b, bytes| {
            b.iter(|| f(black_box(bytes)))
        });
    }
    group.finish();
}

fn chunk_hash(c: &mut Criterion) {
    over_sizes(c, "chunk_hash", ChunkHash::of);
}

fn chunk_checksum(c: &mut Criterion) {
    over_sizes(c, "chunk_checksum", Checksum::of);
}

fn upload_digest(c: &mut Criterion) {
    over_sizes(c, "upload_digest", |bytes| Sha256::digest(bytes));
}

criterion_group!(benches, chunk_hash, chunk_checksum, upload_digest);
criterion_main!(benches);
