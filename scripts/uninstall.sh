#!/bin/bash
# Removes what scripts/install.sh installed: tells the control plane that this node leaves
# (`weft leave`, so it is not kept as a disconnected node with unhealthy workloads), stops the
# units, removes every capture rule (`weft redirect uninstall`), the units, /opt/weft,
# /usr/local/bin/weft, /etc/weft and the users weft and weft-cp. /var/lib/weft (the node's
# identity, cached snapshot) and /var/lib/weft-cp (the control plane's state, CA and admin
# credentials) go too, unless --keep-data is given.
set -euo pipefail

keep_data=no
while [[ $# -gt 0 ]]; do
  case "$1" in
    --keep-data) keep_data=yes; shift ;;
    -h | --help) echo "usage: uninstall.sh [--keep-data]"; exit 0 ;;
    *) echo "uninstall.sh: unknown option: $1 (usage: uninstall.sh [--keep-data])" >&2; exit 2 ;;
  esac
done
[[ $EUID -eq 0 ]] || { echo "uninstall.sh: must run as root" >&2; exit 2; }
say() { echo "uninstall.sh: $*"; }
warn() { echo "uninstall.sh: warning: $*" >&2; }

# Before the agent stops, while it may still reach the control plane with its node identity.
# Uninstalling must work with the control plane down or gone: a failure is reported, not fatal.
if [[ -x /usr/local/bin/weft && -f /etc/weft/agent.yaml ]]; then
  if out=$(timeout 30 /usr/local/bin/weft leave --config /etc/weft/agent.yaml 2>&1); then
    say "told the control plane that this node leaves"
  else
    warn "could not tell the control plane that this node leaves (${out//$'\n'/ }); continuing." \
      "Remove it there with: weft delete node NAME"
  fi
fi

units=(weft-agent.service weft-agent.socket weft-agent-inbound.socket weft-agent-tunnel.socket
  weft-agent-dns.socket weft-controlplane.service)
present=()
for unit in "${units[@]}"; do [[ -e /etc/systemd/system/$unit ]] && present+=("$unit"); done
if [[ ${#present[@]} -gt 0 ]]; then
  # One transaction: stopped one by one, a connection captured in between (the rules are still
  # there) would have a socket still listening start the agent, and its sockets, again.
  systemctl disable --now "${present[@]}" >/dev/null 2>&1 || true
  say "stopped ${present[*]}"
fi
# After the agent stopped, so nothing is redirected to a port with no listener in between.
if [[ -x /usr/local/bin/weft ]]; then
  if [[ -f /etc/weft/agent.yaml ]]; then
    /usr/local/bin/weft redirect uninstall --config /etc/weft/agent.yaml ||
      /usr/local/bin/weft redirect uninstall
  else
    /usr/local/bin/weft redirect uninstall >/dev/null 2>&1 || true
  fi
  say "removed capture rules"
fi
for unit in "${units[@]}"; do rm -f "/etc/systemd/system/$unit"; done
systemctl daemon-reload
for unit in "${units[@]}"; do systemctl reset-failed "$unit" >/dev/null 2>&1 || true; done

rm -rf /opt/weft /opt/weft.new /opt/weft.old /opt/weft.failed /usr/local/bin/weft /etc/weft
for dir in /var/lib/weft /var/lib/weft-cp; do
  [[ -e $dir ]] || continue
  if [[ $keep_data == no ]]; then
    rm -rf "$dir"
    say "removed $dir"
  else
    say "kept $dir (--keep-data)"
  fi
done
# The units are stopped; a process of theirs that was just killed can take a moment to be gone
# (userdel refuses a user with a live process), and anything else still running as weft's
# users (something an operator started as one of them) is named, then stopped.
for user in weft weft-cp; do
  getent passwd "$user" >/dev/null || continue
  for _ in $(seq 50); do pgrep -u "$user" >/dev/null || break; sleep 0.1; done
  pgrep -u "$user" >/dev/null || continue
  warn "stopping what still runs as $user: $(ps -o pid=,args= -u "$user" | sed 's/^ *//' | paste -sd ';' -)"
  pkill -KILL -u "$user" || true
  for _ in $(seq 50); do pgrep -u "$user" >/dev/null || break; sleep 0.1; done
done
for user in weft weft-cp; do
  if getent passwd "$user" >/dev/null; then
    userdel "$user"
    say "removed user $user"
  fi
  if getent group "$user" >/dev/null; then groupdel "$user"; fi
done
say "weft is uninstalled"
