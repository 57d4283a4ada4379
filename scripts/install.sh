#!/bin/bash
# Installs (or upgrades in place) weft on this host as systemd services: /opt/weft, the
# `weft` command, the `weft` system user, /etc/weft/<role>.yaml, /var/lib/weft and the units.
# Every flag is checked before anything changes; a bad one is named and nothing is touched.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: install.sh [--role agent|controlplane] [options]

  --role ROLE            agent (default) or controlplane
  --control-plane H:P    agent: the control plane's gRPC address (host:15012)
  --token TOKEN          agent: one-time join token (`weft token create`)
  --ca-pin PIN           agent: CA pin (64 hex digits, printed by `weft token create`)
  --ca-file FILE         agent: or the CA certificate (PEM), copied to /etc/weft/ca.pem
  --workload SVC:PORT[:USER]
                         agent: a local service this host serves (repeatable)
  --dns                  agent: capture DNS so that <service>.mesh resolves on this host
  --hostname NAME        node name (default: this host's name)
  --trust-domain TD      controlplane: trust domain (default weft.local)
  --source DIR           built weft checkout to install from (default: this script's checkout)
  --no-start             install and enable, but do not start or restart the units

Re-running upgrades in place: the units are restarted (the agent's sockets stay open, so no
connection is refused). Without --control-plane/--token/--ca-*, an existing config is kept.
EOF
}

die() {
  echo "install.sh: $*" >&2
  exit 2
}

role=agent control_plane='' token='' ca_pin='' ca_file='' node_name='' trust_domain=weft.local
source_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
start=yes
dns=false
workloads=()
need_value() { [[ $# -ge 2 && -n "$2" && "$2" != --* ]] || die "$1 needs a value"; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --role) need_value "$@"; role="$2"; shift 2 ;;
    --control-plane) need_value "$@"; control_plane="$2"; shift 2 ;;
    --token) need_value "$@"; token="$2"; shift 2 ;;
    --ca-pin) need_value "$@"; ca_pin="$2"; shift 2 ;;
    --ca-file) need_value "$@"; ca_file="$2"; shift 2 ;;
    --workload) need_value "$@"; workloads+=("$2"); shift 2 ;;
    --hostname) need_value "$@"; node_name="$2"; shift 2 ;;
    --trust-domain) need_value "$@"; trust_domain="$2"; shift 2 ;;
    --source) need_value "$@"; source_dir="$2"; shift 2 ;;
    --no-start) start=no; shift ;;
    --dns) dns=true; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
done

# --- checks: nothing below them changes the system until all have passed -------------------
[[ $EUID -eq 0 ]] || die "must run as root (it creates a user, units and iptables rules)"
case "$role" in agent | controlplane) ;; *) die "--role must be agent or controlplane, got '$role'" ;; esac
command -v systemctl >/dev/null || die "systemctl not found: weft installs as systemd services"
node_bin="$(command -v node || true)"
[[ -n "$node_bin" ]] || die "node not found in PATH: weft needs Node.js 20 or later"
node_major="$("$node_bin" -p 'process.versions.node.split(".")[0]')"
((node_major >= 20)) || die "Node.js $node_major is too old: weft needs 20 or later"

[[ -d "$source_dir" ]] || die "--source $source_dir: no such directory"
source_dir="$(cd "$source_dir" && pwd)"
for f in package.json package-lock.json bin/weft dist/cli/main.js native/build/Release/weft_native.node; do
  [[ -e "$source_dir/$f" ]] ||
    die "--source $source_dir is not a built weft checkout: $f is missing (run scripts/bootstrap or npm run build there)"
done

