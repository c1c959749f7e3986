import type { ConnectionOptions as TlsOptions } from 'node:tls'
import {
  DEFAULT_MAX_ENVELOPE_BYTES,
  InvalidOptionError,
  type Logger,
  maskCredentials,
  optionsFromQuery,
  parseOptions as parseOptionsWith,
  parseStoreUrl,
  type ReconnectBackoff,
} from '@errand/core'
import type { ChannelModel } from 'amqplib'
import { z } from 'zod'
import { MAX_DELAY_LEVELS } from './names.js'

const ADAPTER = { adapter: 'amqp' } as const

/** Queue type of the work and dead-letter queues (delay queues are always classic). */
export type AmqpQueueType = 'classic' | 'quorum'

/**
 * How to reach RabbitMQ and how to lay out queues. Give exactly one of `url` and `connection`.
 *
 * @example
 * ```ts
 * new AmqpBroker({ url: 'amqp://guest:guest@127.0.0.1:5672', maxPriority: 5 })
 * new AmqpBroker({ url: 'amqps://user:pw@rabbit.example.com', tls: { ca: [readFileSync('ca.pem')] } })
 * ```
 */
export interface AmqpBrokerOptions {
  /**
   * `amqp://[user:password@]host[:port][/vhost][?…]` or `amqps://…` (TLS). amqplib's own query
   * parameters (`heartbeat`, `frameMax`, `channelMax`, `locale`, `maxFrameSize`) pass through;
   * `queueType`, `maxPriority`, `delayLevels`, `maxMessageBytes`, `reconnectWaitMs` and
   * `queueExpiresMs` set the options of the same name. Any other parameter is refused.
   */
  readonly url?: string
  /**
   * An amqplib connection (`ChannelModel`) the caller owns: never closed by the adapter, and not
   * reconnected (when it drops, calls reject with `ERR_CONNECTION`). Or a function that opens a
   * connection: the adapter owns what it returns, closes it, and calls it again to reconnect.
   */
  readonly connection?: ChannelModel | (() => Promise<ChannelModel>)
  /** TLS options for `amqps://` (CA, client certificate and key, `servername`…). */
  readonly tls?: TlsOptions
  /**
   * `classic` (default) or `quorum` for the work and dead-letter queues. Quorum queues on
   * RabbitMQ 3.x have no priorities, so `maxPriority` must be 0 with them.
   */
  readonly queueType?: AmqpQueueType
  /**
   * Highest priority, 0..255 (default 0: no priorities, publishing one is `ERR_NOT_SUPPORTED`).
   * Above 0 the work queue is declared with `x-max-priority` (classic queues only; RabbitMQ
   * advises at most 10). Opt-in, as in Celery, because a priority queue costs RabbitMQ: in our
   * bench its drains reached 25-65 % of a plain queue's rate. RabbitMQ fixes the
   * value when the queue is first declared; a different one later is refused with
   * `ERR_INVALID_OPTION` naming the option and the queue.
   */
  readonly maxPriority?: number
  /**
   * Number of delay queues per work queue, 1..31 (default 28): queue `n` holds messages for
   * 2^n ms, so the longest delay is 2^delayLevels − 1 ms (28: about 3.1 days). Core re-publishes
   * longer delays in hops.
   */
  readonly delayLevels?: number
  /** Largest message body accepted, in bytes (default 10 MiB, at most 128 MiB). */
  readonly maxMessageBytes?: number
  /**
   * How long a call waits for a lost connection to come back before it rejects with
   * `ERR_CONNECTION` (default 30 000 ms). Publishes in flight when the connection dropped are
   * sent again once it is back (they may then arrive twice, never zero times).
   */
  readonly reconnectWaitMs?: number
  /**
   * Backoff between reconnect (and re-subscribe) attempts: core's reconnect waits, default 100 ms
   * doubling to 5 000 ms, with equal jitter (a wait of d becomes d/2..d).
   */
  readonly reconnect?: { readonly initialDelayMs?: number; readonly maxDelayMs?: number }
  /** AMQP heartbeat in seconds (default: the server's proposal, 60 on RabbitMQ). */
  readonly heartbeatSeconds?: number
  /**
   * Declare every queue with `x-expires` (ms): RabbitMQ deletes a queue unused that long, with
   * its messages. For tests and throw-away queues only; off by default.
   */
  readonly queueExpiresMs?: number
  /** Name of the connection in the RabbitMQ management UI (default `errand`). */
  readonly connectionName?: string
  /** Where warnings go (reconnects, consumer timeouts). Default: core's console logger. */
  readonly logger?: Logger
}

