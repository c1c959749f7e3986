import { randomBytes } from 'node:crypto'
import type { Broker, ConsumeOptions, Consumer, Delivery } from '@errand/core'
import { expect } from 'vitest'

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** Clock rounding allowed when checking "never early" (ms, not scaled: clocks differ by rounding). */
export const CLOCK_SLACK_MS = 5

/** UTF-8 bytes of `text`. */
export function encode(text: string): Uint8Array {
  return encoder.encode(text)
}

/** `bytes` as UTF-8 text. */
export function decode(bytes: Uint8Array): string {
  return decoder.decode(bytes)
}

/** True when both byte arrays hold the same bytes (no diff printed for megabyte bodies). */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return (
    Buffer.compare(
      Buffer.from(a.buffer, a.byteOffset, a.byteLength),
      Buffer.from(b.buffer, b.byteOffset, b.byteLength),
    ) === 0
  )
}

/** `${prefix}-<time>-<random>`: unique across processes and runs. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`
}

/** Resolve after `ms`. Only for tests where time itself is what is tested. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** A promise with its resolve and reject at hand. */
export interface Deferred<T> {
  readonly promise: Promise<T>
  resolve(value: T): void
  reject(reason: unknown): void
}

/** Make a {@link Deferred}. */
export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void
  let reject!: (reason: unknown) => void
  const promise = new Promise<T>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

/** `promise`, or a rejection naming `what` after `ms`. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out after ${Math.round(ms)} ms waiting for ${what}`)),
      ms,
    )
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** Run `call`; whether it rejected (or threw) and with what. */
export async function caught(call: () => Promise<unknown>): Promise<{ threw: boolean; error: unknown }> {
  try {
    await call()
    return { threw: false, error: undefined }
  } catch (error) {
    return { threw: true, error }
  }
}

/** Assert that `call` rejects (or throws) an error whose `code` is `code`. */
export async function expectCode(
  call: () => Promise<unknown>,
  code: string,
  what = 'the call',
): Promise<void> {
  const { threw, error } = await caught(call)
  expect(threw, `${what} should reject with ${code}`).toBe(true)
  expect((error as { code?: unknown } | undefined)?.code, `${what}: ${String(error)}`).toBe(code)
}

/** One delivery as received by an {@link Inbox}. */
export interface Received {
  readonly delivery: Delivery
  /** Label of the consumer that received it. */
  readonly by: string
  /** `Date.now()` on arrival. */
  readonly at: number
}

/**
 * Collects deliveries from one or more consumers, in arrival order, so that tests await them
 * (event-driven) instead of sleeping.
 */
export class Inbox {
  readonly received: Received[] = []
  readonly #timeoutMs: number
  #cursor = 0
  #waiters: { count: number; resolve: () => void }[] = []

  /** `timeoutMs`: default wait of {@link next} and {@link waitForCount}. */
  constructor(timeoutMs: number) {
    this.#timeoutMs = timeoutMs
  }

  /** Deliveries received so far. */
  get count(): number {
    return this.received.length
  }

  /** A delivery handler that records into this inbox under the label `by`. */
  handler(by = 'consumer'): (delivery: Delivery) => void {
    return (delivery) => {
      this.received.push({ delivery, by, at: Date.now() })
      const ready = this.#waiters.filter((w) => w.count <= this.received.length)
      this.#waiters = this.#waiters.filter((w) => w.count > this.received.length)
      for (const waiter of ready) waiter.resolve()
    }
  }

  /** Resolve once `count` deliveries in total have arrived. */
  async waitForCount(count: number, timeoutMs = this.#timeoutMs): Promise<void> {
    if (this.received.length >= count) return
    const done = deferred()
    this.#waiters.push({ count, resolve: () => done.resolve() })
    await withTimeout(done.promise, timeoutMs, `${count} deliveries (got ${this.received.length})`)
  }

  /** The next delivery not yet taken with `next`. */
  async nextReceived(timeoutMs = this.#timeoutMs): Promise<Received> {
    await this.waitForCount(this.#cursor + 1, timeoutMs)
    return this.received[this.#cursor++]!
  }

  /** Like {@link nextReceived}, the delivery only. */
  async next(timeoutMs = this.#timeoutMs): Promise<Delivery> {
    return (await this.nextReceived(timeoutMs)).delivery
  }
}

/** Start a consumer that records into `inbox` (under label `by`). */
export function consumeInto(
  broker: Broker,
  queue: string,
  inbox: Inbox,
  options: ConsumeOptions,
  by = 'consumer',
): Promise<Consumer> {
  return broker.consume(queue, inbox.handler(by), options)
}

/** Wait for `promise` without failing the test on rejection: a settle whose outcome is not tested. */
export async function settleQuietly(promise: Promise<unknown>): Promise<void> {
  try {
    await promise
  } catch {
    // The outcome of this call is not what the test checks.
  }
}
