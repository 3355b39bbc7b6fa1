#!/usr/bin/env bash
# What `wharf storage scan` costs per object, and whether that stays flat as
# the bucket grows: objects are written beside Wharf with boto3 (32 threads,
# 64 bytes each, 100 directories), then scanned; rounds add more objects, so
# each later scan also walks the ones already known. Prints, per round, the
# objects listed, the wall time, and the CPU of the node and of the CLI per
# 1,000 objects. One node, Ceph on the same machine (plain HTTP). Needs
# GNU time (/usr/bin/time) and boto3.
#
#   bash benches/s3-scan.sh                 # W=path/to/wharf (default: the release build)
#   ROUNDS="10000 40000 50000" bash benches/s3-scan.sh   # objects added per round
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
W=${W:-$repo/target/release/wharf}
ROUNDS=${ROUNDS:-"10000 40000 50000"}
D=${BENCH_DIR:-/tmp/wharf-s3-scan}; rm -rf "$D"; mkdir -p "$D"
line=$(MEMSTORE_BYTES=$((6<<30)) bash "$repo/tests/support/ceph-rgw.sh" start "$D/ceph" 2>/dev/null)
trap 'kill $pid 2>/dev/null || true; bash "$repo/tests/support/ceph-rgw.sh" stop "$D/ceph" >/dev/null 2>&1 || true' EXIT
f() { tr ' ' '\n' <<<"$line" | sed -n "s/^$1=//p"; }
EP=$(f endpoint); AK=$(f access_key); SK=$(f secret_key)
curl -sS --fail --aws-sigv4 aws:amz:us-east-1:s3 --user "$AK:$SK" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -X PUT "$EP/scan"
printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' "$AK" "$SK" > "$D/creds"
"$W" serve --data-dir "$D/data" --listen 127.0.0.1:2198 --implicit-listen off --cluster-listen 127.0.0.1:7198 \
  --http-listen off --pasv-ports 46100-46199 --storage s3 --s3-endpoint "$EP" --s3-bucket scan --s3-path-style \
  --s3-credentials-file "$D/creds" --user bench:benchbench123 > "$D/log" 2>&1 &
pid=$!
sleep 4
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
start=0
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; wharf: $W"
for add in $ROUNDS; do
  python3 - "$EP" "$AK" "$SK" "$start" "$add" <<'EOF'
import sys, boto3, botocore.config
from concurrent.futures import ThreadPoolExecutor
endpoint, key, secret, start, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key, aws_secret_access_key=secret,
                  region_name="us-east-1",
                  config=botocore.config.Config(s3={"addressing_style": "path"}, max_pool_connections=32))
def put(i):
    s3.put_object(Bucket="scan", Key=f"home/bench/scan/d{i % 100:03}/f{i:07}", Body=b"%064d" % i)
with ThreadPoolExecutor(32) as pool:
    list(pool.map(put, range(start, start + count)))
EOF
  start=$((start + add))
  node_before=$(cpu $pid); t0=$(date +%s.%N)
  /usr/bin/time -f "%U %S" -o "$D/cli.time" \
    "$W" storage scan --data-dir "$D/data" --s3-credentials-file "$D/creds" > "$D/scan.out"
  t1=$(date +%s.%N); node_after=$(cpu $pid)
  cli_cpu=$(awk '{print ($1 + $2) * '"$hz"'}' "$D/cli.time")
  head -1 "$D/scan.out"
  awk -v n=$start -v t0="$t0" -v t1="$t1" -v nb="$node_before" -v na="$node_after" -v c="$cli_cpu" -v hz="$hz" \
    'BEGIN { printf "  %d objects listed in %.1f s (%.0f objects/s); per 1,000 objects: node %.3f s CPU, CLI %.3f s CPU\n",
             n, t1 - t0, n / (t1 - t0), (na - nb) / hz / n * 1000, c / hz / n * 1000 }'
done
echo "node RSS after the last scan: $(awk '/VmRSS/ {print $2, $3}' /proc/$pid/status)"
