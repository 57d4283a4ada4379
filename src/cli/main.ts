// The `weft` command line: one verb per module, errors printed as one line.
import { Command, CommanderError } from 'commander';
import { describeError, isWeftError } from '../errors.js';
import { registerAgent } from './commands/agent.js';
import { registerLab } from './commands/lab.js';
import { registerRedirect } from './commands/redirect.js';

const program = new Command('weft')
  .description('weft: a service mesh for Linux hosts')
  .showHelpAfterError()
  .exitOverride();

registerRedirect(program);
registerLab(program);
registerAgent(program);

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
