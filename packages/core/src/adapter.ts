import type { Broker } from './broker.js'
import type { Logger } from './logger.js'
import type { ResultBackend } from './result-backend.js'

/**
 * What core hands an adapter's factory besides the URL. New fields may be added (never removed),
 * so an adapter reads what it needs and ignores the rest.
 */
export interface AdapterContext {
  /**
   * The app's logger (credentials already masked). Adapters log through it and never write to
   * the console themselves, so an app that plugs in pino sees every line in one place.
   */
  readonly logger: Logger
}

/**
 * A store adapter: the URL schemes it serves and its factories. An adapter package exports one
 * as `adapter` (core finds it by scheme for its built-in stores) and an app can pass any adapter
 * to `createApp({ adapters: [...] })` or {@link registerAdapter} it, so a third party's
 * `mysql://` works by URL like the built-in stores.
 *
 * Factories receive the URL whole (credentials included); they validate it and must not connect
 * yet (core calls `connect()`).
 *
 * @example
 * export const adapter = defineAdapter({
 *   name: '@acme/errand-mysql',
 *   schemes: ['mysql:'],
 *   createBroker: (url, { logger }) => new MySqlBroker({ url, logger }),
 * })
 */
export interface Adapter {
  /** A name for messages, usually the package name. */
  readonly name: string
  /** URL schemes with their colon, lower case: `['redis:', 'rediss:']`. */
  readonly schemes: readonly string[]
  readonly createBroker?: ((url: string, context: AdapterContext) => Broker) | undefined
  readonly createResultBackend?: ((url: string, context: AdapterContext) => ResultBackend) | undefined
}

/**
 * What an adapter package exports at its root: `adapter` (preferred), or the older loose
 * `createBroker(url)` / `createResultBackend(url)` functions, still accepted.
 */
export interface AdapterModule {
  adapter?: Adapter
  createBroker?: (url: string, context: AdapterContext) => Broker
  createResultBackend?: (url: string, context: AdapterContext) => ResultBackend
}

/** Identity with type checking: declare an {@link Adapter}. */
export function defineAdapter(adapter: Adapter): Adapter {
  return adapter
}
