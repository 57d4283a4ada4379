// The `capture:` section of the agent's config file: which traffic iptables hands to the
// agent and on which ports. Every field is optional; the defaults are DESIGN.md's ports.
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { WeftError } from '../errors.js';
import { parseCidr } from './cidr.js';
import { parsePortSpec } from './ports.js';

const port = z.number().int().min(1).max(65535);

/** 8080, "8080" or a range "30000-32767". */
const portSpec = z.union([z.number(), z.string()]).transform((value, ctx) => {
  const parsed = parsePortSpec(value);
  if (typeof parsed === 'string') {
    ctx.addIssue({ code: 'custom', message: parsed });
    return z.NEVER;
  }
  return parsed;
});

/** "10.0.0.0/8", "fd00::/8" or a bare address; each applies to its own family. */
const cidr = z.string().transform((value, ctx) => {
  const parsed = parseCidr(value);
  if (typeof parsed === 'string') {
    ctx.addIssue({ code: 'custom', message: parsed });
    return z.NEVER;
  }
  return parsed;
});

// Policy routing tables 0 and 253-255 are the kernel's unspec/default/main/local.
const routeTable = z
  .number()
  .int()
  .min(1)
  .max(0xffffffff)
  .refine(
    (t) => t < 253 || t > 255,
    'tables 253-255 are the kernel default, main and local tables',
  );

export const captureConfigSchema = z
  .strictObject({
    /** User the agent runs as (name or uid); its own connections are never captured. */
    agentUser: z.union([z.string().min(1), z.number().int().min(0)]).default('weft'),
    /** Where local applications' outbound TCP connections are redirected. */
    outboundPort: port.default(15001),
    /** Where inbound TCP connections to local services are redirected. */
    inboundPort: port.default(15006),
    /** How inbound connections reach the agent: nat REDIRECT, or mangle TPROXY (see rules.ts). */
    inboundMode: z.enum(['redirect', 'tproxy']).default('redirect'),
    dns: z
      .strictObject({
        /** Redirect local UDP port 53 queries to the agent's DNS server. */
        enabled: z.boolean().default(false),
        /** The agent's DNS port on 127.0.0.1 and ::1. */
        port: port.default(15053),
      })
      .prefault({}),
    outbound: z
      .strictObject({
        /** Destination ports that bypass the agent. */
        excludePorts: z.array(portSpec).default([]),
        /** Destination networks (IPv4 and IPv6 mixed) that bypass the agent. */
        excludeCidrs: z.array(cidr).default([]),
      })
      .prefault({}),
    inbound: z
      .strictObject({
        /** Only these local ports are captured; empty means every port. */
        includePorts: z.array(portSpec).default([]),
        /** Local ports never captured (22 and the agent's ports are always excluded). */
        excludePorts: z.array(portSpec).default([]),
        /** Source networks whose connections bypass the agent. */
        excludeCidrs: z.array(cidr).default([]),
        /**
         * Local applications see the caller's address, not the agent's: the agent connects to
         * them from it (IP_TRANSPARENT), and the policy routing of `tproxy` plus mangle OUTPUT
         * rules bring their replies back to the agent (see rules.ts). Falls back to the
         * agent's own address where the kernel does not allow it.
         */
        preserveClientAddress: z.boolean().default(true),
      })
      .prefault({}),
    /** Capture IPv6 too; when false weft writes no IPv6 rule at all. */
    ipv6: z.boolean().default(true),
    /** iptables backend: detected (`auto`), or forced to nf_tables or legacy x_tables. */
    backend: z.enum(['auto', 'nft', 'legacy']).default('auto'),
    /** The agent's other listeners, never captured inbound. */
    agentPorts: z
      .strictObject({
        admin: port.default(15000),
        tunnel: port.default(15008),
        metrics: port.default(15020),
      })
      .prefault({}),
    /**
     * Policy routing for inboundMode `tproxy` and for inbound.preserveClientAddress:
     * `ip rule fwmark MARK lookup TABLE priority PRIORITY` + `ip route local default dev lo table
     * TABLE`. The mark is also the SO_MARK of the agent's connections from callers' addresses.
     */
    tproxy: z
      .strictObject({
        mark: z.number().int().min(1).max(0xffffffff).default(15006),
        routeTable: routeTable.default(15006),
        // 0 is the `local` rule and 32766 `main`: ours must sit between them.
        rulePriority: z.number().int().min(1).max(32765).default(15006),
      })
      .prefault({}),
  })
  .superRefine((c, ctx) => {
    const tcpPorts: [string, number][] = [
      ['outboundPort', c.outboundPort],
      ['inboundPort', c.inboundPort],
      ['agentPorts.admin', c.agentPorts.admin],
      ['agentPorts.tunnel', c.agentPorts.tunnel],
      ['agentPorts.metrics', c.agentPorts.metrics],
    ];
    for (const [i, [name, value]] of tcpPorts.entries()) {
      const clash = tcpPorts.slice(0, i).find(([, other]) => other === value);
      if (clash) {
        ctx.addIssue({
          code: 'custom',
          path: name.split('.'),
          message: `port ${value} is also ${clash[0]}; each agent port must differ`,
        });
      }
    }
  })
  .prefault({});

