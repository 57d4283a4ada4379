// The agent's exit statuses that tell systemd not to restart it (sysexits.h values, named in
// weft-agent.service's RestartPreventExitStatus=): a restart would fail the same way, so the
// unit fails once, with the reason in the journal, until someone fixes the cause.
import { isWeftError } from '../errors.js';

/** EX_CONFIG: the config is invalid, or cannot work (a join with no token). */
export const EXIT_CONFIG = 78;
/** EX_NOPERM: the control plane refused to let this host join (its token, its name). */
export const EXIT_NOPERM = 77;

export function exitStatusForRefusal(err: unknown): number {
  return isWeftError(err, 'WEFT_E_CONFIG') ? EXIT_CONFIG : EXIT_NOPERM;
}
