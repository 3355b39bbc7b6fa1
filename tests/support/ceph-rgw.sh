#!/usr/bin/env bash
# A throwaway one-node Ceph cluster with an S3 gateway, for end-to-end tests:
# one monitor, one memstore OSD (data lives in the OSD's RAM) and radosgw
# (beast) on 127.0.0.1. Everything - config, mon/osd data, logs, pid files,
# admin sockets - lives under DIR; nothing global (/etc/ceph, /var/run/ceph,
# /var/lib/ceph) is read or written, so instances in different DIRs can run
# side by side.
#
#   ceph-rgw.sh start DIR   prints one line on stdout and writes it to DIR/endpoint:
#                           endpoint=http://127.0.0.1:PORT access_key=AK secret_key=SK
#   ceph-rgw.sh stop DIR    kills what start started (idempotent, fine after a failed start)
#
# Environment (all optional):
#   MON_PORT, RGW_PORT      fixed ports (default: free ports in 45000-49999; the OSD
#                           takes Ceph's usual 6800-7300)
#   ACCESS_KEY, SECRET_KEY  the S3 user's credentials
#   MEMSTORE_BYTES          OSD capacity in bytes (default 2 GiB). RAM is used only as
#                           filled, about twice the bytes stored; once full, the OSD
#                           stops accepting writes and S3 requests hang (no error).
#   START_TIMEOUT           bound on the whole start, seconds (default 120; a step
#                           already running may overrun it by up to ~15 s)
#   OSD_START_TIMEOUT       how long one OSD may take to come up before it is
#                           considered hung and replaced (default 20)
#   OSD_ATTEMPTS            how many OSDs to try (default 4)
#   WARMUP                  1 (default): create and delete a bucket during start, so
#                           the data pools exist and a test's first bucket is fast
#   TLS                     1: HTTPS only, with a certificate for 127.0.0.1 from a CA of
#                           its own (DIR/tls/ca.pem); the line then ends with ca=FILE
#
# Requires ceph-mon, ceph-osd, radosgw (Debian packages; ceph-common comes with them),
# uuidgen (uuid-runtime), curl (>= 7.75, for --aws-sigv4) and python3.
# Path-style addressing; any region name is accepted (us-east-1 is fine).
set -euo pipefail

NAME=client.rgw.wharf

log() { echo "ceph-rgw: $*" >&2; }

usage() {
  echo "usage: $0 start DIR | stop DIR" >&2
  exit 2
}

[ $# -eq 2 ] || usage
CMD=$1
DIR=$2
case "$CMD" in start | stop) ;; *) usage ;; esac
if [ "$CMD" = stop ] && [ ! -d "$DIR" ]; then
  exit 0
fi
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
CONF=$DIR/ceph.conf
PIDS=$DIR/pids

# --- stop -------------------------------------------------------------------