config_file=/etc/weft/$role.yaml
given_cp=no
[[ -n "$control_plane$token$ca_pin$ca_file" ]] && given_cp=yes
if [[ "$role" == agent ]]; then
  command -v iptables-restore >/dev/null || die "iptables-restore not found: install the iptables package"
  if [[ $given_cp == no && ! -f $config_file ]]; then
    die "missing --control-plane HOST:PORT, --token TOKEN and --ca-pin PIN (or --ca-file FILE): this host has no $config_file yet"
  fi
  if [[ $given_cp == yes ]]; then
    [[ -n "$control_plane" ]] || die "missing --control-plane HOST:PORT"
    [[ "$control_plane" =~ ^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})$ ]] && ((BASH_REMATCH[2] >= 1 && BASH_REMATCH[2] <= 65535)) ||
      die "--control-plane must be HOST:PORT (e.g. 10.0.0.2:15012), got '$control_plane'"
    [[ -n "$token" ]] || die "missing --token TOKEN (create one on the control plane: weft token create)"
    [[ "$token" =~ ^[A-Za-z0-9._~+/=-]+$ ]] || die "--token has characters a join token never has"
    [[ -n "$ca_pin" || -n "$ca_file" ]] || die "missing --ca-pin PIN or --ca-file FILE (printed by weft token create)"
    [[ -z "$ca_pin" || -z "$ca_file" ]] || die "give --ca-pin or --ca-file, not both"
    [[ -z "$ca_pin" || "$ca_pin" =~ ^[0-9a-f]{64}$ ]] || die "--ca-pin must be 64 lowercase hex digits, got '$ca_pin'"
    if [[ -n "$ca_file" ]]; then
      [[ -r "$ca_file" ]] || die "--ca-file $ca_file: cannot read it"
      grep -q -- '-----BEGIN CERTIFICATE-----' "$ca_file" || die "--ca-file $ca_file: not a PEM certificate"
    fi
  fi
  [[ $given_cp == yes || (${#workloads[@]} -eq 0 && -z "$node_name") ]] ||
    die "--workload and --hostname rewrite $config_file: give --control-plane, --token and --ca-* too"
  for w in ${workloads[@]+"${workloads[@]}"}; do
    [[ "$w" =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?:[0-9]{1,5}(:[a-z_][a-z0-9_-]*)?$ ]] ||
      die "--workload must be SERVICE:PORT[:USER] (e.g. echo:7000:weftapp), got '$w'"
  done
else
  [[ $given_cp == no && ${#workloads[@]} -eq 0 ]] ||
    die "--control-plane, --token, --ca-* and --workload are agent options (--role controlplane takes --trust-domain)"
  [[ "$trust_domain" =~ ^[a-z0-9._-]+$ ]] || die "--trust-domain must be lowercase letters, digits, '.', '-', '_'"
fi
[[ -z "$node_name" || "$node_name" =~ ^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]] ||
  die "--hostname must be a host name, got '$node_name'"

say() { echo "install.sh: $*"; }

# --- install ---------------------------------------------------------------------------------
if ! getent passwd weft >/dev/null; then
  say "creating system user weft"
  useradd --system --user-group --home-dir /var/lib/weft --no-create-home \
    --shell /usr/sbin/nologin --comment "weft service mesh" weft
fi

# Stage the new tree next to the old one and swap directories, so a running agent never
# sees a half-copied /opt/weft. Only production dependencies, taken from the checkout's
# node_modules by its lockfile (no network); `npm ci --omit=dev` when there is none.
stage=/opt/weft.new
rm -rf "$stage"
mkdir -p "$stage/native/build/Release"
cp -a "$source_dir/package.json" "$source_dir/package-lock.json" "$source_dir/bin" "$source_dir/dist" "$stage/"
[[ -d "$source_dir/proto" ]] && cp -a "$source_dir/proto" "$stage/"
cp "$source_dir/native/build/Release/weft_native.node" "$stage/native/build/Release/"
install -D -m 0755 "$source_dir/scripts/systemd/weft-agent-prestart" "$stage/libexec/weft-agent-prestart"
if [[ -d "$source_dir/node_modules" ]]; then
  "$node_bin" "$source_dir/scripts/systemd/copy-prod-deps.mjs" "$source_dir" "$stage"
else
  command -v npm >/dev/null || die "$source_dir has no node_modules and npm is not installed"
  (cd "$stage" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund)
fi
chown -R root:root "$stage"
chmod -R u=rwX,go=rX "$stage"
rm -rf /opt/weft.old
[[ -d /opt/weft ]] && mv /opt/weft /opt/weft.old
mv "$stage" /opt/weft
rm -rf /opt/weft.old

# The launcher runs this node binary by absolute path: the units do not depend on PATH.
cat >/usr/local/bin/weft.new <<EOF
#!/bin/sh
# weft, installed by scripts/install.sh from $source_dir
exec $node_bin /opt/weft/bin/weft "\$@"
EOF
chmod 0755 /usr/local/bin/weft.new
mv /usr/local/bin/weft.new /usr/local/bin/weft

install -d -m 0700 -o weft -g weft /var/lib/weft
# Kept by `uninstall.sh --keep-data`: the user may have come back with another uid.
chown -R weft:weft /var/lib/weft
install -d -m 0750 -o root -g weft /etc/weft

templates="$source_dir/scripts/systemd"
render() { # template output: replaces @NAME@ from the variables below
  sed -e "s|@HOSTNAME@|${node_name:-$(hostname)}|" -e "s|@CONTROL_PLANE@|$control_plane|" \
    -e "s|@TOKEN@|$token|" -e "s|@CA_LINE@|$ca_line|" -e "s|@TRUST_DOMAIN@|$trust_domain|" -e "s|@DNS@|$dns|" "$1" >"$2"
}
if [[ "$role" == agent ]]; then
  if [[ $given_cp == yes ]]; then
    if [[ -n "$ca_file" ]]; then
      install -m 0644 "$ca_file" /etc/weft/ca.pem
      ca_line="caFile: /etc/weft/ca.pem"
    else
      ca_line="caPin: \"$ca_pin\""
    fi
    render "$templates/agent.yaml.in" "$config_file.new"
    if [[ ${#workloads[@]} -gt 0 ]]; then
      sed -i '/^workloads: \[\]$/d' "$config_file.new"
      {
        echo "workloads:"
        for w in "${workloads[@]}"; do
          IFS=: read -r svc port user <<<"$w"
          echo "  - { service: $svc, port: $port${user:+, user: $user} }"
        done
      } >>"$config_file.new"
    fi
    chown root:weft "$config_file.new"
    chmod 0640 "$config_file.new"
    mv "$config_file.new" "$config_file"
    say "wrote $config_file"
  fi
  # Stops here, before any unit changes, when the config does not parse (`redirect status`
  # exits non-zero also when the rules are merely not installed yet: only the code counts).
  if check=$(/usr/local/bin/weft redirect status --config "$config_file" 2>&1 >/dev/null); [[ "$check" == *WEFT_E_CONFIG* ]]; then
    die "$config_file is not a valid agent config: $check"
  fi
  units=(weft-agent.socket weft-agent-inbound.socket weft-agent-tunnel.socket weft-agent-dns.socket
    weft-agent.service)
else
  if [[ ! -f $config_file ]]; then
    ca_line=''
    render "$templates/controlplane.yaml.in" "$config_file"
    chown root:weft "$config_file"
    chmod 0640 "$config_file"
    say "wrote $config_file"
  fi
  units=(weft-controlplane.service)
fi

for unit in "${units[@]}"; do
  install -m 0644 "$templates/$unit" "/etc/systemd/system/$unit"
done
systemctl daemon-reload
systemctl enable "${units[@]}" >/dev/null 2>&1
if [[ $start == yes ]]; then
  main_unit="${units[-1]}"
  if [[ "$role" == agent ]]; then
    systemctl start weft-agent.socket weft-agent-inbound.socket weft-agent-tunnel.socket \
      weft-agent-dns.socket
  fi
  if systemctl is-active --quiet "$main_unit"; then
    say "upgrading: restarting $main_unit"
    systemctl restart "$main_unit"
  else
    systemctl reset-failed "$main_unit" 2>/dev/null || true
    systemctl start "$main_unit"
  fi
  say "$main_unit is $(systemctl is-active "$main_unit")"
fi
say "installed weft $("$node_bin" -p "require('/opt/weft/package.json').version") as $role"
