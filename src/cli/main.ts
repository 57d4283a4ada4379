// The `weft` command line: one verb per module, errors printed as one line.
import { Command, CommanderError } from 'commander';
import { WEFT_VERSION } from '../api/weft-version.js';
import { describeError, isWeftError } from '../errors.js';
import { VERBS, verbsToLoad } from './verbs.js';

const program = new Command('weft')
  .description('weft: a service mesh for Linux hosts')
  // The runtime too: which Node.js a host's weft runs on is an operator's question.
  .version(`weft ${WEFT_VERSION} on Node.js ${process.version}`, '--version')
  .showHelpAfterError()
  .exitOverride();

// Only the verb asked for is imported (see verbs.ts); help and errors still see every verb.
for (const verb of verbsToLoad(process.argv.slice(2), Object.keys(VERBS))) {
  const register = await VERBS[verb]?.();
  register?.(program);
}

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
