#!/usr/bin/env bash
# Install and configure podman for the real-container tests on Debian
# (tests/podman, `make podman-e2e`); .ci/run calls it.
# crun fails on these hybrid-cgroup machines: use runc with cgroupfs, and no
# default ulimits (the default nofile limit is refused here).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
# --no-install-recommends leaves out what rootful `podman kube play` needs:
# catatonit (the infra "pause" image is built from it), netavark + aardvark-dns
# + iptables (the pod's network). debootstrap makes the base image (no registry
# is reachable), gcc + libc6-dev build the static FROM-scratch demo app.
PACKAGES=(podman buildah runc conmon catatonit netavark aardvark-dns iptables
  fuse-overlayfs slirp4netns uidmap debootstrap gcc libc6-dev util-linux)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
mkdir -p /etc/containers
cat > /etc/containers/containers.conf <<'CONF'
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
CONF
# Fail here, with podman's own words, rather than in the middle of the tests.
podman info --format 'podman {{.Version.Version}}: runtime {{.Host.OCIRuntime.Name}}, cgroups {{.Host.CgroupManager}} ({{.Host.CgroupsVersion}}), network {{.Host.NetworkBackend}}'
buildah --version
