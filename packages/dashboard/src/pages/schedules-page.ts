import { type Html, html } from '../html.js'
import { layout, type PageContext } from './layout.js'

/**
 * Schedules cannot be listed: `app.schedule()` arms a timer in the process that calls it and claims
 * each tick in the result backend, and no store keeps a list of schedules. The page says so rather
 * than showing an empty list that would read as "no schedules".
 */
export function schedulesPage(ctx: PageContext): Html {
  return layout(
    ctx,
    'Schedules',
    html`<h1>Schedules</h1>
<p class="notice">Errand has no API that lists schedules, so this page cannot show them.</p>
<p>A schedule lives in the process that called <code>app.schedule(name, when, canvas)</code>: that
process arms the timer, and each tick is claimed once in the result backend so that several processes
running the same schedule send it once. No store keeps a list of schedules, and this dashboard will
not guess one. The tasks a schedule sends appear in their queues like any other.</p>`,
  )
}
