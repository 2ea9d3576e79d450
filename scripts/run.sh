#!/usr/bin/env bash
# The main job on a fresh machine: install build prerequisites, build nova (release), pull the
# default model if it is not cached, start a swarm on this machine (a gateway with its own
# engine plus one more worker, over libp2p on 127.0.0.1) and send it a sample prompt.
# An argument replaces the prompt; KEEP=1 keeps the swarm running until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo build --release --locked -p nova
NOVA_BIN=target/release/nova exec scripts/smoke.sh "$@"
