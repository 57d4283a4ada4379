// Validates one resource document and turns zod's issues into weft's messages:
// "spec.ports[0].port: must be 1-65535". Used by the CLI (with file and document context, see
// ./parse.ts) and again by the control plane, which is the authority.
import type { z } from 'zod';
import { API_VERSION } from './common.js';
import { formatIssues } from './format-issues.js';
import {
  DOCUMENT_SCHEMAS,
  INTERNAL_KINDS,
  RESOURCE_KINDS,
  type Resource,
  type ResourceKind,
  USER_KINDS,
} from './kinds.js';

export interface ValidateOptions {
  /** Accept the internal kinds, Workload and Revocation (the control plane's own writes). */
  allowInternal?: boolean;
}

export type ValidationResult =
  | { ok: true; resource: Resource }
  | { ok: false; kind?: string; name?: string; problems: string[] };

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return `a ${typeof value}`;
}

const EXPECTED: Record<string, string> = {
  object: 'a mapping',
  array: 'a list',
  string: 'a string',
  number: 'a number',
  boolean: 'true or false',
  int: 'a whole number',
};

/** Messages for the issues a schema does not word itself. */
function issueMessage(iss: z.core.$ZodRawIssue): string | undefined {
  switch (iss.code) {
    case 'invalid_type':
      if (iss.input === undefined) return 'required';
      return `must be ${EXPECTED[iss.expected] ?? iss.expected}, not ${typeName(iss.input)}`;
    case 'invalid_value':
      return iss.values.length === 1
        ? `must be ${String(iss.values[0])}`
        : `must be one of ${iss.values.map(String).join(', ')}`;
    case 'too_small':
      if (iss.origin === 'array')
        return `must have at least ${iss.minimum} item${Number(iss.minimum) === 1 ? '' : 's'}`;
      if (iss.origin === 'string')
        return Number(iss.minimum) === 1
          ? 'must not be empty'
          : `must be at least ${iss.minimum} characters`;
      return `must be at least ${iss.minimum}`;
    case 'too_big':
      if (iss.origin === 'array') return `must have at most ${iss.maximum} items`;
      if (iss.origin === 'string') return `must be at most ${iss.maximum} characters`;
      return `must be at most ${iss.maximum}`;
    case 'invalid_union':
      return 'does not match any allowed form';
    default:
      return undefined;
  }
}

function envelopeProblem(
  doc: unknown,
  options: ValidateOptions,
): { problem: string; kind?: string } | { kind: ResourceKind } {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    return {
      problem: `must be a mapping with apiVersion, kind, metadata and spec, not ${typeName(doc)}`,
    };
  }
  const { apiVersion, kind } = doc as Record<string, unknown>;
  if (kind === undefined) return { problem: 'kind: required' };
  if (typeof kind !== 'string' || !(RESOURCE_KINDS as readonly string[]).includes(kind)) {
    const named = typeof kind === 'string' && kind !== '' ? kind : undefined;
    return {
      kind: named,
      problem: `kind: unknown kind ${JSON.stringify(kind)}; expected one of ${USER_KINDS.join(', ')}`,
    };
  }
  if (INTERNAL_KINDS.includes(kind as ResourceKind) && options.allowInternal !== true) {
    return {
      kind,
      problem:
        kind === 'Workload'
          ? 'kind: Workload resources are registered by agents and cannot be applied'
          : `kind: ${kind} resources are written by the control plane and cannot be applied`,
    };
  }
  if (apiVersion !== API_VERSION) {
    return {
      kind,
      problem:
        apiVersion === undefined ? 'apiVersion: required' : `apiVersion: must be ${API_VERSION}`,
    };
  }
  return { kind: kind as ResourceKind };
}

function nameOf(doc: unknown): string | undefined {
  const name = (doc as { metadata?: { name?: unknown } } | null)?.metadata?.name;
  return typeof name === 'string' && name !== '' ? name : undefined;
}

/** Validates a document and fills in defaults. */
export function validateResource(doc: unknown, options: ValidateOptions = {}): ValidationResult {
  const envelope = envelopeProblem(doc, options);
  const name = nameOf(doc);
  if ('problem' in envelope)
    return { ok: false, kind: envelope.kind, name, problems: [envelope.problem] };
  const result = DOCUMENT_SCHEMAS[envelope.kind].safeParse(doc, { error: issueMessage });
  if (!result.success)
    return { ok: false, kind: envelope.kind, name, problems: formatIssues(result.error.issues) };
  return { ok: true, resource: result.data as Resource };
}

/** "echo.yaml: document 2 (Service/echo)" */
export function describeDocument(source: string, kind?: string, name?: string): string {
  if (kind === undefined) return source;
  return `${source} (${name === undefined ? kind : `${kind}/${name}`})`;
}
