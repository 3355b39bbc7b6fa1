#!/usr/bin/env bash
# The peer comparison (DESIGN.md §10): vsftpd, ProFTPD (mod_tls), Pure-FTPd
# and unFTP against Wharf on one node and on three (and on s3 storage against
# a Ceph gateway on the same machine, wharf-s3 and wharf-s3-3), on loopback, with the
# same TLS settings (TLS 1.3, an ECDSA P-256 certificate, TLS required for
# logins and PROT P for data) and the same load generator (wharf-bench;
# sequential-small is benches/sequential_small.py, Python's ftplib).
# Writes the figures into benches/RESULTS.md between the markers (the text
# around them is kept) and everything it measured into $BENCH_DIR.
#
#   bash benches/compare.sh                  # everything: about 40 minutes
#   SERVERS="vsftpd wharf" LARGE_MIB=256 IDLE_SESSIONS=1000 bash benches/compare.sh
#
# Needs root (a system user for vsftpd, raised open-file limits). Everything
# it starts listens on 127.0.0.1 only and is stopped when it exits.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

SERVERS=${SERVERS:-"vsftpd proftpd pureftpd unftp wharf wharf-local wharf-3 wharf-s3"}
LARGE_MIB=${LARGE_MIB:-1024}
SESSION_CLIENTS=${SESSION_CLIENTS:-16}
SESSION_SECONDS=${SESSION_SECONDS:-10}
INGEST_CLIENTS=${INGEST_CLIENTS:-64}
INGEST_FILES=${INGEST_FILES:-32}
IDLE_SESSIONS=${IDLE_SESSIONS:-10000}
IDLE_HOLD=${IDLE_HOLD:-10}
# Sequential small files (benches/sequential_small.py: Python's ftplib, one
# session): this many files of SEQUENTIAL_SIZE bytes stored, then retrieved;
# 0 leaves the scenario out.
SEQUENTIAL_FILES=${SEQUENTIAL_FILES:-1000}
SEQUENTIAL_SIZE=${SEQUENTIAL_SIZE:-4096}
# "idle" (10,000 held sessions) and "load" (everything else), each on a fresh server.
PHASES=${PHASES:-"idle load"}
BENCH_DIR=${BENCH_DIR:-/tmp/wharf-compare}
RESULTS_MD=${RESULTS_MD:-$repo/benches/RESULTS.md}

[ "$(id -u)" -eq 0 ] || { echo "compare.sh needs root" >&2; exit 1; }
# 10,000 sessions on each side of loopback (client and server are separate
# processes), plus the data connections.
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((IDLE_SESSIONS + 1000)) ]; then
  echo "the open-file limit ($(ulimit -n)) is too low for $IDLE_SESSIONS idle sessions" >&2
  exit 1
fi
# vsftpd runs three processes per logged-in session.
if [ "$(cat /proc/sys/kernel/pid_max)" -lt 4194304 ]; then
  sysctl -qw kernel.pid_max=4194304 || echo "cannot raise kernel.pid_max: vsftpd may run short of pids" >&2
fi

rm -rf "$BENCH_DIR"
mkdir -p "$BENCH_DIR"
results=$BENCH_DIR/results.tsv
log=$BENCH_DIR/bench.log
: >"$results"
# Unpacked and built peers are kept between runs (unFTP takes minutes to build).
prefix=${PEERS_DIR:-/var/cache/wharf-bench/peers}
mkdir -p "$prefix"

source "$repo/benches/peers.sh"
source "$repo/benches/loopback.sh"

# PROFILE=debug tries the script itself quickly; figures need release.
PROFILE=${PROFILE:-release}
echo "building wharf and wharf-bench ($PROFILE)" >&2
# NO_BUILD=1 takes the binaries as they are.
[ -n "${NO_BUILD:-}" ] || cargo build --profile "${PROFILE/debug/dev}" -p wharf -p wharf-benches
target_dir=${CARGO_TARGET_DIR:-$repo/target}
wharf=$target_dir/$PROFILE/wharf
bench=$target_dir/$PROFILE/wharf-bench

tls=$BENCH_DIR/tls
mkdir -p "$tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
  -keyout "$tls/key.pem" -out "$tls/cert.pem" 2>/dev/null


