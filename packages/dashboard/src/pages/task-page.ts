import { isFinalState, type TaskRecord } from '@errand/core'
import type { ActivityStatus, Lineage } from '../activity.js'
import { type Html, html } from '../html.js'
import { clip, href, layout, type PageContext, prettyJson, seg, writeButton } from './layout.js'

const time = (ms: number | undefined) =>
  ms === undefined
    ? html`<span class="muted">–</span>`
    : html`<time datetime="${new Date(ms).toISOString()}">${new Date(ms).toISOString()}</time>`

const duration = (from: number | undefined, to: number | undefined) =>
  from === undefined || to === undefined ? '' : ` (${((to - from) / 1000).toFixed(3)} s)`

const taskLink = (ctx: PageContext, id: string) =>
  html`<a class="task-link" href="${href(ctx, `/tasks/${seg(id)}`)}">${id}</a>`

/** The last `ctx.progress` value: a bar for a number in [0, 100], else the JSON. */
function progressView(value: unknown): Html {
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0 && value <= 100)
    return html`<p class="progress"><progress max="100" value="${value}"></progress> <span class="progress-value">${value}</span></p>`
  return html`<pre class="progress-value">${clip(prettyJson(value))}</pre>`
}

/**
 * The workflow lineage: queue, parent and root as links, from the task's record (written by the
 * worker once the task started) or else from its events; children from the record.
 */
function lineageView(
  ctx: PageContext,
  record: TaskRecord,
  seen: Lineage | undefined,
  status: ActivityStatus,
): Html {
  const lineage: Lineage | undefined =
    record.queue !== undefined
      ? {
          queue: record.queue,
          task: record.task ?? seen?.task ?? '',
          // A record without a root is its workflow's first task.
          root: record.root ?? record.id,
          ...(record.parent !== undefined && { parent: record.parent }),
        }
      : seen
  const known =
    lineage === undefined
      ? html`<p class="muted" id="lineage-unknown">Parent and root not known: the record has no lineage yet (the task has not started), and ${
          status.state === 'unsupported' || status.state === 'failed'
            ? html`this dashboard cannot read task events (${status.reason}).`
            : html`this dashboard has seen no event of this task (it remembers the lineage of the last tasks whose events it received or read back at start).`
        }</p>`
      : html`<table class="fields" id="lineage">
<tr><th scope="row">queue</th><td><a href="${href(ctx, `/queues/${seg(lineage.queue)}`)}">${lineage.queue}</a></td></tr>
<tr><th scope="row">parent</th><td>${lineage.parent !== undefined ? taskLink(ctx, lineage.parent) : html`<span class="muted">none (not started by another task's outcome)</span>`}</td></tr>
<tr><th scope="row">root</th><td>${lineage.root === undefined ? html`<span class="muted">none (not part of a workflow)</span>` : lineage.root === record.id ? html`this task (it started the workflow)` : taskLink(ctx, lineage.root)}</td></tr>
</table>`
  const children =
    record.children && record.children.length > 0
      ? html`<h3>Children</h3><ul class="children">${record.children.map((id) => html`<li>${taskLink(ctx, id)}</li>`)}</ul>`
      : ''
  return html`<h2>Workflow</h2>${known}${children}`
}

/** One task's record: state, attempts, timings, progress and logs, result or error, lineage. */
export function taskPage(
  ctx: PageContext,
  record: TaskRecord,
  lineage: Lineage | undefined,
  status: ActivityStatus,
): Html {
  const row = (label: string, value: Html | string) =>
    html`<tr><th scope="row">${label}</th><td>${value}</td></tr>`
  const logs = record.logs ?? []
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
${record.progress !== undefined ? html`<h2>Progress</h2><div id="task-progress">${progressView(record.progress)}</div>` : ''}
${
  logs.length > 0
    ? html`<h2>Logs <span class="muted">(latest attempt, ${logs.length} line${logs.length === 1 ? '' : 's'})</span></h2>
<table class="logs" id="task-logs"><tbody>${logs.map((l) => {
        const iso = new Date(l.at).toISOString()
        return html`<tr class="log log-${l.level}"><td><time datetime="${iso}">${iso.slice(11, 23)}</time></td><td class="level">${l.level}</td><td class="message">${l.message}</td></tr>`
      })}</tbody></table>`
    : ''
}
${record.state === 'SUCCESS' ? html`<h2>Result</h2><pre class="result">${clip(prettyJson(record.result))}</pre>` : ''}
${
  record.error
    ? html`<h2>${record.state === 'RETRY' ? 'Last error' : 'Error'}</h2>
<p class="dl-error"><strong class="error-name">${record.error.name}${record.error.code ? ` (${record.error.code})` : ''}:</strong> <span class="error-message">${record.error.message}</span></p>
${record.error.stack ? html`<pre class="stack">${record.error.stack}</pre>` : ''}`
    : ''
}
${lineageView(ctx, record, lineage, status)}
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
