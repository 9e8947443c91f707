/**
 * The reconciler's status page (`GET /`): one read-only HTML page, its stylesheet and script, served as they are
 * (no build step, no framework). The script polls `GET /api/view` every second and draws the reconciler status,
 * the zones, the zones × instances grid and a rollout timeline per commit. Everything from the repository or NATS
 * is inserted with `textContent` (never as HTML). Served with a CSP that allows only this origin.
 */

export const STATUS_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>zonegate status</title>
<link rel="stylesheet" href="/ui/app.css">
<link rel="icon" href="data:,">
</head>
<body>
<header>
  <h1>zonegate</h1>
  <span id="ready" class="badge unknown">…</span>
  <span id="reason" class="muted"></span>
  <span id="updated" class="muted right"></span>
</header>
<div id="offline" class="banner" hidden>The reconciler does not answer; showing the last data received.</div>
<main>
  <section>
    <h2>Reconciler</h2>
    <dl id="reconciler" class="facts"></dl>
    <table id="conditions"><thead><tr><th>type</th><th>status</th><th>reason</th><th>since</th><th>message</th></tr></thead><tbody></tbody></table>
    <ul id="violations" class="violations"></ul>
  </section>
  <section>
    <h2>Zones</h2>
    <table id="zones"><thead><tr><th>zone</th><th>generation</th><th>digest</th><th>revision</th><th>instances</th><th>rollout</th></tr></thead><tbody></tbody></table>
  </section>
  <section>
    <h2>Instances</h2>
    <p class="legend"><span class="cell current"></span> current <span class="cell stale"></span> stale <span class="cell rejected"></span> rejected <span class="cell none"></span> no table</p>
    <div id="grid"></div>
  </section>
  <section>
    <h2>Rollouts</h2>
    <div id="timelines"></div>
  </section>
