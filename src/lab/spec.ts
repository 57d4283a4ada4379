// The lab spec: a YAML description of hosts and their processes, validated with zod into a
// fully resolved LabSpec (every host has its addresses) that Lab.up builds without guessing.

import { parseDocument } from 'yaml';
import { type ZodError, z } from 'zod';
import { WeftError } from '../errors.js';
import { resolveAddresses } from './spec-addresses.js';
import type { LabCapability } from './users.js';

/** The namespace of the Linux bridge is `<lab>-switch`, so no host may be called that. */
export const SWITCH_SUFFIX = 'switch';
/** Kernel limit on interface names (IFNAMSIZ - 1). */
export const IFNAME_MAX = 15;
export const DEFAULT_SUBNET = '10.77.0.0/24';
export const DEFAULT_SUBNET6 = 'fd00:77::/64';
/** Each host resolves names through its own loopback, where a mesh agent's DNS can sit. */
export const DEFAULT_NAMESERVERS = ['127.0.0.1'];

export interface ProcessSpec {
  name: string;
  /** argv; a spec's string command becomes ['sh', '-c', command]. */
  command: string[];
  user: string;
  /** Capabilities kept when `user` is not root (ambient, as systemd grants them). */
  capabilities?: LabCapability[];
  env: Record<string, string>;
  cwd: string;
}

export interface HostSpec {
  name: string;
  address: string;
  address6: string;
  /** Commands run as root, in order, when the host is up and before its processes start. */
  setup: string[][];
  processes: ProcessSpec[];
}

export interface LabSpec {
  name: string;
  subnet: string;
  subnet6: string;
  gateway: string;
  gateway6: string;
  nameservers: string[];
  hosts: HostSpec[];
}

// Lab names carry no '-': leftovers of a crashed lab are found as namespaces named
// `<lab>-*`, and a dash in a lab name would let lab `a` claim lab `a-b`'s namespaces.
const labName = z
  .string()
  .regex(
    /^[a-z][a-z0-9]{0,11}$/,
    'must be 1-12 lowercase letters or digits, starting with a letter',
  );
