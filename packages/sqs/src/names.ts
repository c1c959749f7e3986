import { InvalidOptionError } from '@errand/core'

const FIFO = '.fifo'
const NAME_CHARS = /^[A-Za-z0-9_-]+$/
/** Longest SQS queue name, `.fifo` included. */
const MAX_NAME = 80
/** The longest suffix the adapter adds to a base name (of `-dead.fifo`, `-delay`, `-p9.fifo`). */
const LONGEST_SUFFIX = '-dead.fifo'.length
/**
 * Suffixes of the queues the adapter derives from a name: a user queue named like one of them
 * would be read as another queue's dead letters, delayed messages or priority level (a job sent
 * to `x-dead` listed as a dead letter of `x` and purged with them, never run). `-p<n>` is
 * reserved for every n, whatever this broker's `priorityLevels`: another broker may map more.
 */
const RESERVED_SUFFIX = /-(dead|delay|p\d+)$/

/** The SQS queues behind one Errand queue name. */
export interface QueueNames {
  /** The name as the user gave it. */
  readonly logical: string
  /** Base name without `.fifo`. */
  readonly base: string
  readonly fifo: boolean
  /** The main queue (priority level 0). */
  readonly main: string
  /** Queue of priority level `p` (1..levels); `levels[0]` is `main`. */
  readonly levels: readonly string[]
  /** The dead-letter queue, `<base>-dead` (`<base>-dead.fifo`). */
  readonly dead: string
  /** The standard queue that holds delayed messages until due, `<base>-delay`. */
  readonly delay: string
}

function reservedRole(word: string): string {
  if (word === 'dead') return 'the dead-letter queue'
  if (word === 'delay') return 'the delay queue'
  return `priority level ${word.slice(1)}`
}

/**
 * Validate a queue name and derive the SQS queues behind it. Names are 1-80 characters of
 * `[A-Za-z0-9_-]` with an optional `.fifo` suffix, and short enough that the derived names
 * (`-dead`, `-delay`, `-p<level>`) still fit: at most 70 characters before `.fifo`. Names ending
 * (before `.fifo`) in one of those suffixes are refused with `ERR_INVALID_OPTION`: they are the
 * adapter's own queues.
 */
export function queueNames(logical: string, options: { fifo: boolean; priorityLevels: number }): QueueNames {
  if (typeof logical !== 'string') throw new TypeError('queue name must be a string')
  const hasSuffix = logical.endsWith(FIFO)
  const fifo = hasSuffix || options.fifo
  const base = hasSuffix ? logical.slice(0, -FIFO.length) : logical
  if (base.length === 0 || !NAME_CHARS.test(base)) {
    throw new InvalidOptionError(
      'queue',
      `queue name "${logical}" must be 1-80 characters of A-Z a-z 0-9 _ - (with an optional .fifo suffix)`,
      { adapter: 'sqs' },
    )
  }
  const reserved = RESERVED_SUFFIX.exec(base)
  if (reserved !== null) {
    const owner = base.slice(0, reserved.index)
    throw new InvalidOptionError(
      'queue',
      `queue name "${logical}" ends with "${reserved[0]}", which the adapter reserves for ${reservedRole(reserved[1] as string)} of queue "${owner}"`,
      { adapter: 'sqs' },
    )
  }
  if (base.length + LONGEST_SUFFIX > MAX_NAME) {
    throw new InvalidOptionError(
      'queue',
      `queue name "${logical}" is too long: at most ${MAX_NAME - LONGEST_SUFFIX} characters before .fifo, so that its dead-letter and delay queues fit in ${MAX_NAME}`,
      { adapter: 'sqs' },
    )
  }
  const sfx = fifo ? FIFO : ''
  const levels = [`${base}${sfx}`]
  for (let p = 1; p <= options.priorityLevels; p++) levels.push(`${base}-p${p}${sfx}`)
  return {
    logical,
    base,
    fifo,
    main: `${base}${sfx}`,
    levels,
    dead: `${base}-dead${sfx}`,
    delay: `${base}-delay`,
  }
}
