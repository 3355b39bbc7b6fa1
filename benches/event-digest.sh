#!/usr/bin/env bash
# What the event's content digest costs per uploaded byte (issue 24): one
# one-node Wharf on cluster storage, `wharf-bench stor-large` of SIZE_MIB MiB
# in ROUNDS rounds, each round once with `wharf events digest sha256` (every
# uploaded byte hashed with SHA-256 for its file.uploaded event) and once with
# `none`, in alternating order so warm-up does not favour one side. The same
# node and binary throughout; the server's CPU seconds per GiB come from
# wharf-bench --cpu-of. Tab-separated lines go to $BENCH_DIR/digest.tsv and a
# summary (median rate and CPU per GiB of each side) to stderr.
#
#   cargo build --release --bin wharf --bin wharf-bench
#   ROUNDS=4 SIZE_MIB=1024 bash benches/event-digest.sh
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

ROUNDS=${ROUNDS:-4}
SIZE_MIB=${SIZE_MIB:-1024}
BENCH_DIR=${BENCH_DIR:-/tmp/wharf-event-digest}
bin=${WHARF_BIN_DIR:-$repo/target/release}
wharf=$bin/wharf
bench=$bin/wharf-bench
for b in "$wharf" "$bench"; do
  [ -x "$b" ] || { echo "missing $b (cargo build --release --bin wharf --bin wharf-bench)" >&2; exit 1; }
done
source "$repo/benches/loopback.sh"
rm -rf "$BENCH_DIR"
mkdir -p "$BENCH_DIR"
tsv=$BENCH_DIR/digest.tsv
: >"$tsv"

pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  wait 2>/dev/null || true
}
trap cleanup EXIT

ftp=$(free_port)
http=$(free_port)
cluster=$(free_port)
data=$BENCH_DIR/node
"$wharf" serve --data-dir "$data" --listen "127.0.0.1:$ftp" \
  --implicit-listen off --http-listen "127.0.0.1:$http" \
  --cluster-listen "127.0.0.1:$cluster" --pasv-ports 53000-53499 --storage cluster \
  --user bench:bench >"$BENCH_DIR/node.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
  "$wharf" health --http "127.0.0.1:$http" >/dev/null 2>&1 && break
  sleep 0.2
done
wait_greeting "$ftp"

upload() {
  local digest=$1
  "$wharf" events digest "$digest" --data-dir "$data" >&2
  "$bench" stor-large --port "$ftp" --size-mib "$SIZE_MIB" --label "digest-$digest" \
    --cpu-of "$pid" | tee -a "$tsv"
}
for round in $(seq "$ROUNDS"); do
  if ((round % 2)); then order="sha256 none"; else order="none sha256"; fi
  for digest in $order; do
    echo "round $round: digest $digest" >&2
    upload "$digest"
  done
done

python3 - "$tsv" <<'PY' >&2
import statistics, sys
figures = {}
for line in open(sys.argv[1]):
    label, scenario, unit, value = line.rstrip("\n").split("\t")[:4]
    figures.setdefault((label, unit), []).append(float(value))
for (label, unit), values in sorted(figures.items()):
    shown = ", ".join(f"{v:.2f}" for v in values)
    print(f"{label} {unit}: median {statistics.median(values):.2f} ({shown})")
PY
