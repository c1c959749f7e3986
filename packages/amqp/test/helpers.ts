import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { promisify } from 'node:util'
import type { Broker, Delivery, Logger } from '@errand/core'
import amqp from 'amqplib'
import { AmqpBroker, type AmqpBrokerOptions } from '../src/index.js'

const run = promisify(execFile)

/** RabbitMQ of the tests: `AMQP_URL`, or the local one. */
export const AMQP_URL = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672'

/**
 * Whether RabbitMQ answers. Under `CI=true` a missing server is an error (tests must not skip
 * silently there); elsewhere the suites skip with the reason in their title.
 */
export async function rabbitAvailable(): Promise<boolean> {
  try {
    const model = await amqp.connect(AMQP_URL, { timeout: 3_000 })
    await model.close()
    return true
  } catch (err) {
    if (process.env.CI === 'true') throw new Error(`RabbitMQ is not reachable at AMQP_URL (${String(err)})`)
    return false
  }
}

/** A queue name unique across processes and runs. */
export function uniqueQueue(prefix = 'amqp-test'): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`
}

/** Queues left by a crashed run disappear on their own after this long unused. */
export const TEST_QUEUE_EXPIRES_MS = 15 * 60_000

const QUEUE_METHODS = new Set([
  'publish',
  'consume',
  'stats',
  'purge',
  'listDeadLetters',
  'requeueDeadLetters',
  'purgeDeadLetters',
])

/**
 * Brokers for one test file: every queue any of them touches is remembered, and `cleanup()`
 * closes the brokers and deletes those queues with their dead-letter and delay queues, so a
 * shared RabbitMQ does not fill up.
 */
export class BrokerPool {
  readonly queues = new Set<string>()
  readonly #brokers = new Set<AmqpBroker>()

  /** A new broker (not connected) on the test server, tracked. */
  broker(options: Omit<AmqpBrokerOptions, 'url'> = {}): AmqpBroker {
    const broker = new AmqpBroker({
      url: AMQP_URL,
      queueExpiresMs: TEST_QUEUE_EXPIRES_MS,
      logger: quietLogger(),
      ...options,
    } as AmqpBrokerOptions)
    return this.track(broker)
  }

  /** Remember the queues `broker` touches (a proxy; the broker's own methods stay bound). */
  track<B extends Broker>(broker: B): B {
    if (broker instanceof AmqpBroker) this.#brokers.add(broker)
    const queues = this.queues
    return new Proxy(broker, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver)
        if (typeof value !== 'function') return value
        if (typeof prop === 'string' && QUEUE_METHODS.has(prop)) {
          return (queue: unknown, ...rest: unknown[]) => {
            if (typeof queue === 'string') queues.add(queue)
            return (value as (...a: unknown[]) => unknown).call(target, queue, ...rest)
          }
        }
        return (value as (...a: unknown[]) => unknown).bind(target)
      },
    })
  }

  /** Close every broker, then delete every queue used. */
  async cleanup(): Promise<void> {
    await Promise.allSettled([...this.#brokers].map((b) => b.close()))
    this.#brokers.clear()
    if (this.queues.size === 0) return
    const cleaner = new AmqpBroker({
      url: AMQP_URL,
      queueExpiresMs: TEST_QUEUE_EXPIRES_MS,
      logger: quietLogger(),
    })
    try {
      await cleaner.connect()
      for (const queue of this.queues) await cleaner.deleteQueue(queue)
      this.queues.clear()
    } finally {
      await cleaner.close()
    }
  }
}

/** A logger that keeps what it is told, for assertions (and prints nothing). */
export interface RecordingLogger extends Logger {
  readonly lines: { level: string; message: string; fields: Record<string, unknown> | undefined }[]
  /** Resolves when a line matching `pattern` was logged (already, or later). */
  waitFor(pattern: RegExp, timeoutMs: number): Promise<string>
}

/** A {@link RecordingLogger}. */
export function quietLogger(): RecordingLogger {
  const lines: RecordingLogger['lines'] = []
  const waiters: { pattern: RegExp; resolve: (line: string) => void }[] = []
  const record = (level: string) => (message: string, fields?: Record<string, unknown>) => {
    lines.push({ level, message, fields })
    if (process.env.AMQP_TEST_LOG) console.error(`[${level}] ${message}`)
    for (const w of waiters.filter((w) => w.pattern.test(message))) {
      waiters.splice(waiters.indexOf(w), 1)
      w.resolve(message)
    }
  }
  return {
    lines,
    debug: record('debug'),
    info: record('info'),
    warn: record('warn'),
    error: record('error'),
    waitFor(pattern, timeoutMs) {
      const seen = lines.find((l) => pattern.test(l.message))
      if (seen) return Promise.resolve(seen.message)
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no log line matching ${pattern} within ${timeoutMs} ms`)),
          timeoutMs,
        )
        waiters.push({
          pattern,
          resolve: (line) => {
            clearTimeout(timer)
            resolve(line)
          },
        })
      })
    },
  }
}

/** Run `rabbitmqctl` with `args`; resolves with its output. */
export async function rabbitmqctl(...args: string[]): Promise<string> {
  const { stdout } = await run('rabbitmqctl', args, { timeout: 120_000 })
  return stdout
}

/** Have RabbitMQ close (CONNECTION_FORCED) every connection whose `connection_name` is `name`. */
export async function forceCloseConnections(name: string): Promise<void> {
  if (!/^[\w.-]+$/.test(name)) throw new TypeError(`unsafe connection name: ${name}`)
  // Connections opening or closing meanwhile have no properties yet (or are gone): skip them.
  const expr =
    '[rabbit_networking:close_connection(P, "errand test") || P <- rabbit_networking:connections(), ' +
    'case catch rabbit_networking:connection_info(P, [client_properties]) of ' +
    '[{client_properties, Props}] when is_list(Props) -> ' +
    `lists:keyfind(<<"connection_name">>, 1, Props) =:= {<<"connection_name">>, longstr, <<"${name}">>}; ` +
    '_ -> false end].'
  const out = await rabbitmqctl('eval', expr)
  if (!out.includes('ok')) throw new Error(`no connection named ${name} was closed: ${out}`)
}

/** Collects deliveries so that tests await them instead of sleeping. */
export class Collector {
  readonly items: { delivery: Delivery; at: number }[] = []
  #waiters: { n: number; resolve: () => void }[] = []

  readonly handler = (delivery: Delivery): void => {
    this.items.push({ delivery, at: Date.now() })
    const ready = this.#waiters.filter((w) => w.n <= this.items.length)
    this.#waiters = this.#waiters.filter((w) => w.n > this.items.length)
    for (const w of ready) w.resolve()
  }

  /** Resolve once `n` deliveries arrived in total. */
  async waitFor(n: number, timeoutMs = 10_000): Promise<void> {
    if (this.items.length >= n) return
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      new Promise<void>((resolve) => this.#waiters.push({ n, resolve })),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`got ${this.items.length}/${n} deliveries in ${timeoutMs} ms`)),
          timeoutMs,
        )
      }),
    ]).finally(() => clearTimeout(timer))
  }
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()
/** UTF-8 bytes. */
export const enc = (text: string): Uint8Array => encoder.encode(text)
/** UTF-8 text. */
export const dec = (bytes: Uint8Array): string => decoder.decode(bytes)
