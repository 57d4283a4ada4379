// This host's workloads as the control plane sees them: names, addresses and ports resolved
// from the agent config once, so registration, heartbeats and health checks agree on them.
import { networkInterfaces } from 'node:os';
import type { AgentConfig, WorkloadConfig } from '../agent/config.js';
import { WeftError } from '../errors.js';

export type Health = 'healthy' | 'unhealthy' | 'unknown';

export interface LocalWorkload {
  /** Unique on this host: the Workload resource is named after it. */
  name: string;
  service: string;
  address: string;
  port: number;
  weight: number;
  zone: string;
  config: WorkloadConfig;
}

/** The addresses peers reach this host on: configured, else every non-loopback address. */
export function hostAddresses(config: Pick<AgentConfig, 'addresses'>): string[] {
  if (config.addresses && config.addresses.length > 0) return config.addresses;
  const out: string[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const nic of list ?? []) {
      // Link-local IPv6 needs a scope id to be reachable, so it is no use to peers.
      if (nic.internal || nic.address.startsWith('fe80:')) continue;
      out.push(nic.address);
    }
  }
  // IPv4 first: it is what most peers and VIP rules in a lab speak.
  return out.sort((a, b) => Number(a.includes(':')) - Number(b.includes(':')));
}

export function resolveWorkloads(
  config: Pick<AgentConfig, 'workloads' | 'addresses' | 'zone'>,
): LocalWorkload[] {
  const addresses = hostAddresses(config);
  const seen = new Set<string>();
  return config.workloads.map((w, i) => {
    const name = w.name ?? `${w.service}-${w.port}`;
    if (seen.has(name)) {
      throw new WeftError(
        'WEFT_E_CONFIG',
        `workloads[${i}].name: ${name} is used twice; give each workload a unique name`,
      );
    }
    seen.add(name);
    const address = w.address ?? addresses[0];
    if (address === undefined) {
      throw new WeftError(
        'WEFT_E_CONFIG',
        `workloads[${i}].address: not set and this host has no non-loopback address`,
      );
    }
    return {
      name,
      service: w.service,
      address,
      port: w.port,
      weight: w.weight,
      zone: w.zone ?? config.zone ?? '',
      config: w,
    };
  });
}

/** The services that have at least one workload on this host: each needs a certificate. */
export function localServices(workloads: readonly LocalWorkload[]): string[] {
  return [...new Set(workloads.map((w) => w.service))].sort();
}
