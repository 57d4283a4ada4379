// The outbound route's index of endpoint "address|port" -> service and port (route.ts), made
// for each snapshot version from each service's part, kept by the endpoint list it came from:
// a service whose endpoint list and view are the objects it had (a worker's views keep them,
// nextMeshView) is not walked again, so a version of a mesh with 10,000 endpoints makes no key
// strings or entries but those of the services that changed. Made whole, in the view's order,
// so that an address two services registered (the last one holds it) reads as before.
import type { ServicePort } from '../../api/resources/index.js';
import type { EndpointView, MeshView, ServiceView } from '../../controlplane-client/mesh-view.js';

export interface EndpointIndexEntry {
  service: ServiceView;
  port: ServicePort;
}

interface Part {
  service: ServiceView;
  entries: [string, EndpointIndexEntry][];
}

export class LiveEndpointIndex {
  map = new Map<string, EndpointIndexEntry>();
  private readonly parts = new WeakMap<readonly EndpointView[], Part>();

  update(view: MeshView): void {
    const map = new Map<string, EndpointIndexEntry>();
    for (const [name, endpoints] of view.endpoints) {
      const service = view.services.get(name);
      if (!service) continue;
      let part = this.parts.get(endpoints);
      if (part?.service !== service) {
        part = { service, entries: entriesOf(service, endpoints) };
        this.parts.set(endpoints, part);
      }
      for (const [key, entry] of part.entries) map.set(key, entry);
    }
    this.map = map;
  }
}

function entriesOf(
  service: ServiceView,
  endpoints: readonly EndpointView[],
): [string, EndpointIndexEntry][] {
  const entries: [string, EndpointIndexEntry][] = [];
  for (const ep of endpoints) {
    const port = service.ports.find((p) => p.targetPort === ep.port);
    if (port) entries.push([`${ep.address}|${ep.port}`, { service, port }]);
  }
  return entries;
}
