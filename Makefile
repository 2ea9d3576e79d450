# Convenience targets over the scripts; each one is idempotent.
#   make controller            install a gateway on this machine (scripts/install_controller.sh)
#   make worker JOIN=… SECRET=… install a worker (scripts/install_worker.sh; JOIN may be host:port)
#   make test                  every check and test (scripts/test.sh, as CI runs it)
#   make package               dist/nova-swarm-<version>.tgz: release binary, version.json, SHA256SUMS
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c

.PHONY: controller worker test package

controller:
	scripts/install_controller.sh

worker:
	@if [ -z "$(SECRET)" ]; then echo "usage: make worker JOIN=<gateway address> SECRET=<swarm secret>  (or LAN=1 instead of JOIN)" >&2; exit 2; fi
	scripts/install_worker.sh $(if $(JOIN),--join "$(JOIN)",--lan) --secret "$(SECRET)"

test:
	scripts/test.sh

package:
	cargo build --release --locked -p nova
	target/release/nova bundle build --binary target/release/nova --out dist
