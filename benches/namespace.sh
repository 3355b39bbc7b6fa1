#!/usr/bin/env bash
# The namespace at ingestion scale (issue 21): a three-node Wharf cluster on
# 127.0.0.1 (cluster storage, R=3) ingests FILES files of 1 KiB with distinct
# contents from CLIENTS sessions spread over the nodes; after every STEP
# files wharf-bench reports the rate, the p99 and each node's store,
# snapshot and chunk bytes and RSS. Then a fourth node joins and is timed
# until it has applied everything (and answers SIZE for the last file), and
# an MLSD of the first directory (PER_DIR entries) is timed on node 1 with
# the node's peak RSS.
#
#   bash benches/namespace.sh                       # 1,000,000 files: hours
#   FILES=100000 STEP=20000 bash benches/namespace.sh
#   PEERS="vsftpd pureftpd" FILES=300000 bash benches/namespace.sh
#
# PEERS: the same ingestion (steps, clients, deletes; PEER_FILES files, by
# default FILES) into each of these peer servers afterwards (benches/peers.sh installs and starts them; needs root),
# for files/s and p99 in the same run; they keep no store to measure.
#
# EVENTS=webhook: the cluster records upload events (issue 24) and a webhook
# sink takes them: a receiver on 127.0.0.1 that answers 200 and counts
# distinct event ids. Every SAMPLE seconds node 1's events metrics (recorded,
# held in the store, backlog) and the receiver's count go into
# $BENCH_DIR/events.tsv; at the end a line "events: …" sums them up.
#
# STORAGE=s3: the nodes keep file contents in a bucket of a Ceph RADOS
# Gateway started on the same machine (tests/support/ceph-rgw.sh, one
# memstore OSD of MEMSTORE_GIB, default 12: it holds every object in RAM);
# the gateway's and OSD's CPU per file is reported beside the nodes', and
# their RSS and the bucket's object count at the end.
#
# DELETES=N: after every step the clients DELE N of the files stored so far,
# spread over all of them; rate, p99 and CPU per DELE are reported per step.
#
# Every step reports the nodes' CPU per file (all three nodes' together).
#
# Prints Markdown rows on stderr and the tab-separated figures into
# $BENCH_DIR/namespace.tsv. Uses target/release unless WHARF_BIN_DIR says.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

FILES=${FILES:-1000000}
STEP=${STEP:-100000}
CLIENTS=${CLIENTS:-8}
PER_DIR=${PER_DIR:-200000}
PEERS=${PEERS:-}
EVENTS=${EVENTS:-}
SAMPLE=${SAMPLE:-30}
# No new step starts after this many seconds of ingestion (0: none).
MAX_SECONDS=${MAX_SECONDS:-0}
STORAGE=${STORAGE:-cluster}
DELETES=${DELETES:-0}
MEMSTORE_GIB=${MEMSTORE_GIB:-12}
BENCH_DIR=${BENCH_DIR:-/tmp/wharf-namespace}
bin=${WHARF_BIN_DIR:-$repo/target/release}
wharf=$bin/wharf
bench=$bin/wharf-bench
[ -x "$wharf" ] && [ -x "$bench" ] || {
  echo "build first: cargo build --release -p wharf -p wharf-benches (or set WHARF_BIN_DIR)" >&2
  exit 1
}
ulimit -n "$(ulimit -Hn)"
source "$repo/benches/loopback.sh"

rm -rf "$BENCH_DIR"
mkdir -p "$BENCH_DIR"
tls=$BENCH_DIR/tls
mkdir -p "$tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=localhost -keyout "$tls/key.pem" -out "$tls/cert.pem" 2>/dev/null


pids=()
ceph=$BENCH_DIR/ceph
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ "$STORAGE" != s3 ] || bash "$repo/tests/support/ceph-rgw.sh" stop "$ceph" 2>/dev/null || true
}
trap cleanup EXIT