# Runs one scenario (REPORT names it in the results: the sessions scenario
# reports with and without resumption separately); a failure becomes an
# "outcome" line, not the end of the run.
scenario() {
  local label=$1 report=$2 name=$3 ports=$4
  shift 4
  echo "== $label: $report" >>"$log"
  profile_start "$label" "$report"
  # shellcheck disable=SC2086 # $client_tls is one flag or none
  if ! timeout 900 "$bench" "$name" --label "$label" --port "$ports" $client_tls \
      --cpu-of "$server_pids" "$@" >>"$results" 2>>"$log"; then
    printf '%s\t%s\toutcome\tfailed (see bench.log)\n' "$label" "$report" >>"$results"
    echo "$label: $report failed; see $log" >&2
  fi
  profile_stop
}

# The sequential-small scenario on PORT: benches/sequential_small.py, not
# wharf-bench (the client is Python's ftplib, what ingestion scripts use),
# its `key=value …` line turned into results lines (`stor p50 ms`, …). Like
# scenario(), a failure becomes an "outcome" line.
sequential() {
  local label=$1 port=$2 line
  [ "$SEQUENTIAL_FILES" -gt 0 ] || return 0
  echo "== $label: sequential-small" >>"$log"
  profile_start "$label" sequential-small
  # shellcheck disable=SC2086 # $client_tls is one flag or none
  if line=$(timeout 900 python3 "$repo/benches/sequential_small.py" $client_tls \
      127.0.0.1 "$port" bench bench "$SEQUENTIAL_FILES" "$SEQUENTIAL_SIZE" 2>>"$log") &&
      [[ $line == *stor_p50_ms=* ]]; then
    echo "$line" >>"$log"
    tr ' ' '\n' <<<"$line" | awk -F= -v label="$label" 'NF == 2 {
      sub(/_ms$/, " ms", $1); sub(/_files_per_s$/, " files/s", $1); sub(/_pct$/, " %", $1)
      gsub(/_/, " ", $1)
      printf "%s\tsequential-small\t%s\t%s\n", label, $1, $2 }' >>"$results"
  else
    printf '%s\t%s\toutcome\tfailed (see bench.log)\n' "$label" sequential-small >>"$results"
    echo "$label: sequential-small failed; see $log" >&2
  fi
  profile_stop
}

# PERF=1: a CPU profile of Wharf's processes during each scenario (perf
# record, 499 Hz; PERF=dwarf adds call stacks), summarised by symbol in
# $BENCH_DIR/profiles/LABEL-SCENARIO.txt. Peers are not profiled.
profiling=""
profile_start() {
  local label=$1 report=$2 pids
  [ -n "${PERF:-}" ] && [[ $label == wharf* ]] || return 0
  command -v perf >/dev/null || { echo "PERF is set but perf is not installed" >&2; return 0; }
  pids=$(pgrep -d, -f -- "--data-dir $BENCH_DIR/$label/" || true)
  [ -n "$pids" ] || return 0
  mkdir -p "$BENCH_DIR/profiles"
  profiling=$BENCH_DIR/profiles/$label-$report
  local stacks=()
  [ "$PERF" = dwarf ] && stacks=(--call-graph dwarf,16384)
  perf record -q -F 499 "${stacks[@]}" -p "$pids" -o "$profiling.data" 2>>"$log" &
  profiler=$!
}
profile_stop() {
  [ -n "$profiling" ] || return 0
  kill -INT "$profiler" 2>/dev/null || true
  wait "$profiler" 2>/dev/null || true
  perf report -i "$profiling.data" --no-children --sort comm,dso,symbol --percent-limit 0.3 \
    --stdio >"$profiling.txt" 2>>"$log" || true
  profiling=""
}

# The scenarios of one PHASE against one server: PORTS (comma-separated),
# PID (top process). Every server is started afresh for each phase: the idle
# phase measures what sessions cost a server that did nothing else yet, and
# the 10,000 sessions leave nothing behind for the load phase (ProFTPD's
# scoreboard, for one, keeps their slots and scans them at every login).
# $client_tls picks the client's TLS version (unFTP has only 1.2).
# $server_pids: the server's processes, whose CPU time per unit of work the
# scenarios report (every node of a cluster; a forking server's top process).
client_tls=""
server_pids=""
run_phase() {
  local phase=$1 label=$2 ports=$3 pid=$4
  server_pids=$pid
  echo "measuring $label: $phase" >&2
  if [ "$phase" = idle ]; then
    scenario "$label" idle idle "${ports%%,*}" --sessions "$IDLE_SESSIONS" --hold "$IDLE_HOLD" \
      --server-pid "${pid%%,*}"
    return
  fi
  scenario "$label" stor-large stor-large "$ports" --size-mib "$LARGE_MIB"
  scenario "$label" retr-large retr-large "$ports" --size-mib "$LARGE_MIB"
  scenario "$label" sessions-full sessions "$ports" --clients "$SESSION_CLIENTS" \
    --seconds "$SESSION_SECONDS" --no-resumption
  scenario "$label" sessions-resumed sessions "$ports" --clients "$SESSION_CLIENTS" \
    --seconds "$SESSION_SECONDS"
  scenario "$label" ingest-small ingest-small "$ports" --clients "$INGEST_CLIENTS" \
    --files "$INGEST_FILES"
  # One session, so one node of a cluster: the first.
  sequential "$label" "${ports%%,*}"
}

