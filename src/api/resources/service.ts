// Service: a name clients use (<name>.mesh, a virtual IP) and its ports and protocols.
import { z } from 'zod';
import { dnsLabel, documentSchema, port } from './common.js';

export const serviceProtocol = z.enum(['http', 'http2', 'grpc', 'tcp', 'auto']);

export const servicePort = z
  .object({
    name: dnsLabel.optional(),
    /** The port clients use on the service's virtual IP. */
    port,
    /** The port the workloads listen on; defaults to port. */
    targetPort: port.optional(),
    /** http | http2 | grpc | tcp (opaque) | auto (detected from the first bytes). */
    protocol: serviceProtocol.default('auto'),
  })
  .strict()
  .transform((p) => ({ ...p, targetPort: p.targetPort ?? p.port }));

export const serviceSpec = z
  .object({
    ports: z.array(servicePort).min(1, 'a Service needs at least one port'),
  })
  .strict()
  .superRefine((spec, ctx) => {
    const seenPorts = new Map<number, number>();
    const seenNames = new Map<string, number>();
    spec.ports.forEach((p, i) => {
      const firstPort = seenPorts.get(p.port);
      if (firstPort !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['ports', i, 'port'],
          message: `duplicate port ${p.port} (also ports[${firstPort}])`,
        });
      } else seenPorts.set(p.port, i);
      if (p.name === undefined) return;
      const firstName = seenNames.get(p.name);
      if (firstName !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['ports', i, 'name'],
          message: `duplicate name "${p.name}" (also ports[${firstName}])`,
        });
      } else seenNames.set(p.name, i);
    });
  });

export const serviceStatus = z
  .object({
    /** The stable virtual IP from 240.240.0.0/16, allocated by the control plane. */
    vip: z.string().optional(),
  })
  .loose();

export const serviceDocument = documentSchema('Service', dnsLabel, serviceSpec, serviceStatus);

export type ServicePort = z.infer<typeof servicePort>;
export type ServiceSpec = z.infer<typeof serviceSpec>;
export type Service = z.infer<typeof serviceDocument>;
