// The agent's uid, which the owner match exempts from capture. Resolved through NSS
// (`id`), so users from LDAP or sssd work as well as /etc/passwd entries.
import { WeftError } from '../errors.js';
import { run } from '../sys/run.js';

/** A number (or digits) is taken as a uid as is; a name must exist on this host. */
export async function resolveAgentUid(
  user: string | number,
  source = 'capture config',
): Promise<number> {
  if (typeof user === 'number') return user;
  if (/^\d+$/.test(user)) return Number(user);
  const r = await run('id', ['-u', '--', user], { allowFailure: true });
  const uid = Number(r.stdout.trim());
  if (r.exitCode !== 0 || !Number.isInteger(uid)) {
    throw new WeftError(
      'WEFT_E_CONFIG',
      `${source}: capture.agentUser: user "${user}" does not exist; create it with \`useradd --system --no-create-home --shell /usr/sbin/nologin ${user}\` or set capture.agentUser`,
    );
  }
  return uid;
}