/** Options after validation, with the URL's query parameters applied. */
export interface ParsedAmqpOptions {
  readonly connection: ConnectionPlan
  readonly queueType: AmqpQueueType
  readonly maxPriority: number
  readonly delayLevels: number
  readonly maxMessageBytes: number
  readonly reconnectWaitMs: number
  /** `reconnect` in core's terms, for `reconnectDelay`. */
  readonly reconnect: ReconnectBackoff
  readonly queueExpiresMs: number | undefined
  readonly logger: Logger | undefined
}

/** Where connections come from. `display` is safe to print (password masked). */
export type ConnectionPlan =
  | {
      readonly kind: 'url'
      readonly url: string
      readonly socketOptions: Record<string, unknown>
      readonly display: string
    }
  | { readonly kind: 'factory'; readonly open: () => Promise<ChannelModel>; readonly display: string }
  | { readonly kind: 'borrowed'; readonly model: ChannelModel; readonly display: string }

/** Default highest priority: 0, priorities are opt-in (see {@link AmqpBrokerOptions.maxPriority}). */
export const DEFAULT_MAX_PRIORITY = 0
/** Default number of delay levels: delays up to 2^28 − 1 ms (about 3.1 days). */
export const DEFAULT_DELAY_LEVELS = 28
/** Default wait for a lost connection: 30 s. */
export const DEFAULT_RECONNECT_WAIT_MS = 30_000
/** Largest body RabbitMQ accepts by default (`max_message_size`, 128 MiB). */
export const MAX_MESSAGE_BYTES_LIMIT = 128 * 1024 * 1024

/** amqplib's own URL parameters: left in the URL for it to read. */
const AMQPLIB_QUERY = ['heartbeat', 'frameMax', 'channelMax', 'locale', 'maxFrameSize']

const isModel = (v: unknown): boolean =>
  typeof v === 'object' && v !== null && typeof (v as ChannelModel).createConfirmChannel === 'function'
const isLogger = (v: unknown): boolean =>
  typeof v === 'object' &&
  v !== null &&
  ['debug', 'info', 'warn', 'error'].every((k) => typeof (v as Record<string, unknown>)[k] === 'function')

const int = (min: number, max: number) => z.number().int().min(min).max(max)

const schema = z
  .object({
    url: z.string().min(1).optional(),
    connection: z
      .custom<AmqpBrokerOptions['connection']>((v) => typeof v === 'function' || isModel(v), {
        message: 'expected an amqplib ChannelModel or a function returning one',
      })
      .optional(),
    tls: z.record(z.string(), z.unknown()).optional(),
    queueType: z.enum(['classic', 'quorum']).optional(),
    maxPriority: int(0, 255).optional(),
    delayLevels: int(1, MAX_DELAY_LEVELS).optional(),
    maxMessageBytes: int(1, MAX_MESSAGE_BYTES_LIMIT).optional(),
    reconnectWaitMs: int(0, 24 * 3600_000).optional(),
    reconnect: z
      .object({ initialDelayMs: int(1, 600_000).optional(), maxDelayMs: int(1, 600_000).optional() })
      .strict()
      .optional(),
    heartbeatSeconds: int(0, 3600).optional(),
    queueExpiresMs: int(1, 2 ** 31 - 1).optional(),
    connectionName: z.string().min(1).max(200).optional(),
    logger: z
      .custom<Logger>(isLogger, { message: 'expected a Logger (debug, info, warn, error)' })
      .optional(),
  })
  .strict()

