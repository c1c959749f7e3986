import {
  type App,
  type AppOptions,
  type Broker,
  type BrokerCapabilities,
  brokerCapabilities,
  createApp,
  type ResultBackend,
  type ResultBackendCapabilities,
  resultBackendCapabilities,
  silentLogger,
} from '@errand/core'
import { afterEach, beforeEach } from 'vitest'
import type { Register } from './harness.js'
import { uniqueName } from './helpers.js'

/** Options for one app made by the harness. */
export interface HarnessAppOptions {
  readonly tasks: AppOptions['tasks']
  /** Override broker capabilities seen by core (e.g. a short `maxDelayMs` to force delay hops). */
  readonly capabilities?: Partial<BrokerCapabilities>
  readonly resultTtlMs?: number
  /** Per-queue limits (`createApp({ queues })`). */
  readonly queues?: AppOptions['queues']
  /**
   * Override result backend capabilities seen by core (e.g. `{ flowControl: false }`, to see what
   * an app gets from a backend without flow control on any store).
   */
  readonly backendCapabilities?: Partial<ResultBackendCapabilities>
}

/** Fresh apps over the variant's broker and backend, closed and cleaned after each test. */
export interface AppHarness {
  /** A new app (its own broker and backend connections), closed after the test. */
  app(options: HarnessAppOptions): Promise<App>
  /** A broker connection of the test's own, for admin calls and raw publishes; closed after the test. */
  broker(): Promise<Broker>
  /** A queue name unique to this test; emptied after it. */
  queue(): string
  /** `ms` scaled by the variant's `timeScale`. */
  ms(ms: number): number
}

/** What each group of app tests gets. */
export interface AppSuiteContext {
  readonly test: Register
  readonly h: AppHarness
  /** How long to wait for something that should happen promptly (10 s, scaled). */
  readonly soon: number
}

/**
 * A broker that forwards everything to `inner` but reports other capabilities, so that the suite
 * can make core use its emulations (delay hops) on any store.
 */
export class CapabilityOverride implements Broker {
  readonly capabilities: BrokerCapabilities
  constructor(
    private readonly inner: Broker,
    overrides: Partial<BrokerCapabilities>,
  ) {
    this.capabilities = brokerCapabilities({ ...inner.capabilities, ...overrides })
  }
  get name(): string {
    return this.inner.name
  }
  connect = () => this.inner.connect()
  close = () => this.inner.close()
  publish: Broker['publish'] = (q, m) => this.inner.publish(q, m)
  consume: Broker['consume'] = (q, h, o) => this.inner.consume(q, h, o)
  stats: Broker['stats'] = (q) => this.inner.stats(q)
  purge: Broker['purge'] = (q) => this.inner.purge(q)
  listDeadLetters: Broker['listDeadLetters'] = (q, o) => this.inner.listDeadLetters(q, o)
  requeueDeadLetters: Broker['requeueDeadLetters'] = (q, ids) => this.inner.requeueDeadLetters(q, ids)
  purgeDeadLetters: Broker['purgeDeadLetters'] = (q, ids) => this.inner.purgeDeadLetters(q, ids)
}

/**
 * `inner` with other capabilities: every other property and method is the backend's own (bound to
 * it, so its private state works), so core sees a backend that lacks what the overrides turn off.
 */
export function overrideBackendCapabilities(
  inner: ResultBackend,
  overrides: Partial<ResultBackendCapabilities>,
): ResultBackend {
  const capabilities = resultBackendCapabilities({ ...inner.capabilities, ...overrides })
  return new Proxy(inner, {
    get(target, prop) {
      if (prop === 'capabilities') return capabilities
      const value: unknown = Reflect.get(target, prop, target)
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value
    },
  })
}

/** An {@link AppHarness}; registers its hooks in the current `describe`. */
export function appHarness(
  brokerFactory: () => Broker | Promise<Broker>,
  backendFactory: () => ResultBackend | Promise<ResultBackend>,
  timeScale: number,
  queuePrefix: string,
): AppHarness {
  let apps: App[] = []
  let brokers: Broker[] = []
  let queues: string[] = []
  // Each test's apps get a default queue of their own, so that no two tests (or two variants of
  // one store run at once) share `default`, whose settings may differ between variants.
  let defaultQueue = ''
  beforeEach(() => {
    apps = []
    brokers = []
    defaultQueue = uniqueName(`${queuePrefix}-default`)
    queues = [defaultQueue]
  })
  afterEach(async () => {
    const closing = await Promise.allSettled([
      ...apps.map((a) => a.close()),
      ...brokers.map((b) => b.close()),
    ])
    if (queues.length > 0) {
      const cleaner = await brokerFactory()
      await cleaner.connect()
      try {
        for (const q of queues) {
          await cleaner.purge(q)
          await cleaner.purgeDeadLetters(q)
        }
      } finally {
        await cleaner.close()
      }
    }
    const failed = closing.find((r) => r.status === 'rejected')
    if (failed) throw (failed as PromiseRejectedResult).reason
  })
  return {
    async app(options) {
      const raw = await brokerFactory()
      const broker = options.capabilities ? new CapabilityOverride(raw, options.capabilities) : raw
      const rawBackend = await backendFactory()
      const backend = options.backendCapabilities
        ? overrideBackendCapabilities(rawBackend, options.backendCapabilities)
        : rawBackend
      const app = createApp({
        broker,
        backend,
        tasks: options.tasks,
        defaultQueue,
        logger: silentLogger,
        ...(options.resultTtlMs !== undefined && { resultTtlMs: options.resultTtlMs }),
        ...(options.queues !== undefined && { queues: options.queues }),
      })
      apps.push(app)
      await app.connect()
      return app
    },
    async broker() {
      const b = await brokerFactory()
      brokers.push(b)
      await b.connect()
      return b
    },
    queue() {
      const q = uniqueName(queuePrefix)
      queues.push(q)
      return q
    },
    ms: (ms) => ms * timeScale,
  }
}
