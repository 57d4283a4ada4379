// systemd's view of the agent (Type=notify): READY=1 once it serves with a snapshot, STATUS=
// following the sync state. Used by the master (workers/master.ts) and the single-process agent.
import type { ControlPlaneSession } from '../controlplane-client/session.js';
import type { Logger } from '../sys/logger.js';
import { sdNotify, sdStatus, statusNotifier } from './systemd.js';

/**
 * systemd Type=notify: READY=1 once the listeners are up (they are when this runs) and a
 * snapshot, cached or fresh, is loaded; then STATUS= follows the sync state and every accepted
 * snapshot (rate-limited), so `systemctl status` shows the version served. Returns a function
 * that stops the updates. Not under systemd, sdNotify does nothing.
 */
export function notifyReady(session: ControlPlaneSession | undefined, log: Logger): () => void {
  const status = () => {
    if (!session) return 'relaying (no control plane configured)';
    const s = session.status();
    return `sync ${s.state}, snapshot v${s.version}, control plane ${s.controlPlane}`;
  };
  const ready = () => {
    sdNotify(`READY=1\nSTATUS=${status()}`);
    log.info({ status: status() }, 'agent ready');
  };
  if (!session) {
    ready();
    return () => {};
  }
  const line = statusNotifier();
  const onChange = () => {
    if (session.view()) line.update(status());
  };
  session.on('state', onChange);
  session.on('snapshot', onChange);
  if (session.view()) ready();
  else {
    sdStatus(`listening; waiting for the first snapshot from ${session.status().controlPlane}`);
    session.once('snapshot', ready);
  }
  return () => {
    line.stop();
    session.off('state', onChange);
    session.off('snapshot', onChange);
    session.off('snapshot', ready);
  };
}
