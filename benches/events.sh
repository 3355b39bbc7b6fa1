#!/usr/bin/env bash
# What upload events cost (issue 24): the ingest-small load (CLIENTS sessions
# storing FILES files of 4 KiB each) into a one-node Wharf on cluster storage,
# in alternating rounds without an event sink and with a webhook sink. The
# webhook is a receiver on 127.0.0.1 that answers 200 and records, for each
# event, its arrival minus the event's own time (taken on the node when the
# upload's completion was proposed, just before its commit and `226`): the
# delivery latency. Prints the rounds' figures and the latency percentiles;
# the tab-separated lines go to $BENCH_DIR/events.tsv.
#
#   cargo build --release --workspace --bins
#   bash benches/events.sh                     # 3 rounds each way
#   ROUNDS=5 CLIENTS=32 FILES=100 bash benches/events.sh
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

CLIENTS=${CLIENTS:-16}
FILES=${FILES:-200}
ROUNDS=${ROUNDS:-3}
BENCH_DIR=${BENCH_DIR:-/tmp/wharf-events-bench}
bin=${WHARF_BIN_DIR:-$repo/target/release}
wharf=$bin/wharf
bench=$bin/wharf-bench
[ -x "$wharf" ] && [ -x "$bench" ] || {
  echo "build first: cargo build --release --workspace --bins (or set WHARF_BIN_DIR)" >&2
  exit 1
}
rm -rf "$BENCH_DIR"
mkdir -p "$BENCH_DIR"
tsv=$BENCH_DIR/events.tsv
: >"$tsv"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
ftp=$(free_port)
http=$(free_port)
cluster=$(free_port)
hook=$(free_port)

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

# The receiver: one line per event (latency ms) in latencies.txt.
python3 - "$hook" "$BENCH_DIR/latencies.txt" <<'EOF' &
import json, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
port, out = int(sys.argv[1]), open(sys.argv[2], "a", buffering=1)
class Hook(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        arrived = time.time() * 1000
        try:
            out.write(f"{arrived - json.loads(body)['time_ms']:.3f}\n")
        except (ValueError, KeyError):
            pass
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
ThreadingHTTPServer(("127.0.0.1", port), Hook).serve_forever()
EOF
pids+=($!)

"$wharf" serve --data-dir "$BENCH_DIR/node" --listen "127.0.0.1:$ftp" --implicit-listen off \
  --http-listen "127.0.0.1:$http" --cluster-listen "127.0.0.1:$cluster" \
  --pasv-ports 52000-52999 --storage cluster --max-per-ip 1000 --user bench:bench \
  >"$BENCH_DIR/node.log" 2>&1 &
node=$!
pids+=("$node")
for _ in $(seq 100); do
  "$wharf" health --http "127.0.0.1:$http" >/dev/null 2>&1 && break
  sleep 0.2
done

admin() { "$wharf" "$@" --data-dir "$BENCH_DIR/node"; }
ingest() {
  "$bench" ingest-small --port "$ftp" --clients "$CLIENTS" --files "$FILES" --size-kib 4 \
    --label "$1" --cpu-of "$node" | tee -a "$tsv"
}
for round in $(seq "$ROUNDS"); do
  echo "round $round: no sink" >&2
  ingest wharf-no-sink
  admin events sink add hook --webhook "http://127.0.0.1:$hook/" >/dev/null
  echo "round $round: webhook sink" >&2
  ingest wharf-webhook
  # Every event delivered before the sink goes.
  for _ in $(seq 300); do
    backlog=$(admin events sink list --json | python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["backlog"])')
    [ "$backlog" = 0 ] && break
    sleep 0.1
  done
  admin events sink remove hook >/dev/null
done

python3 - "$BENCH_DIR/latencies.txt" "$tsv" <<'EOF'
import sys
values = sorted(float(l) for l in open(sys.argv[1]) if l.strip())
pick = lambda p: values[min(len(values) - 1, int(len(values) * p / 100))]
with open(sys.argv[2], "a") as tsv:
    for p in (50, 99):
        line = f"wharf-webhook\tevent-delivery\tp{p} ms\t{pick(p):.3f}"
        print(line)
        tsv.write(line + "\n")
    tsv.write(f"wharf-webhook\tevent-delivery\tevents\t{len(values)}\n")
print(f"{len(values)} events delivered", file=sys.stderr)
EOF