# Only signal a pid if it is still one of our daemons (its command line names
# our config file), so a recycled pid is never hit.
ours() {
  local pid=$1
  [ -r "/proc/$pid/cmdline" ] || return 1
  { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qF -- "$CONF"
}

# kill_pidfile FILE SIGNAL GRACE: signal the daemon, wait up to GRACE seconds,
# then SIGKILL it; returns 1 if it is still there after that.
kill_pidfile() {
  local f=$1 sig=$2 grace=$3 pid
  pid=$(cat "$f" 2>/dev/null || true)
  if [[ "$pid" =~ ^[0-9]+$ ]] && ours "$pid"; then
    kill "-$sig" "$pid" 2>/dev/null || true
    for _ in $(seq 1 $((grace * 10))); do
      ours "$pid" || break
      sleep 0.1
    done
    if ours "$pid"; then
      kill -KILL "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do
        ours "$pid" || break
        sleep 0.1
      done
      if ours "$pid"; then
        log "$(basename "$f" .pid) (pid $pid) survived SIGKILL"
        return 1
      fi
    fi
  fi
  rm -f "$f"
}

do_stop() {
  local f rc=0
  [ -d "$PIDS" ] || return 0
  # Nothing here is worth a clean shutdown: radosgw takes 5-10 s to stop on
  # SIGTERM, and a memstore OSD would write all its objects to disk. Only the
  # monitor gets SIGTERM (it stops in well under a second).
  for f in "$PIDS"/rgw.pid "$PIDS"/osd.*.pid; do
    [ -e "$f" ] || continue
    kill_pidfile "$f" KILL 0 || rc=1
  done
  if [ -e "$PIDS/mon.pid" ]; then
    kill_pidfile "$PIDS/mon.pid" TERM 10 || rc=1
  fi
  return $rc
}

if [ "$CMD" = stop ]; then
  do_stop || exit 1
  exit 0
fi

# --- start ------------------------------------------------------------------

START_TIMEOUT=${START_TIMEOUT:-120}
OSD_START_TIMEOUT=${OSD_START_TIMEOUT:-20}
OSD_ATTEMPTS=${OSD_ATTEMPTS:-4}
MEMSTORE_BYTES=${MEMSTORE_BYTES:-2147483648}
ACCESS_KEY=${ACCESS_KEY:-wharftestaccesskey}
SECRET_KEY=${SECRET_KEY:-wharftestsecretkey0123456789}
WARMUP=${WARMUP:-1}
T0=$SECONDS
DEADLINE=$((SECONDS + START_TIMEOUT))
STEP="checking prerequisites"

fail() {
  log "FAILED at step: $STEP: $*"
  local f
  for f in "$DIR"/log/mon.a.log "$DIR"/log/osd.*.log "$DIR"/log/$NAME.log; do
    [ -s "$f" ] || continue
    log "--- last lines of $f"
    tail -n 15 "$f" >&2 || true
  done
  log "logs are in $DIR/log; stopping what was started"
  do_stop || true
  exit 1
}

remaining() { echo $((DEADLINE - SECONDS)); }
# A time limit for one command: what is left of the overall one, at least 1 s.
left() {
  local r=$((DEADLINE - SECONDS))
  [ "$r" -ge 1 ] || r=1
  echo "$r"
}

# wait_for SECONDS CMD...: poll CMD until it succeeds, at most SECONDS and never
# past the overall deadline. Returns 1 on time-out.
wait_for() {
  local limit=$1 end
  shift
  end=$((SECONDS + limit))
  [ "$end" -le "$DEADLINE" ] || end=$DEADLINE
  while :; do
    if "$@"; then return 0; fi
    [ "$SECONDS" -lt "$end" ] || return 1
    sleep 0.5
  done
}

for tool in ceph-mon ceph-osd radosgw radosgw-admin ceph monmaptool uuidgen curl python3 setsid timeout; do
  command -v "$tool" >/dev/null || fail "'$tool' not found (apt-get install ceph-mon ceph-osd radosgw uuid-runtime curl)"
done
curl --help all 2>/dev/null | grep -q -- --aws-sigv4 || fail "curl is too old for --aws-sigv4 (needs 7.75 or later)"

# A DIR of an earlier run must not leave daemons behind or stale data.
do_stop || fail "daemons of an earlier start in $DIR would not stop"
rm -rf "$DIR"/mon "$DIR"/osd "$DIR"/run "$DIR"/log "$DIR"/rgw "$DIR"/crash \
  "$DIR"/monmap "$DIR"/endpoint "$CONF"
mkdir -p "$PIDS" "$DIR"/mon "$DIR"/osd "$DIR"/run "$DIR"/log "$DIR"/rgw "$DIR"/crash

# A free port in 45000-49999: outside the kernel's ephemeral-port default
# start and the ranges the Rust harness draws from (20000-32000 for listeners,
# 40000-44999 for passive ranges).
free_port() {
  python3 -c '
import random, socket
for _ in range(500):
    port = random.randint(45000, 49999)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    break
else:
    raise SystemExit("no free port in 45000-49999")'
}
STEP="picking ports"
MON_PORT=${MON_PORT:-$(free_port)} || fail "no free port"
RGW_PORT=${RGW_PORT:-$(free_port)} || fail "no free port"
while [ "$RGW_PORT" = "$MON_PORT" ]; do RGW_PORT=$(free_port) || fail "no free port"; done

# HTTPS (TLS=1): a CA of our own and a certificate for 127.0.0.1 it signed.
SCHEME=http
FRONTEND="endpoint=127.0.0.1:$RGW_PORT"
CURL_TLS=()
if [ "${TLS:-0}" = 1 ]; then
  STEP="making the gateway's TLS certificate"
  mkdir -p "$DIR/tls"
  (
    cd "$DIR/tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
      -subj /CN=wharf-test-s3-ca -keyout ca.key -out ca.pem
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
      -keyout key.pem -out req.pem
    printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >ext.cnf
    openssl x509 -req -in req.pem -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
      -extfile ext.cnf -out cert.pem
  ) >>"$DIR/tls.log" 2>&1 || fail "openssl could not make the certificate (see $DIR/tls.log)"
  SCHEME=https
  FRONTEND="ssl_endpoint=127.0.0.1:$RGW_PORT ssl_certificate=$DIR/tls/cert.pem ssl_private_key=$DIR/tls/key.pem"
  CURL_TLS=(--cacert "$DIR/tls/ca.pem")
fi
FSID=$(uuidgen)

STEP="writing $CONF"
cat >"$CONF" <<EOF
[global]
fsid = $FSID
# msgr2 only. With auth none over the v1 protocol, a client can send its first
# command before it has the monmap, i.e. with fsid 0, and the monitor refuses it
# ("wrong fsid"): about one ceph CLI call in 20 failed, and a starting OSD that
# hit it in its crush update exited. Over msgr2 the client waits for the map.
mon host = v2:127.0.0.1:$MON_PORT
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
keyring = $DIR/keyring
run dir = $DIR/run
admin socket = $DIR/run/\$name.\$pid.asok
pid file = $DIR/run/\$name.pid
crash dir = $DIR/crash
log file = $DIR/log/\$name.log
log to stderr = false
err to stderr = false
mon cluster log file = $DIR/log/cluster.log
mon data = $DIR/mon/\$cluster-\$id
osd data = $DIR/osd/\$cluster-\$id
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
# The monitor stops itself when its disk has less than 5 % free; a CI disk may.
mon data avail warn = 2
mon data avail crit = 1

[mon]
admin socket = $DIR/run/\$name.asok
# Commit map changes every 0.1 s instead of every 1 s: radosgw creates its
# pools one map change after another, so this takes start from ~16 s to ~3 s.
paxos propose interval = 0.1
paxos min wait = 0.01

[osd]
admin socket = $DIR/run/\$name.asok
osd objectstore = memstore
memstore device bytes = $MEMSTORE_BYTES

[$NAME]
admin socket = $DIR/run/\$name.asok
rgw data = $DIR/rgw
# radosgw defaults to cephx and a "secure" mon connection; neither works with
# auth none over msgr2.
auth client required = none
ms mon client mode = crc
rgw frontends = beast $FRONTEND tcp_nodelay=1
EOF
export CEPH_CONF=$CONF

# cephcli SECONDS ARGS...: the ceph CLI against our monitor, bounded in time.
cephcli() {
  local t=$1
  shift
  timeout -k 2 "$t" ceph -c "$CONF" --connect-timeout "$t" "$@" 2>>"$DIR/log/ceph-cli.log" </dev/null
}

# spawn NAME CMD...: start a daemon in the foreground mode of Ceph but detached
# from us (own session, no inherited stdio), and record its pid.
spawn() {
  local name=$1
  shift
  local pid
  setsid "$@" </dev/null >>"$DIR/log/$name.out" 2>&1 &
  pid=$!
  disown "$pid" # no "Killed" job notices from bash
  echo "$pid" >"$PIDS/$name.pid"
  # Until the background subshell has exec'd the daemon, its command line is
  # still this script's; wait for that so alive/stop can recognise it.
  for _ in $(seq 1 50); do
    ours "$pid" && return 0
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
}

alive() { ours "$(cat "$PIDS/$1.pid" 2>/dev/null)"; }

# --- monitor
STEP="creating the monitor (ceph-mon --mkfs)"
monmaptool --create --fsid "$FSID" --addv a "v2:127.0.0.1:$MON_PORT" "$DIR/monmap" >>"$DIR/log/setup.log" 2>&1 \
  || fail "monmaptool failed, see $DIR/log/setup.log"
timeout -k 2 "$(left)" ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" >>"$DIR/log/setup.log" 2>&1 \
  || fail "ceph-mon --mkfs failed, see $DIR/log/setup.log"

STEP="starting ceph-mon on 127.0.0.1:$MON_PORT"
spawn mon ceph-mon -c "$CONF" -f -i a
mon_ready() {
  alive mon || fail "ceph-mon exited (port $MON_PORT taken?)"
  cephcli 5 mon stat >/dev/null
}
wait_for 20 mon_ready || fail "the monitor did not answer within 20 s"
log "monitor up on port $MON_PORT after $((SECONDS - T0)) s"

# --- OSD, retried: a fresh OSD has been seen to hang right after
# log_to_monitors (over msgr v1; not seen since msgr2, but kept as a guard).
osd_up() {
  local id=$1
  alive "osd.$id" || return 2
  cephcli 5 osd dump -f json | python3 -c '
import json, sys
d = json.load(sys.stdin)
sys.exit(0 if any(o["osd"] == int(sys.argv[1]) and o["up"] == 1 for o in d["osds"]) else 1)' "$id" 2>/dev/null
}
OSD_RETRIES=0
OSD_ID=
for attempt in $(seq 1 "$OSD_ATTEMPTS"); do
  STEP="creating OSD (attempt $attempt)"
  [ "$(remaining)" -gt 5 ] || fail "the overall time limit (START_TIMEOUT=$START_TIMEOUT s) is (nearly) used up"
  uuid=$(uuidgen)
  id=$(cephcli 10 osd new "$uuid") || fail "'ceph osd new' failed"
  [[ "$id" =~ ^[0-9]+$ ]] || fail "'ceph osd new' printed '$id'"
  mkdir -p "$DIR/osd/ceph-$id"
  timeout -k 2 "$(left)" ceph-osd -c "$CONF" -i "$id" --mkfs --osd-uuid "$uuid" >>"$DIR/log/setup.log" 2>&1 \
    || fail "ceph-osd --mkfs failed, see $DIR/log/setup.log"
  STEP="starting osd.$id (attempt $attempt)"
  spawn "osd.$id" ceph-osd -c "$CONF" -f -i "$id"
  rc=0
  wait_for "$OSD_START_TIMEOUT" osd_up "$id" || rc=$?
  if [ "$rc" -eq 0 ]; then
    OSD_ID=$id
    break
  fi
  if alive "osd.$id"; then
    log "osd.$id not up within ${OSD_START_TIMEOUT} s (hung start); replacing it with a fresh OSD"
  else
    log "osd.$id exited during start; replacing it with a fresh OSD"
  fi
  OSD_RETRIES=$((OSD_RETRIES + 1))
  kill_pidfile "$PIDS/osd.$id.pid" KILL 0 || fail "could not kill osd.$id"
  # Remove it from the maps so no placement group maps to it. ("osd purge"
  # is a manager command and hangs without a ceph-mgr; this is the monitor's.)
  # It may have booted just as the time ran out: mark it down first.
  cephcli 10 osd down "$id" >/dev/null 2>&1 || true
  cephcli 10 osd purge-actual "$id" --yes-i-really-mean-it >/dev/null \
    || log "could not remove osd.$id from the cluster maps"
  rm -rf "$DIR/osd/ceph-$id"
done
STEP="starting the OSD"
[ -n "$OSD_ID" ] || fail "no OSD came up in $OSD_ATTEMPTS attempts"
log "osd.$OSD_ID up after $((SECONDS - T0)) s ($OSD_RETRIES retries)"

# --- gateway
STEP="starting radosgw on 127.0.0.1:$RGW_PORT"
spawn rgw radosgw -c "$CONF" -f -n "$NAME"
rgw_listening() {
  alive rgw || fail "radosgw exited (port $RGW_PORT taken?)"
  curl -s -o /dev/null --max-time 3 "${CURL_TLS[@]}" "$SCHEME://127.0.0.1:$RGW_PORT/"
}
wait_for 60 rgw_listening || fail "radosgw did not answer HTTP within the time limit"

log "radosgw answering $SCHEME on port $RGW_PORT after $((SECONDS - T0)) s"
STEP="creating the S3 user"
admin_out=$(timeout -k 2 "$(left)" radosgw-admin -c "$CONF" -n "$NAME" user create \
  --uid=wharf --display-name=wharf --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" \
  2>>"$DIR/log/setup.log" </dev/null) || fail "radosgw-admin user create failed, see $DIR/log/setup.log"
echo "$admin_out" >>"$DIR/log/setup.log"

# s3 METHOD PATH: a signed (SigV4) request, prints the HTTP status.
s3() {
  curl -s -o "$DIR/log/s3-last-response" -w '%{http_code}' --max-time 10 -X "$1" \
    --aws-sigv4 "aws:amz:us-east-1:s3" --user "$ACCESS_KEY:$SECRET_KEY" \
    -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
    "${CURL_TLS[@]}" "$SCHEME://127.0.0.1:$RGW_PORT$2" 2>/dev/null || true
}
STEP="waiting for an authenticated ListBuckets to succeed"
list_ok() { [ "$(s3 GET /)" = 200 ]; }
wait_for 30 list_ok || fail "ListBuckets did not return 200 (last: $(cat "$DIR/log/s3-last-response" 2>/dev/null))"

log "ListBuckets OK after $((SECONDS - T0)) s"
if [ "$WARMUP" = 1 ]; then
  STEP="warm-up bucket (creates the data pools)"
  warm=/wharf-warmup-$$
  code=$(s3 PUT "$warm")
  [ "$code" = 200 ] || fail "CreateBucket returned $code: $(cat "$DIR/log/s3-last-response" 2>/dev/null)"
  code=$(s3 DELETE "$warm")
  [ "$code" = 204 ] || fail "DeleteBucket returned $code: $(cat "$DIR/log/s3-last-response" 2>/dev/null)"
fi

line="endpoint=$SCHEME://127.0.0.1:$RGW_PORT access_key=$ACCESS_KEY secret_key=$SECRET_KEY"
[ "$SCHEME" = https ] && line="$line ca=$DIR/tls/ca.pem"
echo "$line" >"$DIR/endpoint"
echo "osd_retries=$OSD_RETRIES start_seconds=$((SECONDS - T0))" >"$DIR/start-stats"
log "ready after $((SECONDS - T0)) s (osd retries: $OSD_RETRIES; mon $MON_PORT, rgw $RGW_PORT; logs in $DIR/log)"
echo "$line"
