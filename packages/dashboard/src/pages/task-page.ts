import { isFinalState, type TaskRecord } from '@errand/core'
import { type Html, html } from '../html.js'
import { clip, href, layout, type PageContext, prettyJson, seg, writeButton } from './layout.js'

const time = (ms: number | undefined) =>
  ms === undefined
    ? html`<span class="muted">–</span>`
    : html`<time datetime="${new Date(ms).toISOString()}">${new Date(ms).toISOString()}</time>`

const duration = (from: number | undefined, to: number | undefined) =>
  from === undefined || to === undefined ? '' : ` (${((to - from) / 1000).toFixed(3)} s)`

/** One task's record: state, attempts, timings, result or error, children. */
export function taskPage(ctx: PageContext, record: TaskRecord): Html {
  const row = (label: string, value: Html | string) =>
    html`<tr><th scope="row">${label}</th><td>${value}</td></tr>`
  return layout(
    ctx,
    `Task ${record.id}`,
    html`<h1>Task <span class="task-id">${record.id}</span></h1>
<p><span class="state state-${record.state}" id="task-state">${record.state}</span></p>
<table class="fields">
${row('task', record.task ?? '–')}
${row('attempts', record.attempts === undefined ? '–' : String(record.attempts))}
${record.starts !== undefined ? row('starts of this attempt', String(record.starts)) : ''}
${row('created', time(record.createdAt))}
${row('started', html`${time(record.startedAt)}${duration(record.createdAt, record.startedAt) && html`<span class="muted">${duration(record.createdAt, record.startedAt)} after created</span>`}`)}
${row('finished', html`${time(record.finishedAt)}${duration(record.startedAt, record.finishedAt) && html`<span class="muted">${duration(record.startedAt, record.finishedAt)} after started</span>`}`)}
</table>
${record.state === 'SUCCESS' ? html`<h2>Result</h2><pre class="result">${clip(prettyJson(record.result))}</pre>` : ''}
${
  record.error
    ? html`<h2>${record.state === 'RETRY' ? 'Last error' : 'Error'}</h2>
<p class="dl-error"><strong class="error-name">${record.error.name}${record.error.code ? ` (${record.error.code})` : ''}:</strong> <span class="error-message">${record.error.message}</span></p>
${record.error.stack ? html`<pre class="stack">${record.error.stack}</pre>` : ''}`
    : ''
}
${
  record.children && record.children.length > 0
    ? html`<h2>Children</h2><ul class="children">${record.children.map((id) => html`<li><a href="${href(ctx, `/tasks/${seg(id)}`)}">${id}</a></li>`)}</ul>`
    : ''
}
${
  isFinalState(record.state)
    ? ''
    : writeButton(
        ctx,
        href(ctx, `/tasks/${seg(record.id)}/cancel`),
        'Cancel task',
        `Cancel task ${record.id}? A queued task is dead-lettered when a worker reaches it; a running one is aborted.`,
        {},
        true,
      )
}`,
  )
}

/** No record under this id. */
export function taskNotFoundPage(ctx: PageContext, id: string, why: string | undefined): Html {
  return layout(
    ctx,
    'Task not found',
    html`<h1>Task <span class="task-id">${id}</span></h1>
<p>${why ?? 'No record for this id: it is unknown, its record has expired (resultTtlMs), or it was sent by an app without a result backend.'}</p>`,
  )
}
