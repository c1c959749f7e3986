import { Canvas, type InputValidator, SIGNATURE_OPTION_KEYS, type Signature } from './canvas.js'
import { describeArgument } from './canvas-checks.js'
import { type KindCases, type KnownCanvas, matchCanvas, matchKind, type TaskNode } from './canvas-fold.js'
import { checkPartialInput } from './canvas-partial.js'
import { checkDedupMode } from './dedup.js'
import type { WireNode } from './envelope.js'
import { InvalidOptionError, ValidationError, type ValidationIssue } from './errors.js'
import type { SendOptions } from './send-options.js'
import type { AnyTask } from './task.js'
import { formatPath } from './validation.js'
import {
  asDecoded,
  checkWireValue,
  headersProblem,
  MAX_WIRE_NAME,
  priorityProblem,
  queueProblem,
  timeoutProblem,
} from './wire-check.js'

/** Apply `send()`'s countdown/queue/priority to the tasks that start first. */
export function applySendOptions(node: WireNode, options: SendOptions): WireNode {
  const eta = options.eta instanceof Date ? options.eta.getTime() : options.eta
  const countdownMs = eta !== undefined ? Math.max(0, eta - Date.now()) : options.countdownMs
  if (countdownMs === undefined && options.queue === undefined && options.priority === undefined) return node
  if (countdownMs !== undefined && !(Number.isFinite(countdownMs) && countdownMs >= 0)) {
    throw new InvalidOptionError('countdownMs', `expected a number of ms >= 0, got ${countdownMs}`)
  }
  const set: WireOptions = {
    ...(countdownMs !== undefined && { countdownMs: Math.round(countdownMs) }),
    ...(options.queue !== undefined && { queue: options.queue }),
    ...(options.priority !== undefined && { priority: options.priority }),
  }
  return matchKind(node, FIRST_TASKS, set)
}

type WireOptions = NonNullable<TaskNode['options']>

/** A node with `set` merged into the options of the tasks that start first. */
const FIRST_TASKS: KindCases<WireNode, WireOptions, WireNode> = {
  task: (n, set) => ({ ...n, options: { ...n.options, ...set } }),
  chain: (n, set) => {
    const [first, ...rest] = n.steps
    return first ? { ...n, steps: [matchKind(first, FIRST_TASKS, set), ...rest] } : n
  },
  group: (n, set) => ({ ...n, members: n.members.map((m) => matchKind(m, FIRST_TASKS, set)) }),
  chord: (n, set) => ({ ...n, header: n.header.map((m) => matchKind(m, FIRST_TASKS, set)) }),
  map: (n, set) => ({ ...n, node: matchKind(n.node, FIRST_TASKS, set) }),
}

function wireError(where: string, path: readonly (string | number)[], message: string): ValidationError {
  return new ValidationError(`${where}${formatPath('', path).replace(/^\./, '')} ${message}`, [
    { path, message },
  ])
}

/** Longest `dedupKey`: its store key (`dedup:` + key) stays within every store's key limit. */
const MAX_DEDUP_KEY = 500

const SEND_OPTIONS: ReadonlySet<string> = new Set([
  'countdownMs',
  'eta',
  'queue',
  'priority',
  'headers',
  'dedupKey',
  'dedupTtlMs',
  'dedupMode',
  'expiresInMs',
  'expiresAt',
  'tx',
])

/**
 * Check `send()`'s options at run time (plain JavaScript callers too): a misspelt or unknown key
 * or a wrong dedup setting is `ERR_INVALID_OPTION`; a value that would travel in the envelope and
 * that a worker would refuse (queue, priority, headers) is `ERR_VALIDATION` naming it
 * (`options.priority`, `headers.x`). One `Object.keys` and a few type checks per send.
 */
