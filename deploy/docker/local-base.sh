#!/usr/bin/env bash
# Makes a Debian bookworm base image without a container registry:
# debootstrap a minimal root file system from the Debian archive, then
# `docker import` it. The image carries HAProxy too, so compose.yaml can run
# its balancer from the same base (HAPROXY_IMAGE).
#
#     deploy/docker/local-base.sh [IMAGE]      (default wharf-local/debian:bookworm)
#
# Needs root, debootstrap and access to a Debian mirror (MIRROR, default
# http://deb.debian.org/debian). Does nothing when IMAGE already exists.
set -euo pipefail

image=${1:-wharf-local/debian:bookworm}
mirror=${MIRROR:-http://deb.debian.org/debian}

if docker image inspect "$image" >/dev/null 2>&1; then
    echo "$image already exists"
    exit 0
fi
command -v debootstrap >/dev/null || {
    echo "debootstrap is missing: apt-get install -y debootstrap" >&2
    exit 1
}
root=$(mktemp -d /tmp/wharf-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=haproxy,ca-certificates bookworm "$root" "$mirror"
# Package caches and logs are not part of the image.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*
tar -C "$root" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' - "$image"
echo "built $image"
