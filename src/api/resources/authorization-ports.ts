// Apply-time check across an AuthorizationPolicy and the Service it targets: HTTP fields
// (methods, paths, grpc) can be checked only on ports that carry HTTP. On a `tcp` (opaque) port
// the data path judges connections at L4, where such an entry never admits (ALLOW) and refuses
// every connection of the callers it names (DENY): not what the entry says, so it is refused.
//
// The rule: an entry of `to` with HTTP fields covers the ports it lists (a Service port's
// targetPort, the port workloads listen on), or every port of the Service when it lists none.
// - A port it lists must not be tcp.
// - One that lists none needs at least one port that is not tcp. In an ALLOW policy it then
//   admits HTTP requests on those ports and nothing on the tcp ones (what it says); in a DENY
//   policy, the Service must have no tcp port, since there it would refuse whole connections.
import type { AuthorizationPolicySpec } from './authorization-policy.js';
import { httpFieldsOf } from './authorization-policy.js';
import type { ServiceSpec } from './service.js';

export interface AuthorizationPortProblem {
  /** Where in the policy: "spec.rules[0].to[1]". */
  field: string;
  message: string;
}

/** The problems of a policy with the Service it targets, one per entry and port. */
export function authorizationPortProblems(
  policy: AuthorizationPolicySpec,
  serviceName: string,
  service: ServiceSpec,
): AuthorizationPortProblem[] {
  const problems: AuthorizationPortProblem[] = [];
  const tcp = service.ports.filter((p) => p.protocol === 'tcp').map((p) => p.targetPort);
  if (tcp.length === 0) return problems;
  const http = service.ports.filter((p) => p.protocol !== 'tcp').map((p) => p.targetPort);
  const opaque = `Service ${serviceName} declares it tcp (opaque), whose connections carry no HTTP requests`;
  policy.rules.forEach((rule, r) => {
    rule.to?.forEach((op, o) => {
      const fields = httpFieldsOf(op);
      if (fields.length === 0) return;
      const field = `spec.rules[${r}].to[${o}]`;
      const what = fields.join(', ');
      if (op.ports?.length) {
        for (const port of op.ports.filter((p) => tcp.includes(p)))
          problems.push({
            field,
            message: `${what} cannot be checked on port ${port}: ${opaque}. Take ${port} out of this entry's ports (an entry without ${what} may name it), or declare the port http, http2, grpc or auto`,
          });
      } else if (http.length === 0) {
        problems.push({
          field,
          message: `${what} cannot be checked: this entry names no ports, so it covers every port of Service ${serviceName}, and all of them (${tcp.join(', ')}) are tcp (opaque), whose connections carry no HTTP requests. Declare the HTTP ports http, http2, grpc or auto, or drop ${what}`,
        });
      } else if (policy.action === 'DENY') {
        problems.push({
          field,
          message: `this DENY entry names no ports, so it covers every port of Service ${serviceName}, and ${what} cannot be checked on its tcp (opaque) port${tcp.length > 1 ? 's' : ''} ${tcp.join(', ')}: there it would refuse every connection of the callers the rule names. List the HTTP ports it is for (ports: [${http.join(', ')}]); deny the tcp ports in an entry without ${what} if that is meant`,
        });
      }
    });
  });
  return problems;
}
