// The service graph: every service (and every caller that is not one) on an ellipse, an arrow
// for each edge that carried requests in the window, labelled with its rate and success rate.
// An ellipse keeps every arrow visible whatever the graph's shape, and places each service at
// the same spot from one refresh to the next (sorted by name), so a live graph does not jump.

import { percent, rate, svg } from './format.js';
import type { OverviewEdge, OverviewService } from './overview-types.js';

const WIDTH = 960;
const NODE_RADIUS = 30;

interface Point {
  x: number;
  y: number;
}

/** Positions on an ellipse as wide as the picture, in name order: two side by side, more from the top. */
export function layout(names: string[], height: number): Map<string, Point> {
  const sorted = [...names].sort();
  const center = { x: WIDTH / 2, y: height / 2 };
  const rx = WIDTH / 2 - NODE_RADIUS - 120;
  const ry = height / 2 - NODE_RADIUS - 28;
  const start = sorted.length === 2 ? Math.PI : -Math.PI / 2;
  const at = new Map<string, Point>();
  sorted.forEach((name, i) => {
    if (sorted.length === 1) {
      at.set(name, center);
      return;
    }
    const angle = start + (2 * Math.PI * i) / sorted.length;
    at.set(name, { x: center.x + rx * Math.cos(angle), y: center.y + ry * Math.sin(angle) });
  });
  return at;
}

function edgeElement(edge: OverviewEdge, from: Point, to: Point, twoWay: boolean): SVGGElement {
  const dx = to.x - from.x;
  const dy = to.y - from.y;
  const length = Math.hypot(dx, dy) || 1;
  const ux = dx / length;
  const uy = dy / length;
  // Two services calling each other: each arrow moves to its own side of the line.
  const shift = twoWay ? 7 : 0;
  const ox = -uy * shift;
  const oy = ux * shift;
  const start = { x: from.x + ux * NODE_RADIUS + ox, y: from.y + uy * NODE_RADIUS + oy };
  const end = { x: to.x - ux * (NODE_RADIUS + 4) + ox, y: to.y - uy * (NODE_RADIUS + 4) + oy };
  const failing = edge.successRate !== null && edge.successRate < 0.95;
  const label = `${rate(edge.rps)} · ${percent(edge.successRate)}`;
  return svg(
    'g',
    {
      class: failing ? 'edge failing' : 'edge',
      'data-source': edge.source,
      'data-destination': edge.destination,
    },
    svg('line', {
      x1: start.x,
      y1: start.y,
      x2: end.x,
      y2: end.y,
      'marker-end': 'url(#arrow)',
    }),
    svg(
      'text',
      { x: (start.x + end.x) / 2 + ox * 2, y: (start.y + end.y) / 2 + oy * 2 - 4 },
      label,
    ),
  );
}

export function renderGraph(
  container: HTMLElement,
  services: OverviewService[],
  edges: OverviewEdge[],
): void {
  const names = new Set(services.map((s) => s.name));
  for (const e of edges) {
    names.add(e.source);
    names.add(e.destination);
  }
  const height = names.size <= 2 ? 260 : 420;
  const at = layout([...names], height);
  const root = svg('svg', {
    viewBox: `0 0 ${WIDTH} ${height}`,
    role: 'img',
    'aria-label': 'service graph',
  });
  root.append(
    svg(
      'defs',
      {},
      svg(
        'marker',
        {
          id: 'arrow',
          viewBox: '0 0 10 10',
          refX: 9,
          refY: 5,
          markerWidth: 7,
          markerHeight: 7,
          orient: 'auto-start-reverse',
        },
        svg('path', { d: 'M 0 0 L 10 5 L 0 10 z', fill: '#9aa5bd' }),
      ),
    ),
  );
  const pairs = new Set(edges.map((e) => `${e.source}\n${e.destination}`));
  for (const edge of edges) {
    const from = at.get(edge.source);
    const to = at.get(edge.destination);
    if (from === undefined || to === undefined || edge.source === edge.destination) continue;
    root.append(edgeElement(edge, from, to, pairs.has(`${edge.destination}\n${edge.source}`)));
  }
  const byName = new Map(services.map((s) => [s.name, s]));
  for (const name of [...names].sort()) {
    const p = at.get(name) as Point;
    const service = byName.get(name);
    const unready = service !== undefined && service.endpoints.length > 0 && service.ready === 0;
    const sub =
      service === undefined
        ? 'outside the registry'
        : `${service.ready}/${service.endpoints.length} ready`;
    root.append(
      svg(
        'g',
        { class: unready ? 'node unready' : 'node', 'data-service': name },
        svg('circle', { cx: p.x, cy: p.y, r: NODE_RADIUS }),
        svg('text', { x: p.x, y: p.y + 4 }, name.length > 12 ? `${name.slice(0, 11)}…` : name),
        svg('text', { x: p.x, y: p.y + NODE_RADIUS + 16, class: 'muted' }, sub),
      ),
    );
  }
  if (edges.length === 0) {
    root.append(
      svg(
        'text',
        { x: 16, y: 24, class: 'empty' },
        'No requests between services in the last window.',
      ),
    );
  }
  container.replaceChildren(root);
}