type Raw = z.output<typeof schema>

/** The options a URL's query may set. */
const querySchema = schema.pick({
  queueType: true,
  maxPriority: true,
  delayLevels: true,
  maxMessageBytes: true,
  reconnectWaitMs: true,
  queueExpiresMs: true,
})
type QueryOptions = z.output<typeof querySchema>

/** Validates options (or a URL); throws `InvalidOptionError` naming the field. */
export function parseOptions(options: AmqpBrokerOptions | string): ParsedAmqpOptions {
  const raw = parseOptionsWith(
    schema,
    typeof options === 'string' ? { url: options } : options,
    ADAPTER.adapter,
  )
  if ((raw.url === undefined) === (raw.connection === undefined)) {
    throw new InvalidOptionError('url', 'give exactly one of "url" and "connection"', ADAPTER)
  }
  let query: QueryOptions = {}
  let connection: ConnectionPlan
  if (raw.url !== undefined) {
    const plan = urlPlan(raw)
    query = plan.query
    connection = plan.connection
  } else {
    connection = functionOrModelPlan(raw.connection!)
  }
  // Options given as an object win over the URL's.
  const queueType = raw.queueType ?? query.queueType ?? 'classic'
  const maxPriority = raw.maxPriority ?? query.maxPriority ?? DEFAULT_MAX_PRIORITY
  if (queueType === 'quorum' && maxPriority > 0) {
    throw new InvalidOptionError(
      'maxPriority',
      'quorum queues have no priorities on RabbitMQ 3.x: use 0 or queueType classic',
      ADAPTER,
    )
  }
  return {
    connection,
    queueType,
    maxPriority,
    delayLevels: raw.delayLevels ?? query.delayLevels ?? DEFAULT_DELAY_LEVELS,
    maxMessageBytes: raw.maxMessageBytes ?? query.maxMessageBytes ?? DEFAULT_MAX_ENVELOPE_BYTES,
    reconnectWaitMs: raw.reconnectWaitMs ?? query.reconnectWaitMs ?? DEFAULT_RECONNECT_WAIT_MS,
    reconnect: { initialMs: raw.reconnect?.initialDelayMs, maxMs: raw.reconnect?.maxDelayMs },
    queueExpiresMs: raw.queueExpiresMs ?? query.queueExpiresMs,
    logger: raw.logger,
  }
}

/** The connection plan of `raw.url`, and the options its query sets (taken out of the URL). */
function urlPlan(raw: Raw): { connection: ConnectionPlan; query: QueryOptions } {
  const parsed = parseStoreUrl(raw.url!, ADAPTER.adapter)
  if (parsed.protocol !== 'amqp:' && parsed.protocol !== 'amqps:') {
    throw new InvalidOptionError('url', `expected amqp:// or amqps://, got "${parsed.protocol}//"`, ADAPTER)
  }
  const { options, url } = optionsFromQuery(parsed, querySchema, {
    adapter: ADAPTER.adapter,
    passThrough: AMQPLIB_QUERY,
  })
  if (raw.heartbeatSeconds !== undefined) url.searchParams.set('heartbeat', String(raw.heartbeatSeconds))
  const socketOptions: Record<string, unknown> = {
    ...(raw.tls ?? {}),
    noDelay: true,
    clientProperties: { connection_name: raw.connectionName ?? 'errand' },
  }
  const plain = url.toString()
  return {
    connection: { kind: 'url', url: plain, socketOptions, display: maskCredentials(plain) },
    query: options as QueryOptions,
  }
}

function functionOrModelPlan(connection: NonNullable<AmqpBrokerOptions['connection']>): ConnectionPlan {
  if (typeof connection === 'function')
    return { kind: 'factory', open: connection, display: 'a connection factory' }
  return { kind: 'borrowed', model: connection, display: 'a caller-owned connection' }
}
