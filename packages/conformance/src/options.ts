import type { Broker, ResultBackend } from '@errand/core'

/** Test name → why it is skipped for this implementation. A reason is required. */
export type SkipList = Readonly<Record<string, string>>

/** Options of {@link runBrokerConformance}. */
export interface BrokerConformanceOptions {
  /** Label of this variant in test names (`redis`, `redis-cluster`, `sqs-fifo`…). */
  readonly name: string
  /**
   * A fresh broker connected to the same store each call (not yet connected: the suite calls
   * `connect()` and `close()`). Tests isolate themselves with unique queue names, so the
   * factory must not wipe anything.
   */
  readonly factory: () => Broker | Promise<Broker>
  /** Tests this implementation skips, each with its reason. */
  readonly skip?: SkipList
  /** Multiplies every wait and tolerance, for stores with coarse timers (default 1). */
  readonly timeScale?: number
  /** Queue name prefix (default `conf`); each test appends a unique suffix. */
  readonly queuePrefix?: string
  /**
   * Messages in the competing-consumers test (default 10 000). Lower it only for a store whose
   * throughput makes the default impractical, and say so in the variant's notes.
   */
  readonly stressMessages?: number
  /**
   * A broker whose way to the store a test can cut, for the tests of failures (registered only
   * when given). Typically the same broker class pointed at a {@link startTcpProxy} in front of
   * the store.
   */
  readonly outage?: BrokerOutage
}

/**
 * A broker that reaches its store through something the suite can sever: usually a cuttable
 * loopback proxy (`startTcpProxy`) in front of the same store `factory` uses.
 *
 * @example
 * ```ts
 * const proxy = await startTcpProxy(REDIS_URL)
 * afterAll(() => proxy.close())
 * runBrokerConformance({
 *   name: 'redis',
 *   factory: () => new RedisBroker({ url: REDIS_URL }),
 *   outage: {
 *     // Fail a command at once when the connection drops, instead of waiting for a reconnect.
 *     broker: () => new RedisBroker({ url: `redis://127.0.0.1:${proxy.port}`, redisOptions: { maxRetriesPerRequest: 0 } }),
 *     cut: () => proxy.cut(),
 *     restore: () => proxy.restore(),
 *   },
 * })
 * ```
 */
export interface BrokerOutage {
  /**
   * A fresh broker (not yet connected) on the same store as `factory`, going through the cut.
   * Bound its timeouts (reconnect patience, retries per command) to a few seconds: a settle made
   * during a cut must reject within twice the suite's "soon" (10 s, scaled), not wait for the
   * store to come back.
   */
  readonly broker: () => Broker | Promise<Broker>
  /** Sever every connection of the `broker`s to the store and refuse new ones until `restore`. */
  cut(): Promise<void>
  /** Let them reach the store again (they reconnect by themselves). */
  restore(): Promise<void>
}

/** Options of {@link runResultBackendConformance}. */
export interface ResultBackendConformanceOptions {
  readonly name: string
  /** A fresh backend on the same store each call (not yet connected). */
  readonly factory: () => ResultBackend | Promise<ResultBackend>
  readonly skip?: SkipList
  readonly timeScale?: number
  /**
   * Events kept per queue by the factory's backends (their configured retention), where
   * `capabilities.events` is true: the retention test publishes ten times as many and expects at
   * most `2 × eventRetention + 200` back (stores trim approximately, e.g. Redis `MAXLEN ~`).
   * Default 1000.
   */
  readonly eventRetention?: number
}

/** Options of {@link runAppConformance}: end to end over a broker and a backend. */
export interface AppConformanceOptions {
  readonly name: string
  readonly broker: () => Broker | Promise<Broker>
  readonly backend: () => ResultBackend | Promise<ResultBackend>
  readonly skip?: SkipList
  readonly timeScale?: number
  readonly queuePrefix?: string
}