storage_args=(--storage "$STORAGE")
gateway_pids=
case "$STORAGE" in
  cluster) ;;
  s3)
    line=$(MEMSTORE_BYTES=$((MEMSTORE_GIB << 30)) bash "$repo/tests/support/ceph-rgw.sh" start "$ceph")
    s3_field() { tr ' ' '\n' <<<"$line" | sed -n "s/^$1=//p"; }
    endpoint=$(s3_field endpoint)
    curl -sS --fail --aws-sigv4 aws:amz:us-east-1:s3 --user "$(s3_field access_key):$(s3_field secret_key)" \
      -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -X PUT "$endpoint/bench"
    printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' \
      "$(s3_field access_key)" "$(s3_field secret_key)" >"$ceph/credentials"
    storage_args+=(--s3-endpoint "$endpoint" --s3-bucket bench --s3-path-style
      --s3-credentials-file "$ceph/credentials")
    gateway_pids=$(cat "$ceph"/pids/*.pid | paste -sd,)
    ;;
  *) echo "STORAGE=$STORAGE: cluster or s3" >&2; exit 2 ;;
esac

# Node N in the background; its pid goes to $BENCH_DIR/nodeN/pid.
start_node() {
  local n=$1 ftp=$2 cluster=$3
  shift 3
  local dir=$BENCH_DIR/node$n
  mkdir -p "$dir"
  "$wharf" serve --data-dir "$dir/" --listen "127.0.0.1:$ftp" --implicit-listen off \
    --cluster-listen "127.0.0.1:$cluster" --http-listen "${http_listen[n]:-off}" "${storage_args[@]}" \
    --pasv-ports "$((40000 + 1000 * n))-$((40999 + 1000 * n))" \
    --cert "$tls/cert.pem" --key "$tls/key.pem" \
    --max-connections 20000 --max-per-ip 20000 "$@" \
    >"$dir/stdout.log" 2>"$dir/stderr.log" &
  echo $! >"$dir/pid"
  pids+=($!)
}


applied() {
  "$wharf" cluster status --data-dir "$1/" 2>/dev/null | sed -n "s/.*, applied \([0-9][0-9]*\).*/\1/p" | head -1
}

ports=()
cports=()
http_listen=()
for n in 1 2 3 4; do
  ports+=("$(free_port)")
  cports+=("$(free_port)")
done
[ -z "$EVENTS" ] || http_listen[1]=127.0.0.1:$(free_port)
start_node 1 "${ports[0]}" "${cports[0]}" --user bench:bench
wait_greeting "${ports[0]}"
token=$("$wharf" cluster token --data-dir "$BENCH_DIR/node1/")
for n in 2 3; do
  start_node "$n" "${ports[n - 1]}" "${cports[n - 1]}" --join "127.0.0.1:${cports[0]}" --join-token "$token"
  wait_greeting "${ports[n - 1]}"
done
for _ in $(seq 1 120); do
  [ "$("$wharf" cluster status --data-dir "$BENCH_DIR/node1/" | grep -c voter || true)" -ge 3 ] && break
  sleep 0.5
done

if [ -n "$EVENTS" ]; then
  [ "$EVENTS" = webhook ] || { echo "EVENTS=$EVENTS: only webhook is known" >&2; exit 2; }
  hook=$(free_port)
  # The receiver: distinct ids and requests, rewritten into hook.count each second.
  python3 - "$hook" "$BENCH_DIR/hook.count" <<'PY' &
