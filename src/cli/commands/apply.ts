// `weft apply -f FILE|DIR`: validates every document of every file locally (errors name the
// file, document and field), then sends them to the control plane as one apply: all of them
// are stored, or none.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { adminOptionsFrom, WeftAdminClient, withAdminOptions } from '../../api/admin-client.js';
import { parseResourceTexts, type ResourceText } from '../../api/resources/index.js';
import { WeftError } from '../../errors.js';

function readText(path: string): string {
  try {
    return readFileSync(path === '-' ? 0 : path, 'utf8');
  } catch (err) {
    throw new WeftError(
      'WEFT_E_USAGE',
      `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`,
    );
  }
}

/** The YAML files a -f argument names: a file, "-" (stdin), or every *.yaml/*.yml of a directory. */
export function resourceFiles(path: string): ResourceText[] {
  if (path === '-') return [{ text: readText('-'), source: '(stdin)' }];
  let isDir = false;
  try {
    isDir = statSync(path).isDirectory();
  } catch (err) {
    throw new WeftError(
      'WEFT_E_USAGE',
      `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`,
    );
  }
  if (!isDir) return [{ text: readText(path), source: path }];
  const files = readdirSync(path)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    .map((f) => join(path, f));
  if (files.length === 0)
    throw new WeftError('WEFT_E_USAGE', `${path} holds no .yaml or .yml files`);
  return files.map((f) => ({ text: readText(f), source: f }));
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

export function registerApply(program: Command): void {
  withAdminOptions(
    program
      .command('apply')
      .description(
        'create or update resources from YAML files (all documents, all files: all or nothing)',
      )
      .requiredOption(
        '-f, --filename <path>',
        'a YAML file, a directory of them, or - for stdin (repeatable)',
        collect,
      )
      .option(
        '--force',
        'overwrite resources whose metadata.resourceVersion is not the current one (changed since they were read)',
      ),
  ).action(
    async (opts: {
      filename: string[];
      force?: boolean;
      server?: string;
      credentials?: string;
    }) => {
      const inputs = opts.filename.flatMap(resourceFiles);
      const parsed = parseResourceTexts(inputs);
      if (parsed.length === 0)
        throw new WeftError('WEFT_E_USAGE', `no resources in ${opts.filename.join(', ')}`);
      const client = WeftAdminClient.open(adminOptionsFrom(opts));
      try {
        const results = await client.apply(
          parsed.map(({ resource, document, source }) => ({
            kind: resource.kind,
            name: resource.metadata.name,
            // As written: the control plane fills defaults in itself, and keeps a TrafficPolicy
            // as written so a Service's policy inherits what it leaves out from the Mesh's.
            json: JSON.stringify(document),
            revision: 0,
            source,
          })),
          opts.filename.join(', '),
          { force: opts.force === true },
        );
        for (const r of results) console.log(`${r.kind.toLowerCase()}/${r.name} ${r.outcome}`);
      } finally {
        client.close();
      }
    },
  );
}