# Stops whatever is still running when the script ends, however it ends.
started=()
cleanup() {
  for s in "${started[@]}"; do
    case $s in
      wharf-s3*) pkill -f -- "--data-dir $BENCH_DIR/$s/" 2>/dev/null || true
        bash "$repo/tests/support/ceph-rgw.sh" stop "$BENCH_DIR/wharf-s3-ceph" 2>/dev/null || true ;;
      wharf*) pkill -f -- "--data-dir $BENCH_DIR/$s/" 2>/dev/null || true ;;
      *) peer_stop "$s" "$BENCH_DIR/$s" 2>/dev/null || true ;;
    esac
  done
}
trap cleanup EXIT

# `wharf serve` node N of deployment NAME in the background; prints its pid.
wharf_node() {
  local name=$1 n=$2 ftp=$3 cluster=$4
  shift 4
  local dir=$BENCH_DIR/$name/node$n
  mkdir -p "$dir"
  "$wharf" serve --data-dir "$dir/" --listen "127.0.0.1:$ftp" --implicit-listen off \
    --cluster-listen "127.0.0.1:$cluster" --http-listen off \
    --pasv-ports "$((40000 + 1000 * n))-$((40999 + 1000 * n))" \
    --cert "$tls/cert.pem" --key "$tls/key.pem" \
    --max-connections 20000 --max-per-ip 20000 "$@" \
    >"$dir/stdout.log" 2>"$dir/stderr.log" &
  echo $!
}


# Wharf on NODES nodes (extra `serve` flags after), fresh data dirs; runs PHASE.
wharf_deployment() {
  local phase=$1 name=$2 nodes=$3
  shift 3
  started+=("$name")
  rm -rf "${BENCH_DIR:?}/$name"
  local ports=() pid1
  local ftp1 cluster1
  ftp1=$(free_port)
  cluster1=$(free_port)
  pid1=$(wharf_node "$name" 1 "$ftp1" "$cluster1" --user bench:bench "$@")
  wait_greeting "$ftp1"
  ports+=("$ftp1")
  local token
  token=$("$wharf" cluster token --data-dir "$BENCH_DIR/$name/node1/")
  for n in $(seq 2 "$nodes"); do
    local ftp cluster
    ftp=$(free_port)
    cluster=$(free_port)
    wharf_node "$name" "$n" "$ftp" "$cluster" --join "127.0.0.1:$cluster1" --join-token "$token" "$@" >/dev/null
    wait_greeting "$ftp"
    ports+=("$ftp")
  done
  if [ "$nodes" -gt 1 ]; then
    for _ in $(seq 1 120); do
      voters=$("$wharf" cluster status --data-dir "$BENCH_DIR/$name/node1/" 2>/dev/null | grep -c voter || true)
      [ "$voters" -ge "$nodes" ] && break
      sleep 0.5
    done
  fi
  local joined pids
  joined=$(IFS=,; echo "${ports[*]}")
  # Node 1 first: the idle phase measures the node its sessions go to.
  pids=$pid1$({ pgrep -f -- "--data-dir $BENCH_DIR/$name/node[2-9]" || true; } | sed 's/^/,/' | tr -d '\n')
  run_phase "$phase" "$name" "$joined" "$pids"
  pkill -f -- "--data-dir $BENCH_DIR/$name/" || true
  sleep 1
}