import os, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
port, out = int(sys.argv[1]), sys.argv[2]
ids, posts, lock = set(), [0], threading.Lock()
class Hook(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with lock:
            ids.add(self.headers.get("X-Wharf-Event-Id"))
            posts[0] += 1
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
def report():
    while True:
        with lock:
            line = f"{len(ids)}\t{posts[0]}\n"
        with open(out + ".new", "w") as f:
            f.write(line)
        os.replace(out + ".new", out)
        time.sleep(1)
threading.Thread(target=report, daemon=True).start()
ThreadingHTTPServer(("127.0.0.1", port), Hook).serve_forever()
PY
  pids+=($!)
  "$wharf" events sink add bench --webhook "http://127.0.0.1:$hook/" --data-dir "$BENCH_DIR/node1/" >/dev/null
  metric() {
    curl -s "http://${http_listen[1]}/metrics" | awk -v m="$1" '$1 == m { print $2; exit }'
  }
  events_sample() {
    printf '%s\t%s\t%s\t%s\t%s\n' "$SECONDS" "$(metric wharf_events_recorded_total)" \
      "$(metric wharf_events_retained)" "$(metric 'wharf_events_backlog{sink="bench"}')" \
      "$(cut -f1 "$BENCH_DIR/hook.count" 2>/dev/null)"
  }
  printf 'seconds\trecorded\tretained\tbacklog\treceived\n' >"$BENCH_DIR/events.tsv"
  SECONDS=0
  while sleep "$SAMPLE"; do events_sample >>"$BENCH_DIR/events.tsv"; done &
  sampler=$!
  pids+=($!)
fi

node_pids=$(cat "$BENCH_DIR"/node{1,2,3}/pid | paste -sd,)
"$bench" namespace --port "${ports[0]},${ports[1]},${ports[2]}" --label wharf-3 \
  --files "$FILES" --step "$STEP" --clients "$CLIENTS" --per-dir "$PER_DIR" --max-seconds "$MAX_SECONDS" \
  --data-dir "$BENCH_DIR/node1,$BENCH_DIR/node2,$BENCH_DIR/node3" --node-pid "$node_pids" \
  --cpu-of "$node_pids" --deletes "$DELETES" ${gateway_pids:+--gateway-pid "$gateway_pids"} \
  >"$BENCH_DIR/namespace.tsv"

if [ "$STORAGE" = s3 ]; then
  for f in "$ceph"/pids/*.pid; do
    pid=$(cat "$f")
    echo "ceph $(basename "$f" .pid): RSS $(($(awk '/VmRSS/ {print $2}' "/proc/$pid/status") / 1024)) MiB" >&2
  done
  objects=$(radosgw-admin -c "$ceph/ceph.conf" -n client.rgw.wharf bucket stats --bucket bench 2>/dev/null |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["usage"]["rgw.main"]["num_objects"])' || echo "?")
  echo "bucket bench holds $objects objects" >&2
  printf 'wharf-3\tnamespace\tbucket objects\t%s\n' "$objects" >>"$BENCH_DIR/namespace.tsv"
fi

if [ -n "$EVENTS" ]; then
  kill "$sampler" 2>/dev/null || true
  # Every event at the receiver before the summary (at most two minutes).
  for _ in $(seq 600); do
    [ "$(metric 'wharf_events_backlog{sink="bench"}')" = 0 ] && break
    sleep 0.2
  done
  sleep 2
  events_sample >>"$BENCH_DIR/events.tsv"
  read -r received posts <"$BENCH_DIR/hook.count"
  max_retained=$(awk -F'\t' 'NR > 1 && $3 > m { m = $3 } END { print m + 0 }' "$BENCH_DIR/events.tsv")
  max_backlog=$(awk -F'\t' 'NR > 1 && $4 > m { m = $4 } END { print m + 0 }' "$BENCH_DIR/events.tsv")
  echo "events: $(metric wharf_events_recorded_total) recorded, $received distinct received in $posts requests, most held in the store $max_retained, largest backlog sampled $max_backlog, dropped $(metric wharf_events_dropped_total)" >&2
fi

for n in 1 2 3; do
  grep "built a snapshot" "$BENCH_DIR/node$n/stderr.log" | tail -1 |
    sed "s/^/node $n last snapshot: /" >&2 || true
done

# A fourth node joins: how long until it has applied what node 1 has.
target=$(applied "$BENCH_DIR/node1")
started=$(date +%s.%N)
start_node 4 "${ports[3]}" "${cports[3]}" --join "127.0.0.1:${cports[0]}" --join-token "$token"
wait_greeting "${ports[3]}"
for _ in $(seq 1 3000); do
  a=$(applied "$BENCH_DIR/node4" || true)
  [ -n "$a" ] && [ "$a" -ge "$target" ] && break
  sleep 0.2
done
joined=$(python3 -c "print(round($(date +%s.%N) - $started, 2))")
echo "node 4 joined and applied index $target after ${joined} s, RSS $(($(grep VmRSS /proc/"$(cat "$BENCH_DIR/node4/pid")"/status | awk '{print $2}') / 1024)) MiB" >&2
printf 'wharf-3\tnamespace\tjoin seconds\t%s\n' "$joined" >>"$BENCH_DIR/namespace.tsv"

"$bench" list-dir --port "${ports[0]}" --label wharf-3 --server-pid "$(cat "$BENCH_DIR/node1/pid")" \
  /ns/d0 >>"$BENCH_DIR/namespace.tsv"

# The peers, one after the other, with the same files from the same clients.
if [ -n "$PEERS" ]; then
  source "$repo/benches/peers.sh"
  prefix=${PEERS_DIR:-/var/cache/wharf-bench/peers}
  for peer in $PEERS; do
    peer_install "$peer" "$prefix" || { echo "$peer: not installed" >&2; continue; }
    port=$(free_port)
    peer_start "$peer" "$prefix" "$BENCH_DIR/$peer" "$port" 20000 44999 "$tls/cert.pem" "$tls/key.pem" ||
      { echo "$peer: did not start" >&2; continue; }
    "$bench" namespace --port "$port" --label "$peer" --files "${PEER_FILES:-$FILES}" --step "$STEP" \
      --clients "$CLIENTS" --per-dir "$PER_DIR" --max-seconds "$MAX_SECONDS" \
      --cpu-of "$(cat "$BENCH_DIR/$peer/$peer.pid")" --deletes "$DELETES" >>"$BENCH_DIR/namespace.tsv" ||
      echo "$peer: the namespace scenario failed" >&2
    peer_stop "$peer" "$BENCH_DIR/$peer"
    rm -rf "$BENCH_DIR/$peer/home"
  done
fi
