import type { QueueStats } from '@errand/core'
import type { ActivityItem, ActivityStatus } from '../activity.js'
import type { DeadLetterView } from '../dead-letter-view.js'
import { type Html, html } from '../html.js'
import { activityList } from './activity-list.js'
import { depthChart, throughputChart } from './charts.js'
import { clip, href, layout, type PageContext, prettyJson, seg, writeButton } from './layout.js'
import { countCells } from './queues-page.js'

/** What the last write did, from the redirect's query (fixed wording: nothing echoed from the URL). */
export type Notice = { readonly kind: 'requeued' | 'purged-dead' | 'purged-ready'; readonly n: number }

const NOTICE_TEXT: Record<Notice['kind'], string> = {
  requeued: 'dead letter(s) requeued',
  'purged-dead': 'dead letter(s) deleted',
  'purged-ready': 'ready or delayed message(s) deleted',
}

function deadLetterItem(ctx: PageContext, queue: string, d: DeadLetterView): Html {
  const base = href(ctx, `/queues/${seg(queue)}/dead-letters`)
  return html`<li class="dead-letter" data-id="${d.id}">
<div class="dl-head">
  <span class="reason reason-${d.reason}">${d.reason}</span>
  ${d.task !== undefined ? html`<span class="task-name">${d.task}</span>` : html`<span class="task-name unknown">not an envelope</span>`}
  ${d.taskId !== undefined ? html`<a class="task-link" href="${href(ctx, `/tasks/${seg(d.taskId)}`)}">${d.taskId}</a>` : ''}
  ${d.attempt !== undefined ? html`<span>attempt ${d.attempt}</span>` : ''}
  <time datetime="${d.deadAt}">${d.deadAt}</time>
  <span class="actions">
    ${writeButton(ctx, `${base}/requeue`, 'Requeue', `Requeue dead letter ${d.id} onto ${queue}?`, { id: d.id })}
    ${writeButton(ctx, `${base}/purge`, 'Delete', `Delete dead letter ${d.id} for good?`, { id: d.id }, true)}
  </span>
</div>
${
  d.error
    ? html`<div class="dl-error"><strong class="error-name">${d.error.name}${d.error.code ? html` (${d.error.code})` : ''}:</strong> <span class="error-message">${d.error.message}</span></div>
${d.error.stack ? html`<details><summary>stack</summary><pre class="stack">${d.error.stack}</pre></details>` : ''}`
    : html`<div class="dl-error none">no error recorded</div>`
}
<details${d.payloadKind === 'envelope' ? '' : html` open`}><summary>payload (${d.payloadKind === 'envelope' ? 'decoded envelope' : d.payloadKind === 'text' ? 'raw bytes as UTF-8 text' : 'raw bytes as base64'})</summary>
<pre class="payload">${clip(d.payloadKind === 'envelope' ? prettyJson(d.payload) : String(d.payload))}</pre></details>
</li>`
}

/** What the queue page shows from task events. */
export interface QueueEvents {
  readonly status: ActivityStatus
  readonly windowStart: number
  readonly recent: readonly ActivityItem[]
}

/**
 * One queue: counts (live), throughput and depth charts, recent outcomes (live), dead letters
 * with their errors and payloads, and the writes.
 */
export function queuePage(
  ctx: PageContext,
  queue: string,
  stats: QueueStats,
  dead: readonly DeadLetterView[],
  limit: number,
  notice: Notice | undefined,
  events: QueueEvents,
): Html {
  const qbase = href(ctx, `/queues/${seg(queue)}`)
  const counts = {
    ready: stats.ready,
    delayed: stats.delayed ?? null,
    inFlight: stats.inFlight ?? null,
    dead: stats.dead,
  }
  return layout(
    ctx,
    `Queue ${queue}`,
    html`<h1>Queue <span class="queue-name">${queue}</span></h1>
${notice ? html`<p class="notice" role="status">${notice.n} ${NOTICE_TEXT[notice.kind]}.</p>` : ''}
<table class="counts" id="queue-counts">
<thead><tr><th>ready</th><th>delayed</th><th>in flight</th><th>dead</th></tr></thead>
<tbody><tr>${countCells(queue, counts)}</tr></tbody>
</table>
<div class="toolbar">
${writeButton(ctx, `${qbase}/purge`, 'Purge ready and delayed', `Delete every ready and delayed message of ${queue}? In-flight and dead messages stay.`, {}, true)}
</div>
<div class="charts">
${throughputChart(ctx, queue, events.status, events.windowStart)}
${depthChart(ctx, queue)}
</div>
${activityList(ctx, queue, events.recent, events.status)}
<section>
<h2>Dead letters <span class="muted">(${dead.length}${dead.length >= limit ? `, showing the first ${limit}` : ''})</span></h2>
${
  dead.length > 0
    ? html`<div class="toolbar">
${writeButton(ctx, `${qbase}/dead-letters/requeue`, 'Requeue all', `Requeue every dead letter of ${queue}?`)}
${writeButton(ctx, `${qbase}/dead-letters/purge`, 'Delete all', `Delete every dead letter of ${queue} for good?`, {}, true)}
</div>
<ol class="dead-letters">${dead.map((d) => deadLetterItem(ctx, queue, d))}</ol>`
    : html`<p class="muted">No dead letters.</p>`
}
</section>`,
    { chart: true },
  )
}
