// The `weft` command line: one verb per module, errors printed as one line.
import { Command, CommanderError } from 'commander';
import { WEFT_VERSION } from '../api/weft-version.js';
import { describeError, isWeftError } from '../errors.js';
import { registerAgent } from './commands/agent.js';
import { registerApply } from './commands/apply.js';
import { registerControlplane } from './commands/controlplane.js';
import { registerDelete } from './commands/delete.js';
import { registerGet } from './commands/get.js';
import { registerLab } from './commands/lab.js';
import { registerLeave } from './commands/leave.js';
import { registerNode } from './commands/node.js';
import { registerRedirect } from './commands/redirect.js';
import { registerStatus } from './commands/status.js';
import { registerToken } from './commands/token.js';

const program = new Command('weft')
  .description('weft: a service mesh for Linux hosts')
  // The runtime too: which Node.js a host's weft runs on is an operator's question.
  .version(`weft ${WEFT_VERSION} on Node.js ${process.version}`, '--version')
  .showHelpAfterError()
  .exitOverride();

// Host side
registerAgent(program);
registerStatus(program);
registerRedirect(program);
registerLeave(program);
// Control plane side
registerControlplane(program);
registerToken(program);
registerApply(program);
registerGet(program);
registerDelete(program);
registerNode(program);
// Development
registerLab(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode;
  } else {
    console.error(`weft: ${describeError(err)}`);
    process.exitCode = isWeftError(err, 'WEFT_E_USAGE') ? 2 : 1;
    if (process.env.WEFT_DEBUG && err instanceof Error) console.error(err.stack);
  }
}
