import { type Html, html } from '../html.js'
import type { PageContext } from './layout.js'

/**
 * The depth chart and the honest note under it. `queue` undefined: all queues summed. The page
 * script draws it from `/api/history` and extends it with each live sample.
 */
export function depthChart(ctx: PageContext, queue: string | undefined): Html {
  const every = Math.round(ctx.sampleIntervalMs / 100) / 10
  return html`<section class="chart">
<h2>Depth over the last hour${queue === undefined ? ' (all queues)' : ''}</h2>
<div class="chart-box"><canvas id="depth-chart" data-queue="${queue ?? ''}" data-all="${queue === undefined ? '1' : '0'}" aria-label="queue depth over time" role="img"></canvas></div>
<p class="note">Ready, in flight and dead counts sampled every ${every} s by this dashboard process
(history starts when it started, and is kept in memory for one hour).
<strong>No "processed per minute":</strong> it cannot be measured from depth samples — a queue that
takes in and finishes a thousand tasks between two samples looks the same as an idle one. Throughput
needs task lifecycle events, which Errand does not publish yet.</p>
</section>`
}
