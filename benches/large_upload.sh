#!/usr/bin/env bash
# Raft log bytes per GiB uploaded, for files of different sizes (issue 21):
# a one-node Wharf cluster (cluster storage) on 127.0.0.1 receives one file
# of each size in SIZES_MIB with curl over explicit FTPS, the bytes a
# pseudo-random stream (AES-CTR over zeros, so nothing deduplicates and no
# file of that size has to exist on disk first). Before and after each upload
# the node's wharf_raft_log_bytes_written_total is read from /metrics.
#
#   bash benches/large_upload.sh                    # 1 GiB and 20 GiB
#   SIZES_MIB="64 1024" bash benches/large_upload.sh
#
# One node is enough: every node writes the same log. The files stay in
# BENCH_DIR (the next run empties it), so it needs the sum of the sizes free.
# Prints one line per file on stderr and tab-separated figures on stdout.
# Uses target/release unless WHARF_BIN_DIR says.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

SIZES_MIB=${SIZES_MIB:-1024 20480}
BENCH_DIR=${BENCH_DIR:-/tmp/wharf-large-upload}
bin=${WHARF_BIN_DIR:-$repo/target/release}
wharf=$bin/wharf
[ -x "$wharf" ] || {
  echo "build first: cargo build --release -p wharf (or set WHARF_BIN_DIR)" >&2
  exit 1
}
source "$repo/benches/loopback.sh"

rm -rf "$BENCH_DIR"
mkdir -p "$BENCH_DIR/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=localhost -keyout "$BENCH_DIR/tls/key.pem" -out "$BENCH_DIR/tls/cert.pem" 2>/dev/null

port=$(free_port)
http=$(free_port)
"$wharf" serve --data-dir "$BENCH_DIR/node/" --listen "127.0.0.1:$port" --implicit-listen off \
  --cluster-listen "127.0.0.1:$(free_port)" --http-listen "127.0.0.1:$http" --storage cluster \
  --cert "$BENCH_DIR/tls/cert.pem" --key "$BENCH_DIR/tls/key.pem" --user bench:bench \
  >"$BENCH_DIR/stdout.log" 2>"$BENCH_DIR/stderr.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait 2>/dev/null || true' EXIT
wait_greeting "$port"

log_bytes() {
  curl -sS --max-time 10 "http://127.0.0.1:$http/metrics" |
    sed -n 's/^wharf_raft_log_bytes_written_total \([0-9][0-9]*\)$/\1/p'
}

for mib in $SIZES_MIB; do
  before=$(log_bytes)
  started=$(date +%s.%N)
  # openssl ends on SIGPIPE once head has its bytes.
  { openssl enc -aes-128-ctr -nosalt -pass "pass:wharf-$mib" -in /dev/zero 2>/dev/null || true; } |
    head -c "$((mib * 1048576))" |
    curl -sS --ssl-reqd --insecure --user bench:bench -T - "ftp://127.0.0.1:$port/upload-$mib.bin"
  took=$(python3 -c "print($(date +%s.%N) - $started)")
  after=$(log_bytes)
  per_gib=$(((after - before) * 1024 / mib))
  rate=$(python3 -c "print(round($mib / $took, 1))")
  echo "$mib MiB at $rate MiB/s: $((after - before)) Raft log bytes, $per_gib per GiB" >&2
  printf 'wharf\tlarge-upload %s MiB\tlog bytes per GiB\t%s\n' "$mib" "$per_gib"
  printf 'wharf\tlarge-upload %s MiB\tMiB/s\t%s\n' "$mib" "$rate"
done
