// The control plane's configuration file (--config, YAML). Every field is optional; durations
// are written like "24h", "90s", "500ms" and held in milliseconds.
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { DEFAULT_CONTROL_PLANE_DATA_DIR } from '../api/admin-client.js';
import { durationMs } from '../api/duration.js';
import { TRUST_DOMAIN } from '../api/spiffe.js';
import { WeftError } from '../errors.js';
import { readConfigFile } from '../sys/config-file.js';
import { formatZodIssue } from '../sys/zod-format.js';
import { etcdOptionsProblem } from './store/etcd-options.js';

const KEK_NEEDS_ETCD =
  'needs store type etcd: the embedded store keeps the CA key in the data directory (0600)';

/** Where the control plane keeps its state: its data directory (default), or etcd. */
const storeSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('file') }).strict(),
  z
    .object({
      type: z.literal('etcd'),
      /** Client URLs of the etcd members (http://, or https:// for TLS). */
      endpoints: z.array(z.string().min(1)).min(1, 'needs at least one etcd client URL'),
      /** Every key weft writes lives under it; replicas of one control plane share it. */
      prefix: z.string().min(1).default('/weft/'),
      /** TLS to etcd: the CA of the members' certificates, and a client certificate and key
       * for etcd's --client-cert-auth (PEM files). */
      caFile: z.string().min(1).optional(),
      certFile: z.string().min(1).optional(),
      keyFile: z.string().min(1).optional(),
    })
    .strict(),
]);

export type StoreConfig = z.infer<typeof storeSchema>;

/** 0 lets the OS choose (tests). */
const listenPort = z.number().int().min(0, 'must be 0-65535').max(65535, 'must be 0-65535');

export const controlPlaneConfigSchema = z
  .object({
    trustDomain: z
      .string()
      .regex(TRUST_DOMAIN, 'must be a trust domain: lowercase letters, digits, ".", "-", "_"')
      .default('weft.local'),
    /** Where state, the CA and the admin credentials live (0700); --data-dir overrides it. */
    dataDir: z.string().min(1).default(DEFAULT_CONTROL_PLANE_DATA_DIR),
    /** The state store: { type: file } (default) or { type: etcd, endpoints, ... }. */
    store: storeSchema.default({ type: 'file' }),
    /** Address both ports bind to. */
    listen: z.string().min(1).default('0.0.0.0'),
    grpcPort: listenPort.default(15012),
    httpPort: listenPort.default(15014),
    /** Addresses and host names agents use to reach this control plane: the server
     * certificate's SANs. Default: this host's addresses and hostname. */
    advertise: z.array(z.string().min(1)).optional(),
    /** Use this CA instead of creating one (PEM files; the key is ECDSA P-256 or P-384). */
    ca: z
      .object({ certFile: z.string().min(1), keyFile: z.string().min(1) })
      .strict()
      .optional(),
    /** On etcd: the key-encryption key (32 random bytes, mode 0600) that seals the CA key
     * kept in etcd, the same file on every replica (ca/kek-file.ts). */
    caKekFile: z.string().min(1).optional(),
    workloadCertTtl: durationMs.default(86_400_000),
    nodeCertTtl: durationMs.default(86_400_000),
    /** A node silent this long has its workloads marked stale: shown in their status, with
     * their health kept as the node last reported it (silence is not a failure). */
    workloadStaleAfter: durationMs.default(20_000),
    /** ... and removed after this long (callers' failure accrual covers a dead host until then). */
    workloadRemoveAfter: durationMs.default(300_000),
    /** Gone: read only to refuse it with what replaced it. */
    workloadUnhealthyAfter: z.unknown().optional(),
    /** Default lifetime of join tokens. */
    tokenTtl: durationMs.default(86_400_000),
    /** At most one push per sync stream per this interval; bursts in between are merged. */
    syncCoalesce: durationMs.default(50),
    logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'silent']).default('info'),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.store.type === 'etcd') {
      const problem = etcdOptionsProblem(c.store);
      if (problem !== undefined)
        ctx.addIssue({ code: 'custom', path: ['store', problem.field], message: problem.message });
    }
    if (c.caKekFile !== undefined && c.store.type !== 'etcd')
      ctx.addIssue({ code: 'custom', path: ['caKekFile'], message: KEK_NEEDS_ETCD });
    if (c.workloadUnhealthyAfter !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['workloadUnhealthyAfter'],
        message:
          "no longer supported: a node's silence no longer marks its workloads unhealthy (its " +
          "peers may still reach them; the health its agent reports and callers' failure " +
          "accrual decide). Remove it; workloadStaleAfter sets when a silent node's workloads " +
          'are marked stale, workloadRemoveAfter when they are removed',
      });
    }
    if (c.workloadRemoveAfter <= c.workloadStaleAfter) {
      ctx.addIssue({
        code: 'custom',
        path: ['workloadRemoveAfter'],
        message: 'must be longer than workloadStaleAfter',
      });
    }
  })
  .transform(({ workloadUnhealthyAfter: _gone, ...config }) => config);

