#!/bin/sh
# Install the Seamless Grid gateway on Raspberry Pi OS / Debian 12-13 (arm64 or amd64).
#
#   sudo deploy/install.sh                          # from this checkout (uv.lock)
#   sudo deploy/install.sh --wheel seamless_grid-0.1.0-py3-none-any.whl   # that build of it
#   deploy/install.sh --destdir /tmp/root --offline # staged (packaging, tests), uv's cache only
#
# Puts the gateway (its runtime dependencies only, locked by uv.lock) in a venv under
# /opt/seamless-grid/venv, its config in /etc/sgrid (an existing one is kept), the systemd unit in
# /usr/lib/systemd/system, the mosquitto config in /etc/mosquitto/conf.d and the user sgrid in
# /usr/lib/sysusers.d. With --destdir everything goes below that directory and nothing is started
# or created on this machine (a .deb would be built from such a tree). Needs python3 (>= 3.11)
# and uv (https://docs.astral.sh/uv/; `pip install uv` works); --offline uses only uv's cache.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
destdir=""
wheel=""
offline=""
python="${PYTHON:-python3}"

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --destdir) destdir=$2; shift 2 ;;
    --wheel) wheel=$2; shift 2 ;;
    --offline) offline="--offline"; shift ;;
    --python) python=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "install.sh: unknown option $1" >&2; usage ;;
  esac
done

say() { echo "install: $*"; }
die() { echo "install: error: $*" >&2; exit 1; }

command -v uv >/dev/null 2>&1 || die "uv is not installed (sudo apt-get install pipx && pipx install uv, or pip install uv)"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
  || die "$python is missing or older than 3.11"
if [ -z "$destdir" ] && [ "$(id -u)" -ne 0 ]; then
  die "run as root (sudo), or stage with --destdir DIR"
fi

opt="$destdir/opt/seamless-grid"
etc="$destdir/etc/sgrid"
unitdir="$destdir/usr/lib/systemd/system"

say "venv in $opt/venv (runtime dependencies exactly as uv.lock pins them)"
mkdir -p "$opt"
uv venv -q --relocatable --python "$python" --allow-existing "$opt/venv" || die "uv venv failed"
(cd "$repo" && UV_PROJECT_ENVIRONMENT="$opt/venv" uv sync -q --frozen --no-default-groups \
  --no-editable --inexact $offline --python "$opt/venv/bin/python") \
  || die "installing the gateway into $opt/venv failed"
if [ -n "$wheel" ]; then  # a given build of the gateway instead of this checkout's
  [ -f "$wheel" ] || die "no wheel at $wheel"
  uv pip install -q $offline --no-deps --reinstall --python "$opt/venv/bin/python" "$wheel" \
    || die "installing $wheel failed"
fi

say "config in $etc"
install -d -m 0750 "$etc"
if [ -f "$etc/gateway.toml" ]; then
  say "keeping the existing $etc/gateway.toml"
else
  install -m 0640 "$repo/gateway/examples/gateway.toml" "$etc/gateway.toml"
fi

say "systemd unit, user, mosquitto config"
install -D -m 0644 "$repo/deploy/systemd/seamless-grid-gateway.service" \
  "$unitdir/seamless-grid-gateway.service"
install -D -m 0644 "$repo/deploy/sysusers.d/seamless-grid.conf" \
  "$destdir/usr/lib/sysusers.d/seamless-grid.conf"
install -D -m 0644 "$repo/deploy/mosquitto/seamless-grid.conf" \
  "$destdir/etc/mosquitto/conf.d/seamless-grid.conf"
install -D -m 0644 "$repo/deploy/mosquitto/acl.example" \
  "$destdir/usr/share/doc/seamless-grid/mosquitto-acl.example"

if [ -n "$destdir" ]; then
  say "staged in $destdir (nothing started)"
  exit 0
fi
systemd-sysusers /usr/lib/sysusers.d/seamless-grid.conf
chgrp -R sgrid "$etc"
systemctl daemon-reload
say "done. Next: edit $etc/gateway.toml, then"
say "  /opt/seamless-grid/venv/bin/sgrid gateway check-config --config $etc/gateway.toml"
say "  systemctl enable --now seamless-grid-gateway"
