#!/bin/bash
# Installs (or upgrades in place) weft on this host as systemd services: /opt/weft, the `weft`
# command, /etc/weft/<role>.yaml and the units. An agent runs as user `weft` with its state in
# /var/lib/weft; the control plane as user `weft-cp` with its state, CA and admin credentials in
# /var/lib/weft-cp, which the agent's user cannot read. Every flag is checked before anything
# changes; a bad one is named and nothing is touched. It returns when the unit is ready (both
# units are Type=notify), or prints the unit's own error from the journal. weft runs on the
# checkout's pinned Node.js (runtime/node, from scripts/bootstrap), copied to /opt/weft/runtime/node:
# the host needs no node of its own.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: install.sh [--role agent|controlplane] [options]

  --role ROLE            agent (default) or controlplane
  --control-plane H:P    agent: the control plane's gRPC address (host:15012)
  --token-file FILE      agent: the one-time join token (`weft token create`), read from FILE
                         (the token alone, or that command's output); `-` reads standard input
  --token -              agent: the same as --token-file - (a token is never taken from argv,
                         where every user of this host sees it in ps)
  --ca-pin PIN           agent: CA pin (64 hex digits, printed by `weft token create`)
  --ca-file FILE         agent: or the CA certificate (PEM), copied to /etc/weft/ca.pem
  --workload SERVICE:PORT[:USER]
                         agent: a local service this host serves (repeatable); USER, an
                         existing user, is the one its processes run as: their outbound
                         connections carry the service's identity
  --dns                  agent: capture DNS so that <service>.mesh resolves on this host
  --hostname NAME        node name (default: this host's name)
  --trust-domain TD      controlplane: trust domain (default weft.local; a re-run keeps the
                         config's)
  --store file|etcd      controlplane: where the state lives (default: the config's, else file)
  --etcd-endpoints URLS  controlplane: etcd client URLs, comma-separated (with --store etcd)
  --etcd-prefix P        controlplane: the key prefix in etcd (default /weft/)
  --etcd-ca FILE         controlplane: CA of the etcd members (https://), copied to /etc/weft
  --etcd-cert FILE       controlplane: client certificate for etcd, copied to /etc/weft
  --etcd-key FILE        controlplane: its key, copied to /etc/weft (0640, group weft-cp)
  --ca-kek-file FILE     controlplane: with --store etcd, the key-encryption key sealing the CA
                         key in etcd (32 random bytes, mode 0600; the same file on every
                         replica), copied to /etc/weft/ca-kek (user weft-cp, 0600)
  --print-config         controlplane: check every flag, print the config it would write, and
                         change nothing
  --source DIR           built weft checkout to install from (default: this script's checkout)
  --no-start             install and enable, but do not start or restart the units

Re-running upgrades in place: the agent's master execs into the new code (same pid, new
workers; open connections finish on the previous ones) and install.sh waits until it runs the
new build, or exits 1 with the reason (the agent keeps serving); the control plane restarts. Without --control-plane/--token-file/--ca-*, an existing config is
kept, and so is a joined node's identity (/var/lib/weft): an upgrade needs no new token.
EOF
}

die() {
  echo "install.sh: $*" >&2
  exit 2
}
say() { echo "install.sh: $*"; }

role=agent control_plane='' token_source='' ca_pin='' ca_file='' node_name=''
trust_domain=weft.local trust_domain_given=no
store='' etcd_endpoints='' etcd_prefix='' etcd_ca='' etcd_cert='' etcd_key='' kek_file=''
print_config=no
source_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
start=yes
dns=false
workloads=()
need_value() { [[ $# -ge 2 && -n "$2" && ("$2" == - || "$2" != -*) ]] || die "$1 needs a value"; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --role) need_value "$@"; role="$2"; shift 2 ;;
    --control-plane) need_value "$@"; control_plane="$2"; shift 2 ;;
    --token-file) need_value "$@"; token_source="$2"; shift 2 ;;
    --token)
      # Not echoed: the value may be the very secret this refuses to handle.
      [[ $# -ge 2 && "$2" == - ]] ||
        die "--token takes only '-' (standard input): a token on the command line is visible to every user in ps. Use --token-file FILE, or --token - with the token on standard input"
      token_source=-
      shift 2
      ;;
    --ca-pin) need_value "$@"; ca_pin="$2"; shift 2 ;;
    --ca-file) need_value "$@"; ca_file="$2"; shift 2 ;;
    --workload) need_value "$@"; workloads+=("$2"); shift 2 ;;
    --hostname) need_value "$@"; node_name="$2"; shift 2 ;;
    --trust-domain) need_value "$@"; trust_domain="$2"; trust_domain_given=yes; shift 2 ;;
    --store) need_value "$@"; store="$2"; shift 2 ;;
    --etcd-endpoints) need_value "$@"; etcd_endpoints="$2"; shift 2 ;;
    --etcd-prefix) need_value "$@"; etcd_prefix="$2"; shift 2 ;;
    --etcd-ca) need_value "$@"; etcd_ca="$2"; shift 2 ;;
    --etcd-cert) need_value "$@"; etcd_cert="$2"; shift 2 ;;
    --etcd-key) need_value "$@"; etcd_key="$2"; shift 2 ;;
    --ca-kek-file) need_value "$@"; kek_file="$2"; shift 2 ;;
    --print-config) print_config=yes; shift ;;
    --source) need_value "$@"; source_dir="$2"; shift 2 ;;
    --no-start) start=no; shift ;;
    --dns) dns=true; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
