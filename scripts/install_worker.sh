#!/usr/bin/env bash
# Installs a nova worker on this Linux machine or Android phone (Termux): build prerequisites
# (apt, or 'pkg install rust cmake clang python' on Termux), the nova binary built from this
# checkout (into <data dir>/bin), the default model (checksum verified) and a config file holding
# the gateway's address and the swarm secret (mode 0600). Idempotent: a second run with the same
# arguments changes nothing. Never edits shell profiles; prints how to start it (and an optional
# systemd user unit or Termux:Boot script) instead of installing services.
#
#   scripts/install_worker.sh --join GATEWAY --secret SECRET [--model NAME]
#   scripts/install_worker.sh --lan --secret SECRET [--model NAME]
#
# GATEWAY is the address 'nova serve' printed (/ip4/.../tcp/8788/p2p/...) or host:port.
# NOVA_HOME picks the data dir (default ~/.local/share/nova); NOVA_BIN installs a prebuilt binary.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/lib/install.sh
. "$repo/scripts/lib/install.sh"

join="${NOVA_JOIN:-}"
secret="${NOVA_SWARM_SECRET:-}"
model="smollm2-135m"
lan=0
while [ "$#" -gt 0 ]; do
  case "$1" in
    --join) join="$2"; shift 2 ;;
    --secret) secret="$2"; shift 2 ;;
    --model) model="$2"; shift 2 ;;
    --lan) lan=1; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) say "error: unknown option $1 (see --help)"; exit 2 ;;
  esac
done
if [ -z "$secret" ]; then
  say "error: --secret is required: the swarm secret 'nova serve' printed"
  exit 2
fi
if [ -z "$join" ] && [ "$lan" -eq 0 ]; then
  say "error: give --join GATEWAY (the address 'nova serve' printed, or host:port) or --lan"
  exit 2
fi

install_prerequisites
install_binary
pull_model "$model"
{
  echo "# Read by 'nova worker' through the environment; see 'nova worker --help'."
  echo "NOVA_HOME=$nova_home"
  [ -n "$join" ] && echo "NOVA_JOIN=$join"
  echo "NOVA_SWARM_SECRET=$secret"
  echo "NOVA_MODEL=$model"
} | write_file "$nova_home/worker.env" 0600
finish

flags=""
[ -z "$join" ] && flags=" --lan"
cat <<MSG

Start the worker:
  (set -a; . "$nova_home/worker.env"; exec "$bin_dir/nova" worker$flags)
MSG
if is_termux; then
  cat <<MSG
Optional, to start it when the phone boots (needs the Termux:Boot app; not installed here):
  mkdir -p ~/.termux/boot && printf '%s\n' '#!/data/data/com.termux/files/usr/bin/sh' \\
    'termux-wake-lock' '(set -a; . "$nova_home/worker.env"; exec "$bin_dir/nova" worker$flags)' \\
    > ~/.termux/boot/nova-worker && chmod +x ~/.termux/boot/nova-worker
MSG
else
  print_systemd_unit worker "$nova_home/worker.env" "$bin_dir/nova worker$flags"
fi
