import {
  type Adapter,
  type AdapterContext,
  type Broker,
  defineAdapter,
  type ResultBackend,
} from '@errand/core'
import { RedisBroker } from './broker.js'
import { RedisResultBackend } from './result-backend.js'

export { RedisBroker } from './broker.js'
export { RedisDelivery } from './delivery.js'
export {
  DEFAULT_KEY_PREFIX,
  DEFAULT_LEASE_MS,
  DEFAULT_MAX_MESSAGE_BYTES,
  DEFAULT_MAX_PRIORITY,
  type PassThroughRedisOptions,
  type RedisBrokerOptions,
  type RedisClient,
  type RedisConnectionOptions,
  type RedisResultBackendOptions,
} from './options.js'
export { RedisResultBackend } from './result-backend.js'

/**
 * The broker for a `redis://` or `rediss://` URL, for core's `createApp` (does not connect).
 *
 * @example
 * ```ts
 * const broker = createBroker('redis://127.0.0.1:6379?keyPrefix=myapp')
 * ```
 */
export function createBroker(url: string, context?: AdapterContext): Broker {
  return new RedisBroker({ url, ...(context ? { logger: context.logger } : {}) })
}

/** The result backend for a `redis://` or `rediss://` URL, for core's `createApp` (does not connect). */
export function createResultBackend(url: string, context?: AdapterContext): ResultBackend {
  return new RedisResultBackend({ url, ...(context ? { logger: context.logger } : {}) })
}

/**
 * The Redis adapter: serves `redis://` and `rediss://` for broker and result backend, logging
 * through the app's logger. Core finds it by scheme; pass it to `createApp({ adapters })` only to
 * be explicit.
 */
export const adapter: Adapter = defineAdapter({
  name: '@errand/redis',
  schemes: ['redis:', 'rediss:'],
  createBroker: (url, context) => createBroker(url, context),
  createResultBackend: (url, context) => createResultBackend(url, context),
})
