#!/usr/bin/env bash
# Installs a nova gateway ("controller") on this Linux machine: build prerequisites, the nova
# binary built from this checkout (into <data dir>/bin), the default model (checksum verified),
# a generated swarm secret and API token (mode 0600) and a config file. Idempotent: a second run
# changes nothing. Never edits shell profiles; prints how to start it (and an optional systemd
# user unit) instead of installing services.
#
#   scripts/install_controller.sh [--bind ADDR] [--p2p-listen MULTIADDR] [--lan]
#
# NOVA_HOME picks the data dir (default ~/.local/share/nova); NOVA_BIN installs a prebuilt binary
# instead of building one.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/lib/install.sh
. "$repo/scripts/lib/install.sh"

bind="127.0.0.1:8787"
p2p_listen="/ip4/127.0.0.1/tcp/8788"
lan=0
while [ "$#" -gt 0 ]; do
  case "$1" in
    --bind) bind="$2"; shift 2 ;;
    --p2p-listen) p2p_listen="$2"; shift 2 ;;
    --lan) lan=1; p2p_listen="/ip4/0.0.0.0/tcp/8788"; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) say "error: unknown option $1 (see --help)"; exit 2 ;;
  esac
done

install_prerequisites
install_binary
pull_model smollm2-135m
ensure_secret "$nova_home/swarm-secret"
ensure_secret "$nova_home/api-token"
write_file "$nova_home/controller.env" 0600 <<CONF
# Read by 'nova serve' through the environment; see 'nova serve --help'.
NOVA_HOME=$nova_home
NOVA_API_ADDR=$bind
NOVA_P2P_LISTEN=$p2p_listen
CONF
finish

lan_flag=""
[ "$lan" -eq 1 ] && lan_flag=" --lan"
cat <<MSG

Start the gateway:
  (set -a; . "$nova_home/controller.env"; exec "$bin_dir/nova" serve$lan_flag)
It prints the exact 'nova worker ...' command (with the swarm secret) for other devices.
API token: $nova_home/api-token    swarm secret: $nova_home/swarm-secret

MSG
print_systemd_unit gateway "$nova_home/controller.env" "$bin_dir/nova serve$lan_flag"