done

# The join token from a file or standard input, in this shell's memory only: no command that
# could show it in ps gets it as an argument. A line "token: T" (`weft token create` output)
# gives T; otherwise the first non-empty line is the token.
read_token() {
  local text line first=''
  if [[ "$1" == - ]]; then
    if [[ -t 0 ]]; then
      read -rs -p "join token: " text
      echo >&2
    else
      text="$(cat)"
    fi
  else
    [[ -r "$1" ]] || die "--token-file $1: cannot read it"
    text="$(<"$1")"
  fi
  while IFS= read -r line; do
    line="${line#"${line%%[![:space:]]*}"}"
    line="${line%"${line##*[![:space:]]}"}"
    if [[ "$line" =~ ^token:[[:space:]]*([^[:space:]]+)$ ]]; then
      token="${BASH_REMATCH[1]}"
      return
    fi
    [[ -z "$first" && -n "$line" ]] && first="$line"
  done <<<"$text"
  token="$first"
}

# The control plane's store flags (--store etcd and its TLS files, the KEK), checked as the
# control plane itself checks them; sets store_lines, the config's store section.
check_store_flags() {
  local url file
  [[ -z "$store" || "$store" == file || "$store" == etcd ]] || die "--store must be file or etcd, got '$store'"
  if [[ "$store" != etcd ]]; then
    [[ -z "$etcd_endpoints$etcd_prefix$etcd_ca$etcd_cert$etcd_key$kek_file" ]] ||
      die "--etcd-*, --ca-kek-file need --store etcd"
    store_lines="store: { type: file }"
    return
  fi
  [[ -n "$etcd_endpoints" ]] || die "--store etcd needs --etcd-endpoints URL,... (the etcd members' client URLs)"
  local scheme='' endpoints=()
  IFS=, read -ra endpoints <<<"$etcd_endpoints"
  for url in "${endpoints[@]}"; do
    [[ "$url" =~ ^(https?)://(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})$ ]] &&
      ((BASH_REMATCH[3] >= 1 && BASH_REMATCH[3] <= 65535)) ||
      die "--etcd-endpoints: '$url' is not a client URL: write http(s)://HOST:PORT"
    [[ -z "$scheme" || "$scheme" == "${BASH_REMATCH[1]}" ]] || die "--etcd-endpoints: give all http:// or all https://"
    scheme="${BASH_REMATCH[1]}"
  done
  [[ -z "$etcd_prefix" || "$etcd_prefix" =~ ^/([A-Za-z0-9._-]+/)*$ ]] ||
    die "--etcd-prefix must start and end with / (e.g. /weft/), got '$etcd_prefix'"
  [[ "$scheme" == https || -z "$etcd_ca$etcd_cert$etcd_key" ]] ||
    die "--etcd-ca/--etcd-cert/--etcd-key are TLS files, but the endpoints are http://"
  [[ -z "$etcd_cert" && -z "$etcd_key" || -n "$etcd_cert" && -n "$etcd_key" ]] ||
    die "--etcd-cert and --etcd-key go together (a client certificate and its key)"
  for file in "$etcd_ca" "$etcd_cert"; do
    [[ -z "$file" ]] || grep -q -- '-----BEGIN CERTIFICATE-----' "$file" 2>/dev/null ||
      die "$file: not a readable PEM certificate"
  done
  [[ -z "$etcd_key" ]] || grep -q -- 'PRIVATE KEY-----' "$etcd_key" 2>/dev/null ||
    die "--etcd-key $etcd_key: not a readable PEM private key"
  [[ -n "$kek_file" ]] ||
    die "--store etcd needs --ca-kek-file FILE: the key-encryption key that seals the CA key in etcd, the same on every replica (make it once: umask 077; head -c 32 /dev/urandom > FILE)"
  [[ -r "$kek_file" && -f "$kek_file" ]] || die "--ca-kek-file $kek_file: cannot read it"
  (($(stat -c %s "$kek_file") == 32)) || die "--ca-kek-file $kek_file: holds $(stat -c %s "$kek_file") bytes, not 32 random bytes"
  ((8#$(stat -c %a "$kek_file") & 8#077)) &&
    die "--ca-kek-file $kek_file: group or others may access it (mode $(stat -c %a "$kek_file")): chmod 600 $kek_file"
  if [[ -f $cp_data_dir/store/state.json ]]; then
    die "$cp_data_dir holds this control plane's state in the embedded store: move it into etcd first (systemctl stop weft-controlplane; weft controlplane migrate --from $cp_data_dir --to etcd --etcd-endpoints ... --ca-kek-file ...; mv $cp_data_dir/store $cp_data_dir/store.migrated), then run install.sh again"
  fi
  local list
  list="$(printf '"%s", ' "${endpoints[@]}")"
  store_lines="store:
  type: etcd
  endpoints: [${list%, }]
  prefix: \"${etcd_prefix:-/weft/}\""
  [[ -z "$etcd_ca" ]] || store_lines+=$'\n'"  caFile: $etcd_ca_dest"
  [[ -z "$etcd_cert" ]] || store_lines+=$'\n'"  certFile: $etcd_cert_dest"$'\n'"  keyFile: $etcd_key_dest"
  store_lines+=$'\n'"caKekFile: $kek_dest"
}

# --- checks: nothing below them changes the system until all have passed -------------------
[[ $EUID -eq 0 ]] || die "must run as root (it creates a user, units and iptables rules)"
case "$role" in agent | controlplane) ;; *) die "--role must be agent or controlplane, got '$role'" ;; esac
command -v systemctl >/dev/null || die "systemctl not found: weft installs as systemd services"

[[ -d "$source_dir" ]] || die "--source $source_dir: no such directory"
source_dir="$(cd "$source_dir" && pwd)"
for f in package.json package-lock.json bin/weft dist/cli/main.js native/build/Release/weft_native.node \
  runtime/node/bin/node runtime/node/.pin; do
  [[ -e "$source_dir/$f" ]] ||
    die "--source $source_dir is not a built weft checkout: $f is missing (run scripts/bootstrap or npm run build there)"
done
# The checkout's runtime must be the release it pins (bootstrap again after a pin change), and
# run here: the binary links libatomic and libstdc++, which a minimal Debian may lack.
source_node="$source_dir/runtime/node/bin/node"
pinned="$(sed -n 's/^version[[:space:]]\{1,\}//p' "$source_dir/runtime/node.pin")"
node_version="$("$source_node" --version 2>&1)" ||
  die "the pinned Node.js ($source_node) does not run on this host: $node_version (Debian: apt-get install libatomic1 libstdc++6)"
[[ "$node_version" == "v$pinned" ]] ||
  die "$source_dir/runtime/node is Node.js $node_version, but runtime/node.pin pins $pinned: run scripts/bootstrap there"

config_file=/etc/weft/$role.yaml
cp_data_dir=/var/lib/weft-cp
old_cp_data_dir=/var/lib/weft/controlplane
token=''
given_cp=no
given_store=no
[[ -n "$store$etcd_endpoints$etcd_prefix$etcd_ca$etcd_cert$etcd_key$kek_file" ]] && given_store=yes
# Where install.sh puts the etcd TLS files and the KEK (the unit reads /etc, writes nothing there).
etcd_ca_dest=/etc/weft/etcd-ca.pem etcd_cert_dest=/etc/weft/etcd-client.pem
etcd_key_dest=/etc/weft/etcd-client.key kek_dest=/etc/weft/ca-kek
[[ -n "$control_plane$token_source$ca_pin$ca_file" ]] && given_cp=yes
if [[ "$role" == agent ]]; then
  [[ $given_store == no && $print_config == no ]] ||
    die "--store, --etcd-*, --ca-kek-file and --print-config are controlplane options (--role controlplane)"
  command -v iptables-restore >/dev/null || die "iptables-restore not found: install the iptables package"
  if [[ $given_cp == no && ! -f $config_file ]]; then
    die "missing --control-plane HOST:PORT, --token-file FILE (or --token -) and --ca-pin PIN (or --ca-file FILE): this host has no $config_file yet"
  fi
  if [[ $given_cp == yes ]]; then
    [[ -n "$control_plane" ]] || die "missing --control-plane HOST:PORT"
    [[ "$control_plane" =~ ^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})$ ]] && ((BASH_REMATCH[2] >= 1 && BASH_REMATCH[2] <= 65535)) ||
      die "--control-plane must be HOST:PORT (e.g. 10.0.0.2:15012), got '$control_plane'"
    [[ -n "$token_source" ]] ||
      die "missing --token-file FILE or --token - (standard input): the join token from \`weft token create\` on the control plane"
    read_token "$token_source"
    [[ -n "$token" ]] || die "no join token in ${token_source/#-/standard input}"
    [[ "$token" =~ ^[A-Za-z0-9._~+/=-]+$ ]] ||
      die "the join token in ${token_source/#-/standard input} has characters a join token never has (give the token alone, or the output of weft token create)"
    [[ -n "$ca_pin" || -n "$ca_file" ]] || die "missing --ca-pin PIN or --ca-file FILE (printed by weft token create)"
    [[ -z "$ca_pin" || -z "$ca_file" ]] || die "give --ca-pin or --ca-file, not both"
    [[ -z "$ca_pin" || "$ca_pin" =~ ^[0-9a-f]{64}$ ]] || die "--ca-pin must be 64 lowercase hex digits, got '$ca_pin'"
    if [[ -n "$ca_file" ]]; then
      [[ -r "$ca_file" ]] || die "--ca-file $ca_file: cannot read it"
      grep -q -- '-----BEGIN CERTIFICATE-----' "$ca_file" || die "--ca-file $ca_file: not a PEM certificate"
    fi
  fi
  [[ $given_cp == yes || (${#workloads[@]} -eq 0 && -z "$node_name") ]] ||
    die "--workload and --hostname rewrite $config_file: give --control-plane, --token-file and --ca-* too"
  for w in ${workloads[@]+"${workloads[@]}"}; do
    [[ "$w" =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?:([0-9]{1,5})(:([a-z_][a-z0-9_-]*))?$ ]] &&
      ((BASH_REMATCH[2] >= 1 && BASH_REMATCH[2] <= 65535)) ||
      die "--workload must be SERVICE:PORT[:USER] (e.g. echo:7000:weftapp), got '$w'"
    user="${BASH_REMATCH[4]}"
    [[ -z "$user" ]] || getent passwd "$user" >/dev/null ||
      die "--workload $w: there is no user '$user' on this host (create it first, or leave out :$user; it names the user the service's processes run as)"
  done
else
  [[ $given_cp == no && ${#workloads[@]} -eq 0 ]] ||
    die "--control-plane, --token-file, --ca-* and --workload are agent options (--role controlplane takes --trust-domain)"
  [[ "$trust_domain" =~ ^[a-z0-9._-]+$ ]] || die "--trust-domain must be lowercase letters, digits, '.', '-', '_'"
  check_store_flags
  # The unit lets the control plane write only /var/lib/weft-cp. State in the place older
  # installs used (/var/lib/weft/controlplane, user weft) is moved there below; any other
  # dataDir is the operator's choice, which this script does not guess how to move.
  migrate=no
  if [[ -f $config_file ]]; then
    configured="$(sed -n 's/^dataDir:[[:space:]]*//p' "$config_file" | tr -d "\"' ")"
    case "${configured:-$old_cp_data_dir}" in
      "$cp_data_dir") ;;
      "$old_cp_data_dir") [[ -d $old_cp_data_dir ]] && migrate=yes ;;
      *) die "$config_file: dataDir is $configured, but weft-controlplane.service (user weft-cp) may write only $cp_data_dir: stop the control plane, move that directory's contents to $cp_data_dir, set dataDir: $cp_data_dir, and run install.sh again" ;;
    esac
    if [[ $migrate == yes && -n "$(ls -A "$cp_data_dir" 2>/dev/null)" ]]; then
      die "both $old_cp_data_dir and $cp_data_dir hold control plane state: keep the one in use ($config_file names $old_cp_data_dir), remove the other, and run install.sh again"
    fi
  fi
fi
[[ -z "$node_name" || "$node_name" =~ ^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]] ||
  die "--hostname must be a host name, got '$node_name'"
if [[ "$role" == controlplane && $trust_domain_given == no && -f $config_file ]]; then
  # A re-run that rewrites the config keeps its trust domain: another would void every identity.
  configured_td="$(sed -n 's/^trustDomain:[[:space:]]*//p' "$config_file" | tr -d "\"' ")"
  trust_domain="${configured_td:-$trust_domain}"
fi
if [[ $print_config == yes ]]; then
  [[ "$role" == controlplane ]] || die "--print-config is a controlplane option (--role controlplane)"
  text="$(<"$source_dir/scripts/systemd/controlplane.yaml.in")"
  text="${text//@TRUST_DOMAIN@/$trust_domain}"
  printf '%s\n' "${text//@STORE@/$store_lines}"
  exit 0
fi

# --- install ---------------------------------------------------------------------------------
if [[ "$role" == agent ]]; then
  service_user=weft
  service_home=/var/lib/weft
  comment="weft service mesh agent"
else
  service_user=weft-cp
  service_home=$cp_data_dir
  comment="weft service mesh control plane"
fi
if ! getent passwd "$service_user" >/dev/null; then
  say "creating system user $service_user"
  useradd --system --user-group --home-dir "$service_home" --no-create-home \
    --shell /usr/sbin/nologin --comment "$comment" "$service_user"
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
# The runtime: the binary and its licence (headers and docs are for building, not running).
install -d "$stage/runtime/node/bin"
cp -a "$source_dir/runtime/node/bin/node" "$stage/runtime/node/bin/"
cp -a "$source_dir/runtime/node/LICENSE" "$source_dir/runtime/node/.pin" "$stage/runtime/node/"
cp -a "$source_dir/runtime/node.pin" "$stage/runtime/"
for helper in weft-agent-prestart weft-agent-poststop; do
  install -D -m 0755 "$source_dir/scripts/systemd/$helper" "$stage/libexec/$helper"
done
install -m 0644 "$source_dir/scripts/systemd/upgrade-wait.mjs" "$stage/libexec/"
# Which code this is (src/agent/build-id.ts): the agent's master and workers report it, so an
# upgrade can be seen to have taken. A hash of the code, so the same code gives the same id.
build_id="$(cd "$stage" && find dist native/build/Release package.json -type f -print0 | sort -z |
  xargs -0 sha256sum | sha256sum | cut -c1-16)"
echo "$build_id" >"$stage/build-id"
if [[ -d "$source_dir/node_modules" ]]; then
  "$source_node" "$source_dir/scripts/systemd/copy-prod-deps.mjs" "$source_dir" "$stage"
else
  command -v npm >/dev/null || die "$source_dir has no node_modules and npm is not installed"
  (cd "$stage" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund)
fi
chown -R root:root "$stage"
chmod -R u=rwX,go=rX "$stage"
rm -rf /opt/weft.old /opt/weft.failed
[[ -d /opt/weft ]] && mv /opt/weft /opt/weft.old
mv "$stage" /opt/weft
# The previous tree stays until the agent runs the new code: an upgrade that does not take puts
# it back (upgrade_agent), so what is on disk is what runs.

# The launcher runs the installed runtime by absolute path: nothing depends on PATH.
node_bin=/opt/weft/runtime/node/bin/node
cat >/usr/local/bin/weft.new <<EOF
#!/bin/sh
# weft, installed by scripts/install.sh from $source_dir, on Node.js $node_version
exec $node_bin /opt/weft/bin/weft "\$@"
EOF
chmod 0755 /usr/local/bin/weft.new
mv /usr/local/bin/weft.new /usr/local/bin/weft

# /etc/weft is readable by all; each config only by root and its service's group (the agent's
# holds the join token until the host has joined).
install -d -m 0755 -o root -g root /etc/weft

templates="$source_dir/scripts/systemd"
# template -> output with @NAME@ replaced, in bash itself: the token never becomes an argument
# of another command (sed's command line is visible in ps).
render() {
  local text
  text="$(<"$1")"
  text="${text//@HOSTNAME@/${node_name:-$(hostname)}}"
  text="${text//@CONTROL_PLANE@/$control_plane}"
  text="${text//@TOKEN@/$token}"
  text="${text//@CA_LINE@/$ca_line}"
  text="${text//@TRUST_DOMAIN@/$trust_domain}"
  text="${text//@DNS@/$dns}"
  text="${text//@STORE@/${store_lines:-}}"
  printf '%s\n' "$text" >"$2"
}
if [[ "$role" == agent ]]; then
  install -d -m 0700 -o weft -g weft /var/lib/weft
  # Kept by `uninstall.sh --keep-data`: the user may have come back with another uid. Only the
  # agent's own state: an older layout's control plane state is moved by its own install.
  find /var/lib/weft -path "$old_cp_data_dir" -prune -o -exec chown weft:weft {} +
  if [[ $given_cp == yes ]]; then
    if [[ -n "$ca_file" ]]; then
      install -m 0644 "$ca_file" /etc/weft/ca.pem
      ca_line="caFile: /etc/weft/ca.pem"
    else
      ca_line="caPin: \"$ca_pin\""
    fi
    (umask 077 && render "$templates/agent.yaml.in" "$config_file.new")
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
  elif [[ -f $config_file ]]; then
    chown root:weft "$config_file"
  fi
  # Stops here, before any unit changes, when the config does not parse (`redirect status`
  # exits non-zero also when the rules are merely not installed yet: only the code counts).
  if check=$(/usr/local/bin/weft redirect status --config "$config_file" 2>&1 >/dev/null); [[ "$check" == *WEFT_E_CONFIG* ]]; then
    die "$config_file is not a valid agent config: $check"
  fi
  sockets=(weft-agent.socket weft-agent-inbound.socket weft-agent-tunnel.socket weft-agent-dns.socket)
  units=("${sockets[@]}" weft-agent.service)
else
  sockets=()
  units=(weft-controlplane.service)
  install -d -m 0700 -o weft-cp -g weft-cp "$cp_data_dir"
  if [[ ${migrate:-no} == yes ]]; then
    systemctl stop weft-controlplane.service 2>/dev/null || true
    rmdir "$cp_data_dir"
    mv "$old_cp_data_dir" "$cp_data_dir"
    sed -i "s|^dataDir:.*|dataDir: $cp_data_dir|" "$config_file"
    say "moved the control plane state from $old_cp_data_dir to $cp_data_dir (user weft-cp)"
    rmdir /var/lib/weft 2>/dev/null || true
  fi
  # Also after `uninstall.sh --keep-data` and a new weft-cp uid: the state is weft-cp's only.
  chown -R weft-cp:weft-cp "$cp_data_dir"
  chmod 0700 "$cp_data_dir"
  if [[ "$store" == etcd ]]; then
    # Copies owned by the unit's group (the KEK by its user alone: weft refuses a KEK file that
    # group or others may read); the same path given again is left in place.
    copy_in() {
      [[ -z "$1" || "$(realpath "$1")" == "$(realpath -m "$2")" ]] || install -m "$3" -o "$4" -g weft-cp "$1" "$2"
      [[ -z "$1" ]] || { chown "$4:weft-cp" "$2" && chmod "$3" "$2"; }
    }
    copy_in "$etcd_ca" "$etcd_ca_dest" 0644 root
    copy_in "$etcd_cert" "$etcd_cert_dest" 0644 root
    copy_in "$etcd_key" "$etcd_key_dest" 0640 root
    copy_in "$kek_file" "$kek_dest" 0600 weft-cp
  fi
  if [[ ! -f $config_file || $given_store == yes ]]; then
    ca_line='' token=''
    render "$templates/controlplane.yaml.in" "$config_file"
    say "wrote $config_file"
  fi
  chown root:weft-cp "$config_file"
  chmod 0640 "$config_file"
fi

# The agent's TCP socket units get one ListenStream= per worker (ReusePort=yes: a SO_REUSEPORT
# group per port, which spreads connections evenly over the workers): agent.yaml's `workers:`,
# else the CPUs this host gives it. Takes effect when the socket units are (re)started: a fresh
# install, or `systemctl stop weft-agent 'weft-agent*.socket'` and start.
listen_copies=1
if [[ $role == agent ]]; then
  listen_copies="$(sed -n 's/^workers:[[:space:]]*\([0-9]\{1,3\}\)[[:space:]]*$/\1/p' "$config_file")"
  listen_copies="${listen_copies:-$(nproc)}"
  ((listen_copies >= 1 && listen_copies <= 256)) || listen_copies=1
fi
for unit in "${units[@]}"; do
  case "$unit" in
    weft-agent.socket | weft-agent-inbound.socket | weft-agent-tunnel.socket)
      awk -v n="$listen_copies" '/^ListenStream=/ { for (i = 0; i < n; i++) print; next } { print }' \
        "$templates/$unit" >"/etc/systemd/system/$unit.new"
      chmod 0644 "/etc/systemd/system/$unit.new"
      mv "/etc/systemd/system/$unit.new" "/etc/systemd/system/$unit"
      ;;
    *) install -m 0644 "$templates/$unit" "/etc/systemd/system/$unit" ;;
  esac