export type ControlPlaneConfig = z.infer<typeof controlPlaneConfigSchema>;
export type ControlPlaneConfigInput = z.input<typeof controlPlaneConfigSchema>;

function issueText(iss: z.core.$ZodRawIssue): string | undefined {
  if (iss.code === 'invalid_type' && iss.input === undefined) return 'required';
  if (iss.code === 'invalid_type') return `must be ${iss.expected}`;
  if (iss.code === 'invalid_value') return `must be one of ${iss.values.map(String).join(', ')}`;
  return undefined;
}

/** Validates config given as an object (tests, or parsed YAML); errors name source and field. */
export function parseControlPlaneConfig(input: unknown, source: string): ControlPlaneConfig {
  const result = controlPlaneConfigSchema.safeParse(input ?? {}, { error: issueText });
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const message =
      issue.code === 'unrecognized_keys'
        ? formatZodIssue({
            ...issue,
            path: [...issue.path, issue.keys[0]!],
            message: 'unknown field',
          })
        : formatZodIssue(issue);
    throw new WeftError('WEFT_E_CONFIG', `${source}: ${message}`);
  }
  return result.data;
}

/** Reads the config file; no file means all defaults. */
export function loadControlPlaneConfig(file?: string): ControlPlaneConfig {
  if (file === undefined) return parseControlPlaneConfig({}, '(defaults)');
  const text = readConfigFile(file);
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new WeftError(
      'WEFT_E_CONFIG',
      `${file}: not valid YAML: ${(err as Error).message.split('\n')[0]}`,
    );
  }
  return parseControlPlaneConfig(doc, file);
}

/** The store flags of `weft controlplane` (each overrides the config file's field). */
export interface StoreFlags {
  store?: string;
  etcdEndpoints?: string;
  etcdPrefix?: string;
  etcdCa?: string;
  etcdCert?: string;
  etcdKey?: string;
  /** --ca-kek-file: caKekFile. */
  caKekFile?: string;
}

const ETCD_FLAGS = {
  etcdEndpoints: '--etcd-endpoints',
  etcdPrefix: '--etcd-prefix',
  etcdCa: '--etcd-ca',
  etcdCert: '--etcd-cert',
  etcdKey: '--etcd-key',
} as const;

/** The config with the command line's store flags applied, checked as the file's are. */
export function applyStoreFlags(
  fromFile: ControlPlaneConfig,
  flags: StoreFlags,
): ControlPlaneConfig {
  const usage = (message: string) => new WeftError('WEFT_E_USAGE', message);
  const given = (Object.keys(ETCD_FLAGS) as Array<keyof typeof ETCD_FLAGS>).filter(
    (k) => flags[k] !== undefined,
  );
  if (flags.store !== undefined && flags.store !== 'file' && flags.store !== 'etcd')
    throw usage(`--store ${flags.store}: must be file or etcd`);
  const type = flags.store ?? fromFile.store.type;
  const config = { ...fromFile, caKekFile: flags.caKekFile ?? fromFile.caKekFile };
  if (type === 'file' && config.caKekFile !== undefined)
    throw usage(
      `${flags.caKekFile !== undefined ? '--ca-kek-file' : 'caKekFile'} ${KEK_NEEDS_ETCD}`,
    );
  if (type === 'file') {
    if (given.length > 0)
      throw usage(
        `${ETCD_FLAGS[given[0]!]} needs --store etcd (or store: { type: etcd } in the config file)`,
      );
    return { ...config, store: { type: 'file' } };
  }
  const base = config.store.type === 'etcd' ? config.store : undefined;
  const endpoints =
    flags.etcdEndpoints !== undefined
      ? flags.etcdEndpoints.split(',').map((e) => e.trim())
      : base?.endpoints;
  if (endpoints === undefined)
    throw usage(
      '--store etcd needs --etcd-endpoints URL,... (or store.endpoints in the config file)',
    );
  const store: StoreConfig = {
    type: 'etcd',
    endpoints,
    prefix: flags.etcdPrefix ?? base?.prefix ?? '/weft/',
    caFile: flags.etcdCa ?? base?.caFile,
    certFile: flags.etcdCert ?? base?.certFile,
    keyFile: flags.etcdKey ?? base?.keyFile,
  };
  const problem = etcdOptionsProblem(store);
  if (problem !== undefined) {
    const flag = {
      endpoints: '--etcd-endpoints',
      prefix: '--etcd-prefix',
      caFile: '--etcd-ca',
      certFile: '--etcd-cert',
      keyFile: '--etcd-key',
    }[problem.field];
    throw usage(`${flag} (store.${problem.field}): ${problem.message}`);
  }
  return { ...config, store };
}
