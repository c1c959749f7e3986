import type { ScheduleInfo } from '@errand/core'
import { type Html, html } from '../html.js'
import { layout, type PageContext } from './layout.js'

/**
 * The schedules armed by the dashboard's app in this process (`app.schedules()`): a schedule lives
 * in the process that calls `app.schedule()`, and no store keeps a list of them, so a dashboard
 * mounted in the app's own process (or given the app module that arms them) shows them with their
 * next tick, and otherwise says why the list is empty rather than suggesting there are none.
 */
export function schedulesPage(ctx: PageContext, schedules: readonly ScheduleInfo[]): Html {
  const explain = html`<p>A schedule lives in the process that called <code>app.schedule(name, when, canvas)</code>:
that process arms the timer, and each tick is claimed once in the result backend so that several
processes running the same schedule send it once. No store keeps a list of schedules: this page shows
the ones this dashboard's app has armed. The tasks a schedule sends appear in their queues like any other.</p>`
  if (schedules.length === 0) {
    return layout(
      ctx,
      'Schedules',
      html`<h1>Schedules</h1>
<p class="notice">This dashboard's app has armed no schedules in this process.</p>
${explain}`,
    )
  }
  const rows = schedules.map(
    (s) =>
      html`<tr><td>${s.name}</td><td><code>${s.when}</code></td><td>${s.timezone ?? '-'}</td><td>${s.nextTick?.toISOString() ?? '-'}</td></tr>`,
  )
  return layout(
    ctx,
    'Schedules',
    html`<h1>Schedules</h1>
<table class="schedules"><thead><tr><th>name</th><th>when</th><th>time zone</th><th>next tick</th></tr></thead>
<tbody>${rows}</tbody></table>
${explain}`,
  )
}
