import type { ActivityItem, ActivityStatus } from '../activity.js'
import { type Html, html } from '../html.js'
import { href, type PageContext, seg } from './layout.js'

/** What an outcome is called in the list (a failed attempt that will be retried says so). */
export function outcomeLabel(item: ActivityItem): string {
  if (item.type === 'failed') return item.willRetry ? 'failed, will retry' : 'failed'
  return item.type
}

/**
 * One row of the activity list. The page script builds the same markup for live rows with
 * `textContent` (assets/dashboard.js, `activityRow`): keep the two in step.
 */
export function activityRow(ctx: PageContext, item: ActivityItem): Html {
  const iso = new Date(item.at).toISOString()
  return html`<li class="event event-${item.type}" data-id="${item.id}" data-key="${activityKey(item)}">
<time datetime="${iso}">${iso.slice(11, 19)}</time>
<span class="event-type">${outcomeLabel(item)}</span>
<span class="task-name">${item.task}</span>
<a class="task-link" href="${href(ctx, `/tasks/${seg(item.id)}`)}">${item.id}</a>
<span class="attempt">attempt ${item.attempt}</span>
${item.durationMs !== undefined ? html`<span class="duration">${Math.round(item.durationMs)} ms</span>` : ''}
${item.reason !== undefined ? html`<span class="reason">${item.reason}</span>` : ''}
${item.error ? html`<span class="event-error"><strong class="error-name">${item.error.name}${item.error.code ? ` (${item.error.code})` : ''}:</strong> <span class="error-message">${item.error.message}</span></span>` : ''}
</li>`
}

/** The queue page's "recent completions and failures", newest first, live over server-sent events. */
export function activityList(
  ctx: PageContext,
  queue: string,
  items: readonly ActivityItem[],
  status: ActivityStatus,
): Html {
  const head = html`<h2>Recent completions and failures</h2>`
  if (status.state === 'unsupported' || status.state === 'failed')
    return html`<section class="activity-section">${head}<p class="note">Not available: <span class="reason">${status.reason}</span></p></section>`
  return html`<section class="activity-section">
${head}
<p class="note">The last ${ctx.recentLimit} outcome events of this queue (succeeded, failed attempts,
dead-lettered, canceled), newest first, live.</p>
<p class="muted" id="activity-empty"${items.length > 0 ? html` hidden` : ''}>Nothing yet.</p>
<ol class="activity" id="activity" data-queue="${queue}" data-limit="${ctx.recentLimit}">${items.map((i) => activityRow(ctx, i))}</ol>
</section>`
}

/**
 * What identifies one event in the list (events carry no id): the page and the live stream both
 * send recent events, and the browser keeps one row per key.
 */
export function activityKey(item: ActivityItem): string {
  return `${item.type}|${item.id}|${item.attempt}|${item.at}`
}
