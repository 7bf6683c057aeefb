"""`/dashboard`: the report's charts in a browser, for auditors, behind the same tokens.

The page itself carries no data and needs no login of its own: its script reads a token from the
URL fragment (`#token=...`, never sent to a server and removed from the address bar at once) or
from a form field, calls `/graphql` (`sharingReport`) with it, and draws the SVG charts the HTML
report draws (`charts.py`). Everything the hub enforces on a query applies: the token, the
purpose, the agreement's fields, the figures' scope. A strict Content-Security-Policy allows only
the page's own script and stylesheet and calls to the hub itself.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}

PAGE = """<!DOCTYPE html>
<html lang="en-GB"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sharing delays: dashboard</title>
<link rel="stylesheet" href="/dashboard/app.css">
<script src="/dashboard/app.js" defer></script>
</head><body data-state="idle">
<header><h1>Sharing delays</h1>
<p>Per force, against the sharing agreement's targets, and how forces and councils work
together: attendance at meetings, joint visits, police protection. Children never appear
here.</p></header>
<form id="ask">
<label>Access token <input name="token" type="password" autocomplete="off" required></label>
<label>On behalf of <input name="user" autocomplete="off" placeholder="from the token"></label>
<label>Purpose <input name="purpose" value="inspection"></label>
<label>From <input name="from" type="date" required></label>
<label>To <input name="to" type="date" required></label>
<label>Force <input name="force" placeholder="all"></label>
<button type="submit">Show</button>
</form>
<p id="status" role="status"></p>
<section id="summary"></section>
<section id="charts"></section>
</body></html>
"""

SCRIPT = r"""
"use strict";
const QUERY = `query Dashboard($from: Date!, $to: Date!, $force: String) {
  sharingReport(from: $from, to: $to, force: $force) {
    periodFrom periodTo asOf breachCount
    batching { force score records }
    jointVisits(by: TOTAL) { requests unanswered }
    policeProtections(by: TOTAL) { protections withoutDiscussion }
    charts { chart targetId svg }
  }
}`;

function isoDay(date) { return date.toISOString().slice(0, 10); }

function fromFragment(form) {
  const params = new URLSearchParams(location.hash.slice(1));
  for (const [name, value] of params) {
    if (form.elements[name]) form.elements[name].value = value;
  }
  // The token must not linger in the address bar, the history or a bookmark.
  if (params.has("token")) history.replaceState(null, "", location.pathname);
  return params.has("token");
}

function say(text, state) {
  document.getElementById("status").textContent = text;
  document.body.dataset.state = state;
}

function draw(report) {
  const charts = document.getElementById("charts");
  charts.replaceChildren();
  const parser = new DOMParser();
  for (const chart of report.charts) {
    // Parsed as HTML, as the HTML report is: the HTML parser puts <svg> in the SVG namespace.
    // The charts carry no xmlns (the report is self-contained), so parsed as XML they would
    // be unknown elements that draw as a run of text.
    const parsed = parser.parseFromString(chart.svg, "text/html").body.firstElementChild;
    if (!(parsed instanceof SVGSVGElement)) continue;
    const figure = document.createElement("figure");
    const drawn = figure.appendChild(document.importNode(parsed, true));
    charts.appendChild(figure);
    // Whether the browser drew it as a picture: an SVG element with a box on the page, not a
    // run of text (what a chart without its namespace becomes). Read by the browser test.
    const box = drawn.getBoundingClientRect();
    drawn.dataset.drawn = String(box.width > 0 && box.height > 0);
  }
  const summary = document.getElementById("summary");
  const line = document.createElement("p");
  line.textContent = `Events ${report.periodFrom} to ${report.periodTo}; ` +
    `${report.breachCount} breaches; figures as of ${report.asOf}.`;
  const together = document.createElement("p");
  const visits = (report.jointVisits || [])[0] || { requests: 0, unanswered: 0 };
  const protections = (report.policeProtections || [])[0] ||
    { protections: 0, withoutDiscussion: 0 };
  together.textContent = `Joint visit requests: ${visits.requests}, ` +
    `${visits.unanswered} unanswered. Police protections: ${protections.protections}, ` +
    `${protections.withoutDiscussion} without prior discussion with children's services.`;
  summary.replaceChildren(line, together);
}

async function show(form) {
  const fields = form.elements;
  const headers = {
    "Content-Type": "application/json",
    "Accept": "application/graphql-response+json, application/json",
    "Authorization": `Bearer ${fields.token.value}`,
  };
  if (fields.user.value) headers["Hub-On-Behalf-Of"] = fields.user.value;
  if (fields.purpose.value) headers["Hub-Purpose"] = fields.purpose.value;
  const variables = {
    from: fields.from.value, to: fields.to.value, force: fields.force.value || null,
  };
  say("Loading…", "loading");
  try {
    const response = await fetch("/graphql", {
      method: "POST", headers, body: JSON.stringify({ query: QUERY, variables }),
      credentials: "omit", cache: "no-store",
    });
    const body = await response.json();
    if (body.errors && body.errors.length) {
      const codes = body.errors.map((e) => (e.extensions || {}).code || "ERROR");
      say(`The hub refused: ${[...new Set(codes)].join(", ")}`, "error");
      return;
    }
    draw(body.data.sharingReport);
    say("", "ready");
  } catch (error) {
    say("The hub could not be reached.", "error");
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("ask");
  const today = new Date();
  form.elements.to.value = isoDay(today);
  form.elements.from.value = isoDay(new Date(today.getTime() - 182 * 86400000));
  form.addEventListener("submit", (event) => { event.preventDefault(); show(form); });
  if (fromFragment(form)) show(form);
});
"""

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
  color: #222; max-width: 1040px; margin: 0 auto; padding: 24px; }
h1 { font-size: 24px; margin: 0 0 6px; }
form { display: flex; flex-wrap: wrap; gap: 8px 16px; align-items: end; margin: 12px 0; }
label { display: flex; flex-direction: column; font-size: 12px; color: #444; }
input { font: inherit; padding: 4px 6px; }
button { font: inherit; padding: 5px 14px; }
figure { margin: 18px 0; border-top: 1px solid #ddd; padding-top: 8px; }
body[data-state="error"] #status { color: #a00; }
"""


async def page(_: Request) -> Response:
    return HTMLResponse(PAGE, headers=_HEADERS)


async def script(_: Request) -> Response:
    return Response(SCRIPT, media_type="text/javascript", headers=_HEADERS)


async def stylesheet(_: Request) -> Response:
    return Response(STYLE, media_type="text/css", headers=_HEADERS)


def routes() -> list[Route]:
    return [
        Route("/dashboard", page),
        Route("/dashboard/app.js", script),
        Route("/dashboard/app.css", stylesheet),
    ]