const hostName = z
  .string()
  .regex(
    /^[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$/,
    'must be lowercase letters, digits and inner dashes, at most 15 characters',
  )
  .refine((n) => n !== SWITCH_SUFFIX, `"${SWITCH_SUFFIX}" is reserved for the lab's bridge`);
const userName = z
  .string()
  .regex(
    /^[a-z_][a-z0-9_-]{0,31}$/,
    'must be a Linux user name (lowercase, at most 32 characters)',
  );
const envValue = z.union([z.string(), z.number(), z.boolean()]).transform(String);

export const processSpecSchema = z.strictObject({
  name: z
    .string()
    .regex(/^[a-z0-9][a-z0-9._-]{0,31}$/, 'must be lowercase letters, digits, ".", "_" or "-"'),
  command: z
    .union(
      [
        z.string().min(1, 'must not be empty'),
        z.array(z.string().min(1, 'must not be empty')).min(1, 'must name at least the program'),
      ],
      {
        error: (iss) =>
          iss.input === undefined
            ? 'is required'
            : 'must be a string (run with sh -c) or a list of arguments',
      },
    )
    .transform((c) => (typeof c === 'string' ? ['sh', '-c', c] : c)),
  user: userName.default('root'),
  capabilities: z.array(z.enum(['net_admin', 'net_bind_service'])).optional(),
  env: z
    .record(
      z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name'),
      envValue,
    )
    .default({}),
  cwd: z.string().startsWith('/', 'must be an absolute path').default('/'),
});

/** A command: argv, or a string run with sh -c. */
const commandSchema = z
  .union([
    z.string().min(1, 'must not be empty'),
    z.array(z.string().min(1, 'must not be empty')).min(1, 'must name at least the program'),
  ])
  .transform((c) => (typeof c === 'string' ? ['sh', '-c', c] : c));

const hostSpecSchema = z.strictObject({
  name: hostName,
  address: z.string().optional(),
  address6: z.string().optional(),
  setup: z.array(commandSchema).default([]),
  processes: z.array(processSpecSchema).default([]),
});

export const labSpecSchema = z
  .strictObject({
    name: labName,
    subnet: z.string().default(DEFAULT_SUBNET),
    subnet6: z.string().default(DEFAULT_SUBNET6),
    gateway: z.string().optional(),
    gateway6: z.string().optional(),
    nameservers: z
      .array(z.union([z.ipv4(), z.ipv6()], { error: 'must be an IP address' }))
      .min(1)
      .default(DEFAULT_NAMESERVERS),
    hosts: z.array(hostSpecSchema).min(1, 'must list at least one host'),
  })
  .transform((spec, ctx): LabSpec => {
    const issues = checkNames(spec);
    const resolved = resolveAddresses(spec, issues);
    for (const issue of issues) ctx.addIssue({ code: 'custom', ...issue });
    if (issues.length > 0 || !resolved) return z.NEVER;
    return {
      name: spec.name,
      subnet: resolved.subnet,
      subnet6: resolved.subnet6,
      gateway: resolved.gateway,
      gateway6: resolved.gateway6,
      nameservers: spec.nameservers,
      hosts: spec.hosts.map((h, i) => ({
        name: h.name,
        address: resolved.addresses[i]!,
        address6: resolved.addresses6[i]!,
        setup: h.setup,
        processes: h.processes,
      })),
    };
  });

export type LabSpecInput = z.input<typeof labSpecSchema>;
export type ProcessSpecInput = z.input<typeof processSpecSchema>;

export interface SpecIssue {
  path: (string | number)[];
  message: string;
}

type ParsedShape = {
  name: string;
  hosts: { name: string; processes: { name: string }[] }[];
};

/** Duplicate names and interface names the kernel would refuse. */
function checkNames(spec: ParsedShape): SpecIssue[] {
  const issues: SpecIssue[] = [];
  const seen = new Map<string, number>();
  spec.hosts.forEach((host, i) => {
    const first = seen.get(host.name);
    if (first !== undefined) {
      issues.push({
        path: ['hosts', i, 'name'],
        message: `"${host.name}" is also hosts[${first}]`,
      });
    }
    seen.set(host.name, first ?? i);
    const ifname = `${spec.name}-${host.name}`;
    if (ifname.length > IFNAME_MAX) {
      issues.push({
        path: ['hosts', i, 'name'],
        message: `interface name "${ifname}" (<lab>-<host>) is longer than ${IFNAME_MAX} characters; shorten the lab or host name`,
      });
    }
    const procs = new Map<string, number>();
    host.processes.forEach((p, j) => {
      const firstProc = procs.get(p.name);
      if (firstProc !== undefined) {
        issues.push({
          path: ['hosts', i, 'processes', j, 'name'],
          message: `"${p.name}" is also processes[${firstProc}] of this host`,
        });
      }
      procs.set(p.name, firstProc ?? j);
    });
  });
  return issues;
}

/** `hosts[1].processes[0].user` from a zod path. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out ? `.${String(key)}` : String(key);
  }
  return out || '(spec)';
}

function describeZodError(err: ZodError, source: string): string {
  const lines = err.issues.map((issue) => {
    // A bad record key is reported as "Invalid key in record" with the reason nested.
    const nested = issue.code === 'invalid_key' ? issue.issues[0]?.message : undefined;
    return `${formatPath(issue.path)}: ${nested ?? issue.message}`;
  });
  return `${source}: ${lines.join('; ')}`;
}

// Missing fields read better as "is required" than as zod's type complaint.
const requiredMessage = (iss: { code?: string; input?: unknown }) =>
  iss.code === 'invalid_type' && iss.input === undefined ? 'is required' : undefined;

/** Validates an already-parsed object (from YAML, JSON or code) into a resolved LabSpec. */
export function validateLabSpec(input: unknown, source = 'lab spec'): LabSpec {
  const result = labSpecSchema.safeParse(input, { error: requiredMessage });
  if (!result.success) throw new WeftError('WEFT_E_CONFIG', describeZodError(result.error, source));
  return result.data;
}

/** Validates one process entry, as given to Lab.startProcess. */
export function validateProcessSpec(input: unknown, source = 'process'): ProcessSpec {
  const result = processSpecSchema.safeParse(input, { error: requiredMessage });
  if (!result.success) throw new WeftError('WEFT_E_CONFIG', describeZodError(result.error, source));
  return result.data;
}

export function parseLabSpec(yamlText: string, source = 'lab spec'): LabSpec {
  const doc = parseDocument(yamlText, { prettyErrors: false });
  const firstError = doc.errors[0];
  if (firstError) {
    const where = firstError.linePos?.[0];
    const at = where ? ` (line ${where.line}, column ${where.col})` : '';
    throw new WeftError('WEFT_E_CONFIG', `${source}: not valid YAML${at}: ${firstError.message}`);
  }
  const data = doc.toJS();
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new WeftError('WEFT_E_CONFIG', `${source}: must be a YAML mapping with name and hosts`);
  }
  return validateLabSpec(data, source);
}

/** The demo lab `weft lab up` builds without -f: a control-plane host and three nodes. */
export function defaultLabSpec(): LabSpec {
  return validateLabSpec(
    {
      name: 'demo',
      hosts: [{ name: 'cp' }, { name: 'node1' }, { name: 'node2' }, { name: 'node3' }],
    },
    'default lab spec',
  );
}
