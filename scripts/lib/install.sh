# shellcheck shell=bash
# Shared steps of install_controller.sh and install_worker.sh; sourced, not run. The sourcing
# script sets `repo` to the checkout's root first.
: "${repo:?the sourcing script sets repo}"
# Every step checks before it acts, so a second run changes nothing. Nothing here touches shell
# profiles or deletes anything outside the data dir.

# The data dir, as nova resolves it.
nova_home="${NOVA_HOME:-$HOME/.local/share/nova}"
bin_dir="$nova_home/bin"
changed=0

say() { printf '%s\n' "$*" >&2; }

is_termux() { [ -n "${TERMUX_VERSION:-}" ] || [[ "${PREFIX:-}" == *com.termux* ]]; }

# Build prerequisites: apt on Debian/Ubuntu (scripts/setup.sh), pkg on Termux.
install_prerequisites() {
  if is_termux; then
    local need=()
    command -v cargo >/dev/null || need+=(rust)
    command -v cmake >/dev/null || need+=(cmake)
    command -v clang >/dev/null || need+=(clang)
    command -v python3 >/dev/null || need+=(python)
    if [ "${#need[@]}" -gt 0 ]; then
      say "installing ${need[*]} with pkg"
      pkg install -y "${need[@]}"
      changed=1
    fi
  else
    "$repo/scripts/setup.sh"
  fi
}

# Builds nova from this checkout (cargo does nothing when it is up to date), or takes the binary
# NOVA_BIN names (a prebuilt one, e.g. in tests), and installs it into the data dir's bin/ only
# when it differs: copied to a temporary file, then renamed over the old one.
install_binary() {
  local src="${NOVA_BIN:-}"
  if [ -z "$src" ]; then
    say "building nova (release; the first build takes a while)"
    (cd "$repo" && cargo build --release --locked -p nova)
    src="$repo/target/release/nova"
  fi
  [ -x "$src" ] || { say "error: $src is not an executable nova binary"; exit 1; }
  mkdir -p "$bin_dir"
  if cmp -s "$src" "$bin_dir/nova"; then
    say "nova binary: up to date ($bin_dir/nova)"
    return
  fi
  cp "$src" "$bin_dir/.nova.tmp.$$"
  chmod 0755 "$bin_dir/.nova.tmp.$$"
  mv -f "$bin_dir/.nova.tmp.$$" "$bin_dir/nova"
  say "nova binary: installed $bin_dir/nova"
  changed=1
}

# Pulls the model (verified by sha256; a second pull only verifies).
pull_model() {
  "$bin_dir/nova" --data-dir "$nova_home" model pull "$@" >&2
}

# write_file PATH MODE: writes stdin to PATH with MODE when the content differs, via a temporary
# file in the same directory and a rename, so a crash never leaves half a file.
write_file() {
  local path="$1" mode="$2" tmp
  tmp="$(dirname "$path")/.$(basename "$path").tmp.$$"
  mkdir -p "$(dirname "$path")"
  (umask 077 && cat >"$tmp")
  chmod "$mode" "$tmp"
  if cmp -s "$tmp" "$path" && [ "$(stat -c %a "$path")" = "${mode#0}" ]; then
    rm -f "$tmp"
    return
  fi
  mv -f "$tmp" "$path"
  say "wrote $path"
  changed=1
}

# A random hex secret in PATH (mode 0600), created once and kept.
ensure_secret() {
  local path="$1"
  if [ -s "$path" ]; then
    chmod 0600 "$path"
    return
  fi
  od -An -tx1 -N24 /dev/urandom | tr -d ' \n' | write_file "$path" 0600
}

# print_systemd_unit NAME ENV_FILE COMMAND: how to run COMMAND at login as a systemd user unit;
# printed for the user to choose, never installed.
print_systemd_unit() {
  local name="$1" env_file="$2" command="$3"
  cat <<MSG
Optional, to start it at login with systemd (not installed by this script):
  mkdir -p ~/.config/systemd/user && cat > ~/.config/systemd/user/nova-$name.service <<'UNIT'
  [Unit]
  Description=nova-swarm $name
  [Service]
  EnvironmentFile=$env_file
  ExecStart=$command
  Restart=on-failure
  [Install]
  WantedBy=default.target
  UNIT
  systemctl --user daemon-reload && systemctl --user enable --now nova-$name
MSG
}

finish() {
  if [ "$changed" -eq 0 ]; then
    say "nothing to do: everything was already installed"
  fi
}