done
systemctl daemon-reload
systemctl enable "${units[@]}" >/dev/null 2>&1

# The unit's own account of a failed start: its error lines from the journal of that run
# (`weft: WEFT_E_...` on stderr when it gave up, else its last warnings), and what to do.
explain_failure() {
  local unit=$1 invocation run_log lines status
  invocation="$(systemctl show -p InvocationID --value "$unit")"
  status="$(systemctl show -p ExecMainStatus --value "$unit")"
  # journald reads the unit's output asynchronously: after 77 and 78 (the agent gave up and
  # wrote why) wait a little for its line.
  journalctl --sync 2>/dev/null || true
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    run_log="$(journalctl --no-pager -o cat _SYSTEMD_INVOCATION_ID="$invocation" 2>/dev/null || true)"
    lines="$(grep -E '^weft: WEFT_E_' <<<"$run_log" | tail -n 3 || true)"
    [[ -z "$lines" && ($status == 77 || $status == 78) ]] || break
    sleep 0.3
  done
  [[ -n "$lines" ]] || lines="$(grep -E '"level":(40|50|60)' <<<"$run_log" | tail -n 5 || true)"
  [[ -n "$lines" ]] || lines="$(journalctl --no-pager -o cat -n 10 -u "$unit" 2>/dev/null || true)"
  echo "install.sh: $unit did not become ready ($(systemctl show -p Result --value "$unit"), exit status $status):" >&2
  echo "$lines" | sed 's/^/  /' >&2
  case "$status" in
    77) echo "install.sh: the control plane refused this host: create a new token (weft token create on the control plane) and run install.sh again with it" >&2 ;;
    78) echo "install.sh: fix $config_file and run install.sh again" >&2 ;;
    *) echo "install.sh: systemd keeps retrying; follow it with: journalctl -u $unit -f" >&2 ;;
  esac
  exit 1
}

