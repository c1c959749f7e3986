import type { Broker, ResultBackend } from '@errand/core'
import { afterEach, beforeEach, expect, it, type TestContext } from 'vitest'
import { uniqueName } from './helpers.js'
import type { BrokerOutage, SkipList } from './options.js'

/** A test body: gets vitest's context (for `ctx.skip(note)` where a capability makes it moot). */
export type TestBody = (ctx: TestContext) => Promise<void>

/** Registers one named test, honouring the skip list. */
export type Register = (name: string, body: TestBody, timeoutMs?: number) => void

/**
 * A test registrar over a skip list. Skipped tests are registered with `it.skip` and the reason
 * in the title, so reports say why. `finish()` adds a test that fails when the skip list names a
 * test that does not exist (a typo would otherwise skip nothing) or gives an empty reason.
 */
export function registrar(
  skip: SkipList | undefined,
  defaultTimeoutMs: number,
): {
  register: Register
  finish(): void
} {
  const names = new Set<string>()
  const register: Register = (name, body, timeoutMs = defaultTimeoutMs) => {
    if (names.has(name)) throw new Error(`duplicate conformance test name: ${name}`)
    names.add(name)
    const reason = skip?.[name]
    if (reason !== undefined) it.skip(`${name} (skipped: ${reason})`, body)
    else it(name, body, timeoutMs)
  }
  const finish = () => {
    it('the skip list names existing tests, each with a reason', () => {
      const entries = Object.entries(skip ?? {})
      expect(
        entries.filter(([name]) => !names.has(name)).map(([name]) => name),
        'the skip list names tests that do not exist in this suite (a typo skips nothing)',
      ).toEqual([])
      expect(
        entries.filter(([, reason]) => reason.trim() === '').map(([name]) => name),
        'every skip needs a reason: these skip entries have an empty one',
      ).toEqual([])
    })
  }
  return { register, finish }
}

/** Fresh, connected instances for one test, closed after it. */
export interface InstanceHarness<T> {
  /** A new instance from the factory, connected; closed after the test. */
  open(): Promise<T>
  /** Close an instance now (it is not closed again after the test). */
  close(instance: T): Promise<void>
  /** `ms` scaled by the variant's `timeScale`. */
  ms(ms: number): number
}

/** The broker harness also hands out unique queue names, cleaned up after each test. */
export interface BrokerHarness extends InstanceHarness<Broker> {
  /** A queue name unique to this test run; purged (ready, delayed, dead) after the test. */
  queue(): string
}

interface Closable {
  close(): Promise<void>
  connect(): Promise<void>
}

function instanceHarness<T extends Closable>(
  factory: () => T | Promise<T>,
  timeScale: number,
  afterClose: () => Promise<void>,
): InstanceHarness<T> {
  let open = new Set<T>()
  beforeEach(() => {
    open = new Set()
  })
  afterEach(async () => {
    const instances = [...open]
    open.clear()
    const results = await Promise.allSettled(instances.map((instance) => instance.close()))
    await afterClose()
    const failed = results.find((r) => r.status === 'rejected')
    if (failed !== undefined) throw (failed as PromiseRejectedResult).reason
  })
  return {
    async open() {
      const instance = await factory()
      open.add(instance)
      await instance.connect()
      return instance
    },
    async close(instance) {
      open.delete(instance)
      await instance.close()
    },
    ms: (ms) => ms * timeScale,
  }
}

/** A {@link BrokerHarness} over `factory`; registers its hooks in the current `describe`. */
export function brokerHarness(
  factory: () => Broker | Promise<Broker>,
  timeScale: number,
  queuePrefix: string,
): BrokerHarness {
  let queues: string[] = []
  const base = instanceHarness(factory, timeScale, async () => {
    const used = queues
    queues = []
    if (used.length === 0) return
    // Leave nothing behind on a shared server: empty this test's own queues (never a global wipe).
    const cleaner = await factory()
    await cleaner.connect()
    try {
      for (const queue of used) {
        await cleaner.purge(queue)
        await cleaner.purgeDeadLetters(queue)
      }
    } finally {
      await cleaner.close()
    }
  })
  return {
    ...base,
    queue() {
      const name = uniqueName(queuePrefix)
      queues.push(name)
      return name
    },
  }
}

/** Brokers whose way to the store can be cut (`options.outage`), closed after each test. */
export interface OutageHarness extends InstanceHarness<Broker> {
  /** Sever the brokers' connections to the store. */
  cut(): Promise<void>
  /** Let them through again. */
  restore(): Promise<void>
}

/** An {@link OutageHarness} over `outage`; registers its hooks in the current `describe`. */
export function outageHarness(outage: BrokerOutage, timeScale: number): OutageHarness {
  return {
    ...instanceHarness(outage.broker, timeScale, async () => {}),
    cut: () => outage.cut(),
    restore: () => outage.restore(),
  }
}

/** An {@link InstanceHarness} of result backends over `factory`. */
export function backendHarness(
  factory: () => ResultBackend | Promise<ResultBackend>,
  timeScale: number,
): InstanceHarness<ResultBackend> {
  return instanceHarness(factory, timeScale, async () => {})
}

/** What each group of broker tests gets. */
export interface BrokerSuiteContext {
  readonly test: Register
  readonly h: BrokerHarness
  /** Messages in the competing-consumers test. */
  readonly stressMessages: number
  /** How long to wait for something that should happen promptly (5 s, scaled). */
  readonly soon: number
  /** The cuttable brokers of `options.outage`; undefined when the variant gives none. */
  readonly outage: OutageHarness | undefined
}

/** What each group of result backend tests gets. */
export interface BackendSuiteContext {
  readonly test: Register
  readonly h: InstanceHarness<ResultBackend>
  /** How long to wait for something that should happen promptly (5 s, scaled). */
  readonly soon: number
}
