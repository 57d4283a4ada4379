// The dashboard's two HTML pages and its stylesheet. The pages are shells: the scripts
// (src/dashboard-ui, built to dist/dashboard-ui) fill them from /api/v1/overview with DOM calls,
// never with HTML strings, so no stored name can become markup.
import type { DashboardSession } from './dashboard-auth.js';

function escapeHtml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string,
  );
}

export function loginPage(message?: string): string {
  const note =
    message === undefined
      ? '<p>Open the link <code>weft dashboard</code> printed, or paste its token here.</p>'
      : `<p class="error" role="alert">${escapeHtml(message)}</p>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>weft: log in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/assets/app.css"></head>
<body class="login"><main>
<h1>weft</h1>
${note}
<form method="post" action="/login" id="login">
<label for="token">Login token</label>
<input id="token" name="token" type="password" autocomplete="off" required>
<button type="submit">Log in</button>
</form>
</main><script type="module" src="/assets/login.js"></script></body></html>
`;
}

export function appPage(session: DashboardSession): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>weft</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="weft-csrf" content="${escapeHtml(session.csrf)}">
<link rel="stylesheet" href="/assets/app.css"></head>
<body>
<header><h1>weft</h1><span id="updated" class="muted">loading…</span>
<form method="post" action="/logout"><input type="hidden" name="csrf" value="${escapeHtml(session.csrf)}"><button type="submit">Log out</button></form>
</header>
<main>
<section id="tiles" class="tiles" aria-label="summary"></section>
<section><h2>Service graph</h2><div id="graph" class="graph"></div></section>
<section><h2>Services</h2><table id="services"></table></section>
<section><h2>Nodes</h2><table id="nodes"></table></section>
<section><h2>Recent errors</h2><p id="errors-note" class="muted"></p><table id="errors"></table></section>
<section><h2>Recent denials</h2><p id="denials-note" class="muted"></p><table id="denials"></table></section>
<section><h2>Policies and routes</h2><table id="policies"></table></section>
</main>
<script type="module" src="/assets/app.js"></script></body></html>
`;
}

export const DASHBOARD_CSS = `
:root { --fg: #1d2433; --muted: #6b7385; --line: #dde1ea; --bg: #f6f7fa; --ok: #1f8a4c;
  --warn: #b7791f; --bad: #c53030; --accent: #2b5fd9; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; align-items: center; gap: 16px; padding: 10px 24px; background: #fff;
  border-bottom: 1px solid var(--line); }
header h1 { font-size: 18px; margin: 0; }
header form { margin-left: auto; }
main { padding: 16px 24px; max-width: 1200px; }
h2 { font-size: 15px; margin: 20px 0 8px; }
table { width: 100%; border-collapse: collapse; background: #fff; border: 1px solid var(--line); }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; color: var(--muted); font-size: 12px; text-transform: uppercase; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.muted { color: var(--muted); }
.ok { color: var(--ok); } .warn { color: var(--warn); } .bad { color: var(--bad); }
.tiles { display: grid; grid-template-columns: repeat(auto-fit, minmax(120px, 1fr)); gap: 12px; }
.tile { background: #fff; border: 1px solid var(--line); padding: 10px 14px; }
.tile .value { font-size: 24px; font-weight: 600; }
.tile .label { color: var(--muted); font-size: 12px; }
.graph { background: #fff; border: 1px solid var(--line); }
.graph svg { display: block; width: 100%; height: auto; }
.graph .node circle { fill: #eef2fb; stroke: var(--accent); stroke-width: 1.5; }
.graph .node.unready circle { stroke: var(--bad); }
.graph .node text { font-size: 12px; text-anchor: middle; }
.graph .edge line { stroke: #9aa5bd; stroke-width: 1.5; }
.graph .edge.failing line { stroke: var(--bad); }
.graph .edge text { font-size: 11px; fill: var(--muted); }
.graph .empty { font-size: 13px; fill: var(--muted); }
.pill { display: inline-block; padding: 0 6px; border-radius: 8px; font-size: 12px; margin: 1px 2px;
  border: 1px solid var(--line); }
.pill.healthy { color: var(--ok); border-color: var(--ok); }
.pill.unhealthy { color: var(--bad); border-color: var(--bad); }
.pill.stale { color: var(--warn); border-color: var(--warn); }
body.login main { max-width: 380px; margin: 12vh auto; background: #fff; border: 1px solid var(--line);
  padding: 24px; }
body.login label { display: block; margin: 12px 0 4px; }
body.login input { width: 100%; padding: 6px; }
body.login button { margin-top: 12px; }
.error { color: var(--bad); }
svg.spark { display: block; }
svg.spark polyline { fill: none; stroke: var(--accent); stroke-width: 1.5; }
button { font: inherit; padding: 4px 12px; }
`;
