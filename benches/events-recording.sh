#!/usr/bin/env bash
# What recording upload events costs when no sink is configured (issue 24):
# the ingest-small load (CLIENTS sessions storing FILES files of 4 KiB each)
# into two one-node Wharfs on cluster storage, run one after the other in
# alternating rounds — the build under test (which records an event, a dedup
# entry and the id counter with every change, and hashes every uploaded byte
# with SHA-256) and a baseline build from before events (commit 91711a9). Both
# nodes stay up for the whole run; only one is loaded at a time. The same
# wharf-bench drives both. Tab-separated lines go to $BENCH_DIR/recording.tsv.
#
#   cargo build --release --workspace --bins          # the build under test
#   git worktree add /tmp/pre 91711a9 && (cd /tmp/pre && cargo build --release --bin wharf)
#   BASELINE=/tmp/pre/target/release/wharf bash benches/events-recording.sh
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

CLIENTS=${CLIENTS:-16}
FILES=${FILES:-200}
ROUNDS=${ROUNDS:-3}
BENCH_DIR=${BENCH_DIR:-/tmp/wharf-events-recording}
bin=${WHARF_BIN_DIR:-$repo/target/release}
: "${BASELINE:?set BASELINE to a wharf binary built before events (91711a9)}"
bench=$bin/wharf-bench
for b in "$bin/wharf" "$bench" "$BASELINE"; do
  [ -x "$b" ] || { echo "missing $b" >&2; exit 1; }
done
rm -rf "$BENCH_DIR"
mkdir -p "$BENCH_DIR"
tsv=$BENCH_DIR/recording.tsv
: >"$tsv"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

# start NAME BINARY PASV-RANGE: a node; sets ftp_NAME and pid_NAME.
start() {
  local name=$1 wharf=$2 pasv=$3 ftp http cluster
  ftp=$(free_port)
  http=$(free_port)
  cluster=$(free_port)
  "$wharf" serve --data-dir "$BENCH_DIR/$name" --listen "127.0.0.1:$ftp" \
    --implicit-listen off --http-listen "127.0.0.1:$http" \
    --cluster-listen "127.0.0.1:$cluster" --pasv-ports "$pasv" --storage cluster \
    --max-per-ip 1000 --user bench:bench >"$BENCH_DIR/$name.log" 2>&1 &
  pids+=($!)
  printf -v "pid_$name" %s "$!"
  printf -v "ftp_$name" %s "$ftp"
  for _ in $(seq 100); do
    "$wharf" health --http "127.0.0.1:$http" >/dev/null 2>&1 && return
    sleep 0.2
  done
  echo "$name did not become healthy; see $BENCH_DIR/$name.log" >&2
  exit 1
}
start baseline "$BASELINE" 52000-52499
start events "$bin/wharf" 52500-52999

ingest() {
  local label=$1 port=$2 pid=$3
  "$bench" ingest-small --port "$port" --clients "$CLIENTS" --files "$FILES" --size-kib 4 \
    --label "$label" --cpu-of "$pid" | tee -a "$tsv"
}
for round in $(seq "$ROUNDS"); do
  echo "round $round: baseline (no events)" >&2
  ingest wharf-before-events "$ftp_baseline" "$pid_baseline"
  echo "round $round: events recorded, no sink" >&2
  ingest wharf-events-no-sink "$ftp_events" "$pid_events"
done
