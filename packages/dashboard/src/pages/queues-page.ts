import type { ActivityStatus } from '../activity.js'
import { type Html, html } from '../html.js'
import type { Sample } from '../sampler.js'
import { depthChart, throughputChart } from './charts.js'
import { count, href, layout, type PageContext, seg } from './layout.js'

/** The counts row of one queue; cells carry `data-queue`/`data-field` so live samples update them. */
export function countCells(queue: string, c: Sample['queues'][string] | undefined): Html {
  const cell = (field: 'ready' | 'delayed' | 'inFlight' | 'dead') =>
    html`<td class="num" data-queue="${queue}" data-field="${field}">${count(c?.[field])}</td>`
  return html`${cell('ready')}${cell('delayed')}${cell('inFlight')}${cell('dead')}`
}

/** All queues with their counts, and the throughput and depth charts (all queues summed). */
export function queuesPage(
  ctx: PageContext,
  names: readonly string[],
  sample: Sample | undefined,
  samplingError: string | undefined,
  events: { readonly status: ActivityStatus; readonly windowStart: number },
): Html {
  const rows = names.map(
    (q) =>
      html`<tr><th scope="row"><a href="${href(ctx, `/queues/${seg(q)}`)}">${q}</a></th>${countCells(q, sample?.queues[q])}</tr>`,
  )
  return layout(
    ctx,
    'Queues',
    html`<h1>Queues</h1>
${samplingError ? html`<p class="error">Could not read the counts: ${samplingError}</p>` : ''}
<table class="counts" id="queues">
<thead><tr><th>queue</th><th>ready</th><th>delayed</th><th>in flight</th><th>dead</th></tr></thead>
<tbody>${rows}</tbody>
</table>
<p class="note">A dash means the store cannot tell that count. Queues listed: those the store reports
holding anything (where it can list them), the queues of the app's tasks, and the default queue.</p>
<div class="charts">
${throughputChart(ctx, undefined, events.status, events.windowStart)}
${depthChart(ctx, undefined)}
</div>`,
    { chart: true },
  )
}