/** A validated capture config, with defaults filled in. */
export type CaptureConfig = z.output<typeof captureConfigSchema>;
/** What a config file may contain under `capture:`. */
export type CaptureConfigInput = z.input<typeof captureConfigSchema>;

/** Validates the value of the `capture:` key; `source` names the file in errors. */
export function parseCaptureConfig(raw: unknown, source = 'capture config'): CaptureConfig {
  const result = captureConfigSchema.safeParse(raw ?? undefined);
  if (result.success) return result.data;
  throw new WeftError(
    'WEFT_E_CONFIG',
    `${source}: ${formatIssues(result.error.issues, 'capture')}`,
  );
}

export function defaultCaptureConfig(): CaptureConfig {
  return parseCaptureConfig(undefined);
}

/**
 * Reads the capture settings from an agent config file (YAML, `capture:` key).
 * No file means the defaults; a named file that cannot be read is an error, so that a
 * mistyped path never silently installs default rules.
 */
export async function loadCaptureConfig(file?: string): Promise<CaptureConfig> {
  if (file === undefined) return defaultCaptureConfig();
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : String(err);
    throw new WeftError('WEFT_E_CONFIG', `${file}: cannot read the config file: ${reason}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    const first = (err instanceof Error ? err.message : String(err)).split('\n')[0];
    throw new WeftError('WEFT_E_CONFIG', `${file}: not valid YAML: ${first}`);
  }
  if (doc === null || doc === undefined) return defaultCaptureConfig();
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    throw new WeftError('WEFT_E_CONFIG', `${file}: the config file must be a YAML mapping`);
  }
  return parseCaptureConfig((doc as Record<string, unknown>).capture, file);
}

interface Issue {
  path: PropertyKey[];
  message: string;
  code?: string;
  keys?: string[];
}

/** One line: `capture.inbound.excludePorts[2]: port must be 1-65535, got 70000; ...`. */
export function formatIssues(issues: readonly Issue[], root: string): string {
  return issues
    .map((issue) => {
      if (issue.code === 'unrecognized_keys' && issue.keys) {
        const where = formatPath(root, issue.path);
        return issue.keys.map((k) => `${where}.${k}: unknown field`).join('; ');
      }
      return `${formatPath(root, issue.path)}: ${issue.message}`;
    })
    .join('; ');
}

function formatPath(root: string, path: readonly PropertyKey[]): string {
  return path.reduce<string>(
    (acc, key) => (typeof key === 'number' ? `${acc}[${key}]` : `${acc}.${String(key)}`),
    root,
  );
}