</main>
<script src="/ui/app.js"></script>
</body>
</html>
`

export const STATUS_PAGE_CSS = `:root { --ok: #1a7f37; --bad: #cf222e; --warn: #9a6700; --none: #8c959f; --line: #d0d7de; --bg: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328; }
header { display: flex; align-items: center; gap: 12px; padding: 10px 20px; border-bottom: 1px solid var(--line); background: var(--bg); }
h1 { font-size: 18px; margin: 0; }
h2 { font-size: 15px; margin: 18px 0 8px; }
main { padding: 0 20px 20px; max-width: 1200px; }
.right { margin-left: auto; }
.muted { color: #59636e; }
.badge { padding: 2px 10px; border-radius: 12px; color: #fff; font-weight: 600; }
.badge.ok { background: var(--ok); } .badge.bad { background: var(--bad); } .badge.unknown { background: var(--none); }
.banner { background: #fff8c5; border-bottom: 1px solid #d4a72c; padding: 6px 20px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; background: var(--bg); }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 0 0 8px; }
.facts dt { color: #59636e; } .facts dd { margin: 0; }
.violations { color: var(--bad); padding-left: 18px; }
.legend { color: #59636e; }
.cell { display: inline-block; width: 12px; height: 12px; border-radius: 3px; vertical-align: middle; }
.gridrow { display: flex; align-items: center; gap: 10px; margin: 4px 0; }
.gridrow .zone { width: 110px; font-weight: 600; }
.gridrow .tile { padding: 3px 8px; border-radius: 4px; color: #fff; font-size: 12px; }
.current { background: var(--ok); } .stale { background: var(--warn); } .rejected { background: var(--bad); } .none { background: var(--none); }
.timeline { border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; margin: 8px 0; }
.timeline .title { display: flex; gap: 10px; align-items: center; }
.outcome { padding: 1px 8px; border-radius: 10px; color: #fff; font-size: 12px; }
.outcome.converged { background: var(--ok); } .outcome.progressing { background: #0969da; }
.outcome.invalid, .outcome.timeout, .outcome.stalled { background: var(--bad); } .outcome.superseded { background: var(--none); }
.axis { position: relative; height: 26px; margin: 8px 0 4px; border-bottom: 2px solid var(--line); }
.mark { position: absolute; bottom: -6px; width: 10px; height: 10px; border-radius: 50%; transform: translateX(-5px); background: #0969da; }
.mark.converged { background: var(--ok); } .mark.rejected, .mark.invalid, .mark.timeout { background: var(--bad); } .mark.applied { background: #54aeff; }
.steps { margin: 4px 0 0; padding: 0; list-style: none; font-size: 12px; }
.steps li { display: grid; grid-template-columns: 70px 90px 1fr; gap: 8px; }
`

export const STATUS_PAGE_JS = `'use strict'
const $ = (id) => document.getElementById(id)
function el(tag, props, children) {
  const e = document.createElement(tag)
  if (props) for (const [k, v] of Object.entries(props)) { if (k === 'text') e.textContent = v; else e.setAttribute(k, v) }
  for (const c of children || []) e.append(c)
  return e
}
const short = (s, n) => (s ? String(s).slice(0, n) : '-')
const ms = (n) => (n < 1000 ? Math.round(n) + ' ms' : (n / 1000).toFixed(1) + ' s')
function rows(tbody, list) { tbody.replaceChildren(...list.map((cells) => el('tr', null, cells.map((c) => el('td', { text: c }))))) }
function rolloutText(r) {
  if (!r) return '-'
  const parts = [r.state]
  if (r.missing && r.missing.length) parts.push((r.state === 'progressing' ? 'waiting for ' : 'missing: ') + r.missing.join(' '))
  if (r.rejected && r.rejected.length) parts.push('rejected by ' + r.rejected.map((x) => x.instance).join(' '))
  return parts.join(', ')
}
function render(d) {
  const ready = $('ready')
  ready.textContent = d.ready ? 'Ready' : 'Not ready'
  ready.className = 'badge ' + (d.ready ? 'ok' : 'bad')
  $('reason').textContent = d.reason
  $('updated').textContent = 'updated ' + new Date(d.time).toLocaleTimeString()
  const r = d.view.reconciler
  const facts = r ? [['id', r.id], ['last applied', r.lastAppliedRevision || '-'], ['last attempted', r.lastAttemptedRevision || '-'], ['status written', r.time]] : [['status', 'no reconciler has written a status yet']]
  $('reconciler').replaceChildren(...facts.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: v, class: 'mono' })]))
  rows($('conditions').tBodies[0], r ? r.conditions.map((c) => [c.type, c.status, c.reason, c.lastTransitionTime, c.message]) : [])
  $('violations').replaceChildren(...(r ? r.violations : []).map((v) => el('li', { text: v.file + ':' + v.line + ':' + v.column + ' ' + v.kind + '/' + v.name + ' ' + v.path + ': ' + v.message })))
  rows($('zones').tBodies[0], d.view.zones.map((z) => {
    const cur = z.instances.filter((i) => i.serving === 'current').length
    return [z.zone, z.generation === undefined ? '-' : String(z.generation), short(z.digest, 19), z.revision || '-', cur + '/' + z.instances.length + ' current', rolloutText(z.rollout)]
  }))
  $('grid').replaceChildren(...d.grid.map((g) => el('div', { class: 'gridrow' }, [
    el('span', { class: 'zone', text: g.zone }),
    ...(g.cells.length ? g.cells.map((c) => el('span', { class: 'tile ' + c.state, title: c.title, text: c.instance + (c.generation === undefined ? '' : ' · gen ' + c.generation) })) : [el('span', { class: 'muted', text: 'no live instance' })]),
  ])))
  $('timelines').replaceChildren(...(d.timelines.length ? d.timelines.map(timeline) : [el('p', { class: 'muted', text: 'No commit events in the last hour.' })]))
}
function timeline(t) {
  const span = Math.max(1, ...t.steps.map((s) => s.at))
  const axis = el('div', { class: 'axis' }, t.steps.map((s) => {
    const m = el('span', { class: 'mark ' + s.phase, title: s.phase + ' +' + ms(s.at) })
    m.style.left = (2 + (96 * s.at) / span).toFixed(2) + '%' // CSSOM, allowed by the CSP (a style attribute is not)
    return m
  }))
  const steps = el('ul', { class: 'steps' }, t.steps.map((s) => el('li', null, [
    el('span', { class: 'mono', text: '+' + ms(s.at) }),
    el('span', { text: s.phase }),
    el('span', { class: 'mono', text: [s.zone || 'commit', s.instance, s.detail].filter(Boolean).join('  ') }),
  ])))
  return el('div', { class: 'timeline', 'data-sha': t.sha, 'data-outcome': t.outcome }, [
    el('div', { class: 'title' }, [el('code', { text: short(t.sha, 7) }), el('span', { class: 'outcome ' + t.outcome, text: t.outcome }), el('span', { class: 'muted mono', text: t.revision }), el('span', { class: 'muted right', text: t.steps.length ? new Date(t.steps[0].time).toLocaleString() : '' })]),
    axis, steps,
  ])
}
async function poll() {
  try {
    const res = await fetch('/api/view', { cache: 'no-store' })
    if (!res.ok) throw new Error('HTTP ' + res.status)
    render(await res.json())
    $('offline').hidden = true
  } catch (_err) {
    $('offline').hidden = false
  } finally {
    setTimeout(poll, 1000)
  }
}
poll()
`
