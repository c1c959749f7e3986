import type { ActivityStatus } from '../activity.js'
import { type Html, html } from '../html.js'
import type { PageContext } from './layout.js'

const clock = (ms: number) => {
  const iso = new Date(ms).toISOString()
  return html`<time datetime="${iso}">${iso.slice(0, 16).replace('T', ' ')} UTC</time>`
}

/**
 * The throughput chart (succeeded, failed, dead-lettered per minute, from task events) and what
 * its window covers; when the backend has no events, why there is none. `queue` undefined: all
 * queues summed. The page script draws it from `/api/throughput` and live `throughput` messages.
 */
export function throughputChart(
  ctx: PageContext,
  queue: string | undefined,
  status: ActivityStatus,
  windowStart: number,
): Html {
  const title = html`<h2>Throughput per minute over the last hour${queue === undefined ? ' (all queues)' : ''}</h2>`
  if (status.state === 'unsupported' || status.state === 'failed') {
    return html`<section class="chart throughput" id="throughput">
${title}
<p class="note" id="throughput-unavailable"><strong>No throughput:</strong> ${
      status.state === 'unsupported'
        ? 'this app cannot read task events, so tasks processed per minute cannot be counted (queue depth samples cannot tell it: a queue that takes in and finishes a thousand tasks between two samples looks the same as an idle one). '
        : 'the dashboard could not subscribe to task events. '
    }<span class="reason">${status.reason}</span></p>
</section>`
  }
  const every = Number.isFinite(windowStart)
  const processOnly =
    status.state === 'live' && status.processOnly
      ? html`<p class="note warning" id="throughput-process-only"><strong>This app has no result backend:</strong>
events are only those of tasks this process sends and runs, so other processes' tasks are not
counted. Give the app a backend with events (<code>redis://</code>, <code>postgres://</code>) to
see them all.</p>`
      : ''
  return html`<section class="chart throughput" id="throughput">
${title}
<div class="chart-box"><canvas id="throughput-chart" data-queue="${queue ?? ''}" data-all="${queue === undefined ? '1' : '0'}" aria-label="tasks succeeded, failed and dead-lettered per minute" role="img"></canvas></div>
<p class="note">Counted from task events (<code>succeeded</code>, <code>failed</code> — every failed
attempt, retried or not — and <code>dead-lettered</code>): those this dashboard received since it
subscribed${status.state === 'live' ? html` at ${clock(status.since)}` : ' (connecting…)'}, plus the
history the store still held for each queue when it started (the last ${ctx.backfillLimit} events
per queue at most). ${
    status.state !== 'live'
      ? ''
      : every && windowStart > Date.now() - 3_600_000
        ? html`The window starts at ${clock(windowStart)}: earlier minutes are blank because they are unknown, not zero.`
        : every
          ? 'The whole hour is covered.'
          : 'The store held every event of the hour.'
  } Tasks sent by apps with <code>events: false</code> are not counted; the history is lost when the
dashboard stops.</p>
${processOnly}
</section>`
}

/**
 * The depth chart and the note under it. `queue` undefined: all queues summed. The page script
 * draws it from `/api/history` and extends it with each live sample.
 */
export function depthChart(ctx: PageContext, queue: string | undefined): Html {
  const every = Math.round(ctx.sampleIntervalMs / 100) / 10
  return html`<section class="chart">
<h2>Depth over the last hour${queue === undefined ? ' (all queues)' : ''}</h2>
<div class="chart-box"><canvas id="depth-chart" data-queue="${queue ?? ''}" data-all="${queue === undefined ? '1' : '0'}" aria-label="queue depth over time" role="img"></canvas></div>
<p class="note">Ready, in flight and dead counts sampled every ${every} s by this dashboard process
(history starts when it started, and is kept in memory for one hour).</p>
</section>`
}
