// Small helpers of the dashboard page: building DOM nodes (text only, never HTML strings) and
// formatting numbers the way the CLI prints them.

type Child = Node | string | number | null | undefined;

/** An element with attributes and children; strings become text nodes, so names stay text. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === 'number' ? String(child) : child);
  }
  return node;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

export function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number> = {},
  ...children: Child[]
): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === 'number' ? String(child) : child);
  }
  return node;
}

export function rate(rps: number | undefined): string {
  if (rps === undefined) return '-';
  if (rps === 0) return '0/s';
  if (rps < 10) return `${rps.toFixed(2)}/s`;
  if (rps < 1000) return `${rps.toFixed(1)}/s`;
  return `${(rps / 1000).toFixed(1)}k/s`;
}

export function percent(share: number | null | undefined): string {
  if (share === null || share === undefined) return '-';
  return `${(share * 100).toFixed(share === 1 ? 0 : 1)}%`;
}

export function millis(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '-';
  return ms < 10 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`;
}

/** 8 GiB, 512 MiB. */
export function bytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(n >= 10 * 2 ** 30 ? 0 : 1)} GiB`;
  return `${Math.round(n / 2 ** 20)} MiB`;
}

/** "12 s ago", "3 min ago", "2 h ago"; "never" for 0. */
export function ago(unixMs: number, now: number): string {
  if (unixMs <= 0) return 'never';
  const s = Math.max(0, Math.round((now - unixMs) / 1000));
  if (s < 90) return `${s} s ago`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

/** "in 23 h", "in 6 d", "expired". */
export function until(unixMs: number, now: number): string {
  if (unixMs <= 0) return '-';
  const s = Math.round((unixMs - now) / 1000);
  if (s <= 0) return 'expired';
  if (s < 90 * 60) return `in ${Math.round(s / 60)} min`;
  if (s < 48 * 3600) return `in ${Math.round(s / 3600)} h`;
  return `in ${Math.round(s / 86400)} d`;
}

/** The class a success rate reads as: ok at 99 % and above, warn down to 95 %, bad below. */
export function successClass(share: number | null | undefined): string {
  if (share === null || share === undefined) return 'muted';
  if (share >= 0.99) return 'ok';
  return share >= 0.95 ? 'warn' : 'bad';
}
