import { type Html, html } from '../html.js'

/** What every page needs to know about how the dashboard is mounted and what it may offer. */
export interface PageContext {
  /** Public path prefix of the dashboard ('' at the root, '/admin/errand' when mounted there). */
  readonly base: string
  readonly readOnly: boolean
  /** Milliseconds between samples, for the page's wording. */
  readonly sampleIntervalMs: number
  /** Outcome events listed per queue (activity list). */
  readonly recentLimit: number
  /** Events read back per queue at start, for the wording under the throughput chart. */
  readonly backfillLimit: number
}

/** `base` + path, with each dynamic segment percent-encoded by the caller via {@link seg}. */
export function href(ctx: PageContext, path: string): string {
  // The home page is the mount path itself: Hono mounts a sub-app's '/' at '/admin/errand', not
  // at '/admin/errand/'.
  if (path === '/') return ctx.base === '' ? '/' : ctx.base
  return `${ctx.base}${path}`
}

/** One path segment from user data (a queue name, a task id). */
export const seg = (value: string): string => encodeURIComponent(value)

/** A count, or a dash where the store cannot tell. */
export const count = (n: number | null | undefined): string =>
  n === null || n === undefined ? '–' : String(n)

/** Pretty JSON for a `<pre>`; anything JSON cannot say is shown as its string form. */
export function prettyJson(value: unknown): string {
  try {
    return JSON.stringify(value, null, 2) ?? String(value)
  } catch {
    return String(value)
  }
}

/** Most characters of one payload or result shown; a page lists up to 100 dead letters. */
export const MAX_SHOWN_CHARS = 64 * 1024

/** `text`, cut at {@link MAX_SHOWN_CHARS} with a note saying how much was left out. */
export function clip(text: string): string {
  if (text.length <= MAX_SHOWN_CHARS) return text
  return `${text.slice(0, MAX_SHOWN_CHARS)}\n… (truncated: ${text.length - MAX_SHOWN_CHARS} more characters not shown)`
}

/** The page around `body`: header with navigation, the stylesheet and the scripts. */
export function layout(ctx: PageContext, title: string, body: Html, options: { chart?: boolean } = {}): Html {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · Errand</title>
<link rel="stylesheet" href="${href(ctx, '/assets/dashboard.css')}">
${options.chart ? html`<script src="${href(ctx, '/assets/chart.umd.min.js')}" defer></script>` : ''}
<script src="${href(ctx, '/assets/dashboard.js')}" defer></script>
</head>
<body data-base="${ctx.base}">
<header>
  <a class="brand" href="${href(ctx, '/')}">Errand</a>
  <nav>
    <a href="${href(ctx, '/')}">Queues</a>
    <a href="${href(ctx, '/schedules')}">Schedules</a>
  </nav>
  <form class="task-search" method="get" action="${href(ctx, '/tasks')}">
    <input name="id" placeholder="task id" aria-label="task id" required>
    <button type="submit">Open task</button>
  </form>
  ${ctx.readOnly ? html`<span class="badge" title="write actions are disabled">read-only</span>` : ''}
  <span class="live" id="live" aria-live="polite">live: connecting…</span>
</header>
<main>
${body}
</main>
</body>
</html>
`
}

/**
 * A write button: a POST form that the page script confirms with the browser's dialog (and marks
 * `confirmed`); without the script, the server asks on a confirmation page instead.
 */
export function writeButton(
  ctx: PageContext,
  action: string,
  label: string,
  confirm: string,
  fields: Readonly<Record<string, string>> = {},
  danger = false,
): Html | string {
  if (ctx.readOnly) return ''
  return html`<form class="write" method="post" action="${action}" data-confirm="${confirm}">
${Object.entries(fields).map(([k, v]) => html`<input type="hidden" name="${k}" value="${v}">`)}
<input type="hidden" name="confirmed" value="">
<button type="submit" class="${danger ? 'danger' : ''}">${label}</button>
</form>`
}

/** The page a write without `confirmed` gets (no script ran): the question, and a form to confirm. */
export function confirmPage(
  ctx: PageContext,
  question: string,
  action: string,
  fields: Readonly<Record<string, string>>,
  back: string,
): Html {
  return layout(
    ctx,
    'Confirm',
    html`<h1>Confirm</h1>
<p>${question}</p>
<form method="post" action="${action}">
${Object.entries(fields).map(([k, v]) => html`<input type="hidden" name="${k}" value="${v}">`)}
<input type="hidden" name="confirmed" value="1">
<button type="submit" class="danger">Yes, do it</button>
<a href="${back}">Cancel</a>
</form>`,
  )
}
