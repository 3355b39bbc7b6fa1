#!/usr/bin/env bash
# What one node's CPU per GiB uploaded is on --storage s3 against an HTTPS
# endpoint (a Ceph gateway with TLS=1 on this machine): three 1 GiB uploads
# with curl over explicit FTPS, the node's user+system CPU around each.
# Session 20 ran it before and after payloads went unsigned over TLS
# (benches/RESULTS.md).
#
#   bash benches/s3-payload-signing.sh      # W=path/to/wharf (default: the release build)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
W=${W:-$repo/target/release/wharf}
D=${BENCH_DIR:-/tmp/wharf-s3-signing}; rm -rf $D; mkdir -p $D
line=$(TLS=1 MEMSTORE_BYTES=$((6<<30)) bash $repo/tests/support/ceph-rgw.sh start $D/ceph 2>/dev/null)
f() { tr ' ' '\n' <<<"$line" | sed -n "s/^$1=//p"; }
EP=$(f endpoint); AK=$(f access_key); SK=$(f secret_key); CA=$(f ca)
curl -sS --fail --cacert $CA --aws-sigv4 aws:amz:us-east-1:s3 --user $AK:$SK -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -X PUT $EP/bench
printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' $AK $SK > $D/creds
$W serve --data-dir $D/data --listen 127.0.0.1:2199 --implicit-listen off --cluster-listen 127.0.0.1:7199 --http-listen off --pasv-ports 46000-46099 --storage s3 --s3-endpoint $EP --s3-bucket bench --s3-path-style --s3-credentials-file $D/creds --s3-ca-file $CA --user bench:benchbench123 > $D/log 2>&1 &
pid=$!
sleep 4
head -c $((1<<30)) /dev/urandom > $D/gib.bin
cpu() { awk '{print $14+$15}' /proc/$pid/stat; }
for i in 1 2 3; do
  before=$(cpu); t0=$(date +%s.%N)
  curl -sS --ssl-reqd -k --user bench:benchbench123 -T $D/gib.bin ftp://127.0.0.1:2199/g$i.bin
  t1=$(date +%s.%N); after=$(cpu)
  awk -v b=$before -v a=$after -v t0=$t0 -v t1=$t1 -v hz=$(getconf CLK_TCK) 'BEGIN {printf "upload %s: %.2f s CPU/GiB, %.0f MiB/s\n", '$i', (a-b)/hz, 1024/(t1-t0)}'
done
kill $pid; wait $pid 2>/dev/null || true
bash $repo/tests/support/ceph-rgw.sh stop $D/ceph
