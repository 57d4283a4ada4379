#!/bin/bash
# Removes what scripts/install.sh installed: stops the units, removes every capture rule
# (`weft redirect uninstall`), the units, /opt/weft, /usr/local/bin/weft, /etc/weft and the
# weft user. /var/lib/weft (identity, cached snapshot, control plane state) goes too, unless
# --keep-data is given.
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

units=(weft-agent.service weft-agent.socket weft-agent-inbound.socket weft-agent-tunnel.socket
  weft-agent-dns.socket weft-controlplane.service)
for unit in "${units[@]}"; do
  if [[ -e /etc/systemd/system/$unit ]]; then
    systemctl disable --now "$unit" >/dev/null 2>&1 || true
    say "stopped $unit"
  fi
done
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

rm -rf /opt/weft /opt/weft.new /opt/weft.old /usr/local/bin/weft /etc/weft
if [[ $keep_data == no ]]; then
  rm -rf /var/lib/weft
  say "removed /var/lib/weft"
else
  say "kept /var/lib/weft (--keep-data)"
fi
if getent passwd weft >/dev/null; then
  userdel weft
  say "removed user weft"
fi
getent group weft >/dev/null && groupdel weft
say "weft is uninstalled"