export function checkSendOptions(options: unknown): asserts options is SendOptions {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new InvalidOptionError(
      'options',
      `send options must be an object, got ${describeArgument(options)}`,
    )
  }
  for (const key in options) {
    if (Object.hasOwn(options, key) && !SEND_OPTIONS.has(key)) {
      throw new InvalidOptionError(key, `unknown send option (known: ${[...SEND_OPTIONS].join(', ')})`)
    }
  }
  const o = options as SendOptions
  if (o.queue !== undefined) {
    const p = queueProblem(o.queue)
    if (p) throw wireError('send: ', ['options', 'queue'], p)
  }
  if (o.priority !== undefined) {
    const p = priorityProblem(o.priority)
    if (p) throw wireError('send: ', ['options', 'priority'], p)
  }
  if (o.headers !== undefined) {
    const h = headersProblem(o.headers)
    if (h) throw wireError('send: ', h.key === undefined ? ['headers'] : ['headers', h.key], h.message)
  }
  if (
    o.dedupKey !== undefined &&
    (typeof o.dedupKey !== 'string' || o.dedupKey.length === 0 || o.dedupKey.length > MAX_DEDUP_KEY)
  ) {
    throw new InvalidOptionError(
      'dedupKey',
      `expected a string of 1 to ${MAX_DEDUP_KEY} characters, got ${typeof o.dedupKey === 'string' ? `${o.dedupKey.length} characters` : describeArgument(o.dedupKey)}`,
    )
  }
  if (o.dedupTtlMs !== undefined && !(Number.isSafeInteger(o.dedupTtlMs) && o.dedupTtlMs > 0)) {
    throw new InvalidOptionError('dedupTtlMs', `expected an integer number of ms > 0, got ${o.dedupTtlMs}`)
  }
  checkDedupMode(o.dedupMode, o.dedupTtlMs)
  if (o.expiresInMs !== undefined && !(Number.isSafeInteger(o.expiresInMs) && o.expiresInMs > 0)) {
    throw new InvalidOptionError(
      'expiresInMs',
      `expected an integer number of ms > 0, got ${describeArgument(o.expiresInMs)}`,
    )
  }
  if (o.expiresAt !== undefined) {
    const at = o.expiresAt instanceof Date ? o.expiresAt.getTime() : o.expiresAt
    if (typeof at !== 'number' || !Number.isSafeInteger(at)) {
      throw new InvalidOptionError(
        'expiresAt',
        `expected a Date or ms since the epoch, got ${describeArgument(o.expiresAt)}`,
      )
    }
    if (o.expiresInMs !== undefined) {
      throw new InvalidOptionError('expiresAt', 'give expiresAt or expiresInMs, not both')
    }
  }
}

function throwIf(
  name: string,
  path: readonly (string | number)[],
  problem: string | undefined,
  prefix = '',
): void {
  if (problem) throw wireError(`task "${name}": `, path, prefix + problem)
}

function checkSignature(sig: Signature<never, unknown, boolean>, tasks: ReadonlyMap<string, AnyTask>): void {
  const name = sig.task
  if (typeof name !== 'string' || name.length === 0 || name.length > MAX_WIRE_NAME) {
    throw wireError('signature: ', ['task'], `must be a task name of 1 to ${MAX_WIRE_NAME} characters`)
  }
  const o: unknown = sig.options
  if (typeof o !== 'object' || o === null || Array.isArray(o)) {
    throw new InvalidOptionError('options', `task "${name}": signature options must be an object`)
  }
  for (const key in o) {
    if (Object.hasOwn(o, key) && !SIGNATURE_OPTION_KEYS.includes(key)) {
      throw new InvalidOptionError(
        key,
        `task "${name}": unknown signature option (known: ${SIGNATURE_OPTION_KEYS.join(', ')})`,
      )
    }
  }
  const { queue, priority, countdownMs, timeoutMs } = sig.options
  if (queue !== undefined) throwIf(name, ['options', 'queue'], queueProblem(queue))
  if (priority !== undefined) throwIf(name, ['options', 'priority'], priorityProblem(priority))
  if (timeoutMs !== undefined) throwIf(name, ['options', 'timeoutMs'], timeoutProblem(timeoutMs))
  if (countdownMs !== undefined && !(Number.isFinite(countdownMs) && countdownMs >= 0)) {
    throwIf(name, ['options', 'countdownMs'], `must be a number of ms >= 0, got ${String(countdownMs)}`)
  }
  if (queue === undefined) {
    // The task's own queue is checked here rather than in defineTask(), which has always accepted
    // any string (a placeholder filled in later is a pattern in use).
    const own = tasks.get(name)?.queue
    if (own !== undefined) throwIf(name, ['queue'], queueProblem(own), "(the task's queue) ")
  }
  if (sig.bound) checkInput(sig, tasks.get(name) ?? sig.validator)
  else if (sig.merge) checkPartialInput(sig, tasks.get(name) ?? sig.validator)
}

