// The outbound route's index of endpoint "address|port" -> service and port (route.ts), kept
// up to date in place across snapshot versions: a service whose endpoint list and view are the
// objects it had (a worker's views keep them, nextMeshView) is not walked again, so a version of
// a mesh with 10,000 endpoints costs what changed, not a new map of all of them.
import type { ServicePort } from '../../api/resources/index.js';
import type { EndpointView, MeshView, ServiceView } from '../../controlplane-client/mesh-view.js';

export interface EndpointIndexEntry {
  service: ServiceView;
  port: ServicePort;
}

interface Part {
  service: ServiceView;
  endpoints: readonly EndpointView[];
  entries: [string, EndpointIndexEntry][];
}

export class LiveEndpointIndex {
  readonly map = new Map<string, EndpointIndexEntry>();
  private readonly parts = new Map<string, Part>();
  /** Keys more than one service registered: the last in the view's order holds them. */
  private readonly shared = new Set<string>();
  /** Set when a change touched a shared key: the whole index is made again, in order. */
  private collided = false;

  update(view: MeshView): void {
    for (const [name, endpoints] of view.endpoints) {
      const service = view.services.get(name);
      const part = this.parts.get(name);
      if (part?.service === service && part?.endpoints === endpoints) continue;
      if (part) this.remove(name, part);
      if (service) this.add(name, service, endpoints);
    }
    for (const [name, part] of this.parts)
      if (!view.endpoints.has(name) || !view.services.has(name)) this.remove(name, part);
    if (this.collided) this.rebuild(view);
  }

  private rebuild(view: MeshView): void {
    this.map.clear();
    this.parts.clear();
    this.shared.clear();
    for (const [name, endpoints] of view.endpoints) {
      const service = view.services.get(name);
      if (service) this.add(name, service, endpoints);
    }
    this.collided = false;
  }

  private add(name: string, service: ServiceView, endpoints: readonly EndpointView[]): void {
    const entries: [string, EndpointIndexEntry][] = [];
    for (const ep of endpoints) {
      const port = service.ports.find((p) => p.targetPort === ep.port);
      if (!port) continue;
      const entry = { service, port };
      const key = `${ep.address}|${ep.port}`;
      const held = this.map.get(key);
      if (held !== undefined && held.service.name !== name) {
        this.shared.add(key);
        this.collided = true;
      }
      entries.push([key, entry]);
      this.map.set(key, entry);
    }
    this.parts.set(name, { service, endpoints, entries });
  }

  private remove(name: string, part: Part): void {
    for (const [key, entry] of part.entries) {
      if (this.shared.has(key)) this.collided = true;
      if (this.map.get(key) === entry) this.map.delete(key);
    }
    this.parts.delete(name);
  }
}