# Wharf on one node with --storage s3 against a Ceph RADOS Gateway on the
# same machine (tests/support/ceph-rgw.sh: one monitor, one memstore OSD),
# both started afresh for PHASE. The figures' CPU is Wharf's; the gateway's
# and the OSD's are in $BENCH_DIR/wharf-s3-ceph.cpu (user+system seconds).
wharf_s3_deployment() {
  local phase=$1 name=$2 nodes=$3 ceph=$BENCH_DIR/wharf-s3-ceph line
  rm -rf "$ceph"
  line=$(MEMSTORE_BYTES=$((8 << 30)) bash "$repo/tests/support/ceph-rgw.sh" start "$ceph" 2>>"$log")
  s3_field() { tr ' ' '\n' <<<"$line" | sed -n "s/^$1=//p"; }
  local endpoint access secret
  endpoint=$(s3_field endpoint)
  access=$(s3_field access_key)
  secret=$(s3_field secret_key)
  curl -sS --fail --aws-sigv4 aws:amz:us-east-1:s3 --user "$access:$secret" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -X PUT "$endpoint/bench" >>"$log"
  printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' "$access" "$secret" \
    >"$ceph/credentials"
  wharf_deployment "$phase" "$name" "$nodes" --storage s3 --s3-endpoint "$endpoint" \
    --s3-bucket bench --s3-path-style --s3-credentials-file "$ceph/credentials"
  local pid ticks=0
  for pid in $(cat "$ceph"/pids/*.pid 2>/dev/null); do
    ticks=$((ticks + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
  done
  echo "$name $phase $(awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.1f", t / hz}')" \
    >>"$BENCH_DIR/wharf-s3-ceph.cpu"
  bash "$repo/tests/support/ceph-rgw.sh" stop "$ceph" 2>>"$log" || true
}

# A peer server, installed, started afresh; runs PHASE.
peer_deployment() {
  local phase=$1 server=$2
  started+=("$server")
  local port dir label=$server
  port=$(free_port)
  dir=$BENCH_DIR/$server
  # Pure-FTPd admits at most half its passive range as clients.
  if ! peer_start "$server" "$prefix" "$dir" "$port" 20000 44999 "$tls/cert.pem" "$tls/key.pem" 2>>"$log"; then
    printf '%s\t%s\toutcome\tdid not start (see bench.log)\n' "$server" "$phase" >>"$results"
    return
  fi
  # unFTP 0.15 speaks TLS 1.2 only (hard-coded); measured with a TLS 1.2 client.
  [ "$server" = unftp ] && { client_tls="--tls tls12"; label="unftp (TLS 1.2)"; }
  run_phase "$phase" "$label" "$port" "$(cat "$dir/$server.pid")"
  client_tls=""
  peer_stop "$server" "$dir"
  # A forking server's 10,000 session processes take a while to go.
  sleep 2
}

for server in $SERVERS; do
  case $server in
    vsftpd | proftpd | pureftpd | unftp)
      if ! peer_install "$server" "$prefix" 2>>"$log"; then
        printf '%s\tinstall\toutcome\tnot installed (see bench.log)\n' "$server" >>"$results"
        continue
      fi
      ;;
    wharf | wharf-local | wharf-3 | wharf-s3 | wharf-s3-3 | wharf-no-inline | wharf-3-no-inline) ;;
    *) echo "unknown server $server" >&2; exit 2 ;;
  esac
  for phase in $PHASES; do
    case $server in
      wharf) wharf_deployment "$phase" wharf 1 ;;
      wharf-local) wharf_deployment "$phase" wharf-local 1 --storage local ;;
      wharf-3) wharf_deployment "$phase" wharf-3 3 ;;
      # Every chunk placed on its replicas before the commit, small files too.
      wharf-no-inline) wharf_deployment "$phase" wharf-no-inline 1 --inline-max 0 ;;
      wharf-3-no-inline) wharf_deployment "$phase" wharf-3-no-inline 3 --inline-max 0 ;;
      wharf-s3) wharf_s3_deployment "$phase" wharf-s3 1 ;;
      wharf-s3-3) wharf_s3_deployment "$phase" wharf-s3-3 3 ;;
      *) peer_deployment "$phase" "$server" ;;
    esac
  done
done

# What the figures depend on: the machine, the versions, one core's AES-GCM.
machine() {
  local cpu
  cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
  echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- Machine: $cpu, $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, Linux $(uname -r)"
  echo "- Wharf: commit $(git -C "$repo" rev-parse --short HEAD)$(git -C "$repo" diff --quiet || echo ' (with local changes)'), $PROFILE build, $(rustc --version)"
  for s in $SERVERS; do
    case $s in vsftpd | proftpd | pureftpd | unftp) echo "- $(peer_version "$s" "$prefix" 2>/dev/null || echo "$s: version unknown")" ;; esac
  done
  echo "- Scenarios: large files $LARGE_MIB MiB; sessions: $SESSION_CLIENTS clients for ${SESSION_SECONDS} s;" \
    "ingest: $INGEST_CLIENTS clients × $INGEST_FILES files of 4 KiB; idle: $IDLE_SESSIONS sessions held ${IDLE_HOLD} s;" \
    "sequential: $SEQUENTIAL_FILES files of $SEQUENTIAL_SIZE B over one session"
  echo "- One core's AES-128-GCM (\`openssl speed -evp aes-128-gcm\`, 16 KiB blocks):" \
    "$(openssl speed -seconds 2 -bytes 16384 -evp aes-128-gcm 2>/dev/null | awk '/^AES-128-GCM|^aes-128-gcm/ {sub(/k$/, "", $NF); printf "%.2f GB/s", $NF / 1e6}')"
}

# The sequential-small table (wharf-bench's report knows only its own
# scenarios): p50/p99 per file and direction, with the same ratios as the
# tables above (vsftpd's figure over the server's: above 1 is faster).
sequential_report() {
  python3 - "$results" "$SEQUENTIAL_FILES" "$SEQUENTIAL_SIZE" <<'EOF'
import sys
results, files, size = sys.argv[1:]
rows, labels = {}, []
for line in open(results):
    f = line.rstrip("\n").split("\t", 3)
    if len(f) == 4 and f[1] == "sequential-small":
        if f[0] not in rows:
            labels.append(f[0])
            rows[f[0]] = {}
        rows[f[0]][f[2]] = f[3]
if not labels:
    sys.exit(0)
def number(label, metric):
    try:
        return float(rows.get(label, {})[metric])
    except (KeyError, ValueError):
        return None
def figure(v):
    return "%.0f" % v if v >= 100 else "%.1f" % v if v >= 10 else "%.2f" % v
columns = [("stor p50 ms", "STOR p50 ms"), ("stor p99 ms", "STOR p99 ms"),
           ("retr p50 ms", "RETR p50 ms"), ("retr p99 ms", "RETR p99 ms")]
print("Sequential small files: one session (Python ftplib `FTP_TLS`, PROT P, data"
      " connections resuming the control session), %s files of %s B stored one after"
      " the other, then each retrieved and compared; latency per file: the whole"
      " `storbinary`/`retrbinary` call, `TYPE I` to `226`. ×: vsftpd's latency over"
      " the server's (above 1: faster than vsftpd)." % (files, size))
print()
print("| server | %s | data connections resumed |" % " | ".join(c[1] for c in columns))
print("|---|%s---|" % ("---|" * len(columns)))
for label in labels:
    cells = []
    for metric, _ in columns:
        v = number(label, metric)
        if v is None:
            cells.append(rows[label].get("outcome", "—"))
            continue
        base = number("vsftpd", metric)
        if label != "vsftpd" and base is not None and v > 0:
            cells.append("%s (×%.2f)" % (figure(v), base / v))
        else:
            cells.append(figure(v))
    resumed = number(label, "resumed %")
    cells.append("—" if resumed is None else "%.0f%%" % resumed)
    print("| %s | %s |" % (label, " | ".join(cells)))
EOF
}

generated=$BENCH_DIR/generated.md
{
  echo "<!-- compare.sh: begin (generated; edit outside these markers) -->"
  machine
  echo
  "$bench" report "$results"
  echo
  "$bench" targets "$results"
  if [ "$SEQUENTIAL_FILES" -gt 0 ] && [[ " $PHASES " == *" load "* ]]; then
    echo
    sequential_report
  fi
  echo "<!-- compare.sh: end -->"
} >"$generated"

if [ -f "$RESULTS_MD" ] && grep -q '<!-- compare.sh: begin' "$RESULTS_MD"; then
  python3 - "$RESULTS_MD" "$generated" <<'EOF'
import re, sys
path, gen = sys.argv[1], open(sys.argv[2]).read()
text = open(path).read()
text = re.sub(r"<!-- compare.sh: begin.*?<!-- compare.sh: end -->\n?", lambda _: gen, text, flags=re.S)
open(path, "w").write(text)
EOF
else
  { echo "# Benchmark results"; echo; cat "$generated"; } >"$RESULTS_MD"
fi
echo "wrote $RESULTS_MD (raw figures: $results, log: $log)" >&2