/** Schema first (the familiar message), then whether it travels, then the decoded form if JSON changes it. */
function checkInput(sig: Signature<never, unknown, boolean>, task: InputValidator | undefined): void {
  task?.parseInput(sig.input)
  const wire = checkWireValue(sig.input)
  if (!wire.ok) {
    const issue: ValidationIssue = wire.issue
    throw new ValidationError(
      `invalid input of task "${sig.task}": ${formatPath('input', issue.path)}: ${issue.message}`,
      [issue],
    )
  }
  if (!wire.converted || !task) return
  // JSON changes the value on the way (a Date becomes a string, NaN null, …): the worker checks
  // what it decodes, so check that here too. Only paid when the walk saw a conversion.
  try {
    task.parseInput(asDecoded(sig.input))
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err
    throw new ValidationError(
      `${err.message} (as a worker decodes it: JSON turns a Date into an ISO string, NaN and Infinity into null, drops undefined properties and class prototypes)`,
      err.issues,
    )
  }
}

/**
 * Check every signature in a canvas at run time before anything is published: it is a canvas,
 * the first tasks have input, each bound input passes its task's schema and can travel as JSON
 * (see `checkWireValue`), and signature options are what a worker accepts.
 */
export function validateCanvas(canvas: unknown, tasks: ReadonlyMap<string, AnyTask>, first = true): void {
  if (!(canvas instanceof Canvas)) {
    throw new ValidationError(
      `send: expected a signature or canvas (task.s(input), chain(), group(), chord()), got ${describeArgument(canvas)}`,
      [{ path: [], message: 'not a canvas' }],
    )
  }
  matchCanvas(canvas, VALIDATE, { tasks, first })
  for (const e of canvas.errbacks) validateCanvas(e, tasks, false)
  for (const e of canvas.successes) validateCanvas(e, tasks, false)
}

/** The checks of each kind of canvas; `first`: it starts the send (so it needs its input). */
const VALIDATE: KindCases<KnownCanvas, { tasks: ReadonlyMap<string, AnyTask>; first: boolean }, void> = {
  task: (sig, { tasks, first }) => {
    if (!sig.bound && first) {
      throw new ValidationError(
        `signature of task "${sig.task}" has no input: use .s(input) or .si(input) to send it`,
        [{ path: ['input'], message: 'missing' }],
      )
    }
    checkSignature(sig, tasks)
  },
  chain: (c, { tasks, first }) => {
    c.steps.forEach((s, i) => {
      validateCanvas(s, tasks, first && i === 0)
    })
  },
  group: (g, { tasks, first }) => {
    for (const m of g.members) validateCanvas(m, tasks, first)
  },
  chord: (c, { tasks, first }) => {
    for (const m of c.header) validateCanvas(m, tasks, first)
    validateCanvas(c.body, tasks, false)
  },
  map: (m, { tasks, first }) => {
    if (first && m.items === undefined) {
      throw new ValidationError(
        `map over task "${m.template.task}" takes the previous step's array output: put it after a step in a chain`,
        [{ path: ['input'], message: 'missing' }],
      )
    }
    validateCanvas(m.template, tasks, false)
  },
}
