import type { Broker } from './broker.js'
import type { ResultBackend } from './result-backend.js'

/**
 * What an adapter package exports at its root so that `createApp` can open it from a URL:
 * `export function createBroker(url)` and/or `export function createResultBackend(url)`.
 * The URL is passed whole (credentials included); the factory validates it and must not
 * connect yet (core calls `connect()`).
 */
export interface AdapterModule {
  createBroker?: (url: string) => Broker
  createResultBackend?: (url: string) => ResultBackend
}
