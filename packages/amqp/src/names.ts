import { InvalidOptionError } from '@errand/core'

/**
 * Names of everything the adapter declares, and the routing of delayed messages.
 *
 * Delays without plugins, after NServiceBus' delay infrastructure: delay level `i` is a queue
 * `<q>.delay.<i>` whose messages all live exactly 2^i ms (`x-message-ttl`), so it never holds a
 * message behind a longer one (RabbitMQ only expires at the head of a queue). A delay of `d` ms
 * visits the levels of the bits set in `d`, highest first. The route is the message's routing
 * key: one word per bit (level 0 first) and then the queue name. Topic exchanges
 * `errand.delay.<i>` (shared by all queues) look at bit `i`: set → `<q>.delay.<i>`, clear → the
 * exchange of level `i − 1`. A level queue dead-letters its expired messages into the exchange of
 * the next level down; after level 0 the message lands on `<q>`. Total wait: exactly `d` ms plus
 * a fraction of a millisecond per hop, never less.
 */

/** Bits of a delay in a routing key: fixed, so keys do not depend on a broker's `delayLevels`. */
export const MAX_DELAY_LEVELS = 31
/** Longest queue name accepted: the delay routing key (62 bytes of bits + name) must fit 255. */
export const MAX_QUEUE_NAME_BYTES = 180

const WORD = '[A-Za-z0-9_\\-:@/]+'
const QUEUE_NAME = new RegExp(`^${WORD}(\\.${WORD})*$`)
const RESERVED_SUFFIX = /\.(dead|delay\.\d+)$/

/**
 * Throws `InvalidOptionError` (option `queue`) unless `queue` is a name the adapter can use:
 * ASCII letters, digits and `_ - : @ /` in dot-separated words, at most 180 bytes, not starting
 * with `amq.` (reserved by RabbitMQ), not ending with `.dead` or `.delay.<n>` (the adapter's own
 * queues). Wildcard characters are excluded because the name is matched by topic bindings.
 */
export function checkQueueName(queue: string): void {
  if (typeof queue !== 'string' || queue.length === 0) throw new TypeError('queue must be a non-empty string')
  const problem =
    queue.length > MAX_QUEUE_NAME_BYTES
      ? `is ${queue.length} characters, over ${MAX_QUEUE_NAME_BYTES}`
      : !QUEUE_NAME.test(queue)
        ? 'may only hold ASCII letters, digits and _ - : @ / in dot-separated words'
        : queue.startsWith('amq.')
          ? 'starts with "amq.", which RabbitMQ reserves'
          : RESERVED_SUFFIX.test(queue)
            ? 'ends with ".dead" or ".delay.<n>", which name the adapter\'s own queues'
            : undefined
  if (problem !== undefined) {
    throw new InvalidOptionError('queue', `queue name "${queue.slice(0, 200)}" ${problem}`, {
      adapter: 'amqp',
    })
  }
}

/** The dead-letter queue of `queue`. */
export function deadQueueName(queue: string): string {
  return `${queue}.dead`
}

/** The delay queue of `queue` at `level` (messages wait 2^level ms). */
export function delayQueueName(queue: string, level: number): string {
  return `${queue}.delay.${level}`
}

/** The shared topic exchange that routes delayed messages at `level`. */
export function delayExchangeName(level: number): string {
  return `errand.delay.${level}`
}

/** Time a message spends in the delay queue of `level`. */
export function levelTtlMs(level: number): number {
  return 2 ** level
}

/** Longest delay with `levels` delay levels: every bit set. */
export function maxDelayFor(levels: number): number {
  return 2 ** levels - 1
}

/** Where a delayed message enters: the exchange of its highest bit, with its bit-word route. */
export function delayRoute(queue: string, delayMs: number): { exchange: string; routingKey: string } {
  const d = Math.ceil(delayMs)
  const words: string[] = new Array(MAX_DELAY_LEVELS + 1)
  let highest = 0
  for (let i = 0; i < MAX_DELAY_LEVELS; i++) {
    const bit = Math.floor(d / 2 ** i) % 2
    words[i] = bit === 1 ? '1' : '0'
    if (bit === 1) highest = i
  }
  words[MAX_DELAY_LEVELS] = queue
  return { exchange: delayExchangeName(highest), routingKey: words.join('.') }
}

const STARS = (n: number) => '*.'.repeat(n)

/** Binding of exchange `level` to the next level down: bit `level` clear. */
export function passDownPattern(level: number): string {
  return `${STARS(level)}0.#`
}

/** Binding of exchange `level` to `<queue>.delay.<level>`: bit `level` set, this queue. */
export function levelQueuePattern(queue: string, level: number): string {
  return `${STARS(level)}1.${STARS(MAX_DELAY_LEVELS - 1 - level)}${queue}`
}

/** Binding of exchange 0 to the work queue itself: bit 0 clear, this queue. */
export function arrivalPattern(queue: string): string {
  return `0.${STARS(MAX_DELAY_LEVELS - 1)}${queue}`
}
