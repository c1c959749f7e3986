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
