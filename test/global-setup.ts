// Builds weft once before any test runs: tests run bin/weft, dist/ and the native addon in
// child processes and lab hosts, and must run this tree's code, never an older build. A build
// that fails fails the run, with the compiler's output.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

interface Step {
  what: string;
  args: string[];
  fix: string;
}

const STEPS: Step[] = [
  // Incremental (make): only what changed since the last build is compiled.
  {
    what: 'the native addon',
    args: ['node_modules/node-gyp/bin/node-gyp.js', 'build', '--directory', 'native', '--silent'],
    fix: 'run `npm run build:native` (or scripts/bootstrap) and fix what it reports',
  },
  // tsc emits even when some module has type errors: its exit status is what tells.
  {
    what: 'dist/ (tsc -p tsconfig.build.json)',
    args: ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'],
    fix: 'fix the errors above (`npm run build:ts` shows them)',
  },
];

function run(step: Step): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      step.args,
      { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err === null) return resolve();
        const output = `${stdout}${stderr}`.trim();
        reject(
          new Error(
            `building ${step.what} failed (${err.code ?? err.signal ?? err.message}):\n${output}\n${step.fix}`,
          ),
        );
      },
    );
  });
}

export default async function buildOnce(): Promise<void> {
  for (const step of STEPS) await run(step);
}
