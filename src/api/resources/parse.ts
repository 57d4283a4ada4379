// Reads resources from YAML text (one or many documents) and validates every one of them,
// their size included (see ./limits.ts). Errors name the file, the document (1-based, as an
// editor counts them) and the field:
//   echo.yaml: document 2 (Service/echo): spec.ports[0].port: must be 1-65535
import { parseAllDocuments } from 'yaml';
import { WeftError } from '../../errors.js';
import type { Resource } from './kinds.js';
import { applySizeProblem, documentBytes, documentSizeProblems } from './limits.js';
import { describeDocument, type ValidateOptions, validateResource } from './validate.js';

export interface ParsedResource {
  /** Validated, with defaults filled in. */
  resource: Resource;
  /** As written: what is sent to the control plane (a TrafficPolicy is kept as written). */
  document: unknown;
  /** "echo.yaml: document 2" */
  source: string;
}

export interface ResourceText {
  text: string;
  /** The file name as the user gave it. */
  source: string;
}

/** At most this many problems are listed; one is enough to refuse the whole apply. */
const MAX_PROBLEMS = 20;

/** Counts the JSON bytes of every valid document, for the per-apply limit. */
interface Totals {
  bytes: number;
}

function collect(
  input: ResourceText,
  options: ValidateOptions,
  problems: string[],
  out: ParsedResource[],
  totals: Totals,
): void {
  const docs = parseAllDocuments(input.text);
  const list = Array.isArray(docs) ? docs : [];
  list.forEach((doc, i) => {
    const where = `${input.source}: document ${i + 1}`;
    if (doc.errors.length > 0) {
      const first = doc.errors[0]!.message.split('\n')[0]!.replace(/:$/, '');
      problems.push(`${where}: not valid YAML: ${first}`);
      return;
    }
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) return; // an empty document (a stray "---")
    const result = validateResource(value, options);
    const named = result.ok
      ? describeDocument(where, result.resource.kind, result.resource.metadata.name)
      : describeDocument(where, result.kind, result.name);
    const bytes = documentBytes(result.ok ? result.resource : value);
    for (const p of documentSizeProblems(value, bytes)) problems.push(`${named}: ${p}`);
    if (result.ok) {
      out.push({ resource: result.resource, document: value, source: where });
      totals.bytes += bytes;
    } else {
      for (const p of result.problems) problems.push(`${named}: ${p}`);
    }
  });
}

function duplicates(parsed: readonly ParsedResource[]): string[] {
  const seen = new Map<string, string>();
  const out: string[] = [];
  for (const { resource, source } of parsed) {
    const key = `${resource.kind}/${resource.metadata.name}`;
    const first = seen.get(key);
    if (first !== undefined) out.push(`${source} (${key}): defined twice (also in ${first})`);
    else seen.set(key, source);
  }
  return out;
}

/**
 * Parses and validates every document of every text; throws one WEFT_E_CONFIG listing the
 * problems (one per line) when any document is invalid, so that nothing is applied.
 */
export function parseResourceTexts(
  inputs: readonly ResourceText[],
  options: ValidateOptions = {},
): ParsedResource[] {
  const problems: string[] = [];
  const out: ParsedResource[] = [];
  const totals: Totals = { bytes: 0 };
  for (const input of inputs) collect(input, options, problems, out, totals);
  problems.push(...duplicates(out));
  const tooBig = applySizeProblem(totals.bytes);
  if (tooBig !== undefined) problems.push(`${inputs.map((i) => i.source).join(', ')}: ${tooBig}`);
  if (problems.length > 0) {
    const shown = problems.slice(0, MAX_PROBLEMS);
    if (problems.length > MAX_PROBLEMS)
      shown.push(`... and ${problems.length - MAX_PROBLEMS} more problems`);
    throw new WeftError('WEFT_E_CONFIG', shown.join('\n'));
  }
  return out;
}

/** parseResourceTexts for one text. */
export function parseResources(
  yamlText: string,
  source: string,
  options: ValidateOptions = {},
): ParsedResource[] {
  return parseResourceTexts([{ text: yamlText, source }], options);
}