# An upgrade of a running agent, without cutting a connection: its master checks the new code
# and execs into it (SIGUSR2: same pid, its sockets and workers handed over), new workers take
# every new connection, the previous ones finish theirs (drain.maxMs). An agent from before
# master re-exec gets a reload (new workers only). Waits until the agent runs the new build,
# or says why it did not (the master's reason, the journal) and exits 1: the agent keeps
# serving on its previous code.
upgrade_agent() {
  local admin before since pid out
  # The agent's admin endpoint, as the new code reads agent.yaml (admin.address and
  # capture.agentPorts.admin); a wildcard address is reached on loopback.
  admin="$("$node_bin" -e "import('/opt/weft/dist/agent/config.js').then((m) => {
    const c = m.loadAgentConfig('$config_file');
    const a = ['0.0.0.0', '::', ''].includes(c.admin.address) ? '127.0.0.1' : c.admin.address;
    console.log('http://' + (a.includes(':') ? '[' + a + ']' : a) + ':' + c.admin.port);
  })" 2>/dev/null || echo http://127.0.0.1:15000)"
  before="$(mktemp)"
  "$node_bin" -e "fetch('$admin/workers').then((r) => r.text()).then((t) => process.stdout.write(t)).catch(() => {})" >"$before"
  since="$(date +%s)"
  pid="$(systemctl show -p MainPID --value "$main_unit")"
  if grep -q '"execs"' "$before"; then
    say "upgrading: the agent's master execs into the new code (pid $pid kept; open connections finish on the previous workers)"
    kill -USR2 "$pid"
  else
    say "upgrading: reloading $main_unit (new workers; open connections finish on the old ones)"
    systemctl reload "$main_unit" 2>/dev/null || explain_failure "$main_unit"
  fi
  local waited=0
  out="$("$node_bin" /opt/weft/libexec/upgrade-wait.mjs "$admin" "$build_id" "$before" "${WEFT_UPGRADE_TIMEOUT:-120}" 2>&1)" || waited=$?
  rm -f "$before"
  if [[ $waited -eq 0 ]]; then
    say "upgraded: $out"
    return
  fi
  echo "install.sh: the upgrade did not take: $out" >&2
  if [[ $waited -ne 3 && -d /opt/weft.old ]]; then
    mv /opt/weft /opt/weft.failed
    mv /opt/weft.old /opt/weft
    echo "install.sh: put the previous code back in /opt/weft (the new one is in /opt/weft.failed)" >&2
  fi
  journalctl --sync 2>/dev/null || true
  journalctl --no-pager -o cat -u "$main_unit" --since "@$since" 2>/dev/null |
    grep -E '"level":(50|60)|^weft: WEFT_E_' | tail -n 5 | sed 's/^/  /' >&2 || true
  if [[ $waited -ne 3 ]]; then
    echo "install.sh: the agent keeps serving on its previous code; fix the cause and run install.sh again, or apply it with systemctl restart $main_unit (which cuts open connections)" >&2
  fi
  exit 1
}

if [[ $start == yes ]]; then
  main_unit="${units[-1]}"
  # After a refused join or a crash loop, units are failed or rate-limited: a re-run with a
  # corrected config starts them at once.
  for unit in "${units[@]}"; do systemctl reset-failed "$unit" 2>/dev/null || true; done
  [[ ${#sockets[@]} -eq 0 ]] || systemctl start "${sockets[@]}"
  verb=start
  if systemctl is-active --quiet "$main_unit"; then
    if [[ $role == agent ]]; then
      upgrade_agent
      verb=''
    else
      say "upgrading: restarting $main_unit"
      verb=restart
    fi
  fi
  # Type=notify: this returns once the unit reported READY=1, or failed.
  if [[ -n $verb ]]; then
    systemctl "$verb" "$main_unit" 2>/dev/null || explain_failure "$main_unit"
  fi
  say "$main_unit is $(systemctl is-active "$main_unit")"
fi
rm -rf /opt/weft.old
say "installed weft $("$node_bin" -p "require('/opt/weft/package.json').version") on Node.js $node_version as $role"
