import { MemoryBroker } from './memory-broker.js'
import { MemoryResultBackend } from './memory-result-backend.js'

/**
 * A {@link MemoryBroker} on the process-wide store a URL names: `memory://` (store `default`) or
 * `memory://<name>`. Not connected yet. Throws `InvalidOptionError` for any other URL.
 */
export function createMemoryBroker(url: string): MemoryBroker {
  return new MemoryBroker({ url })
}

/** A {@link MemoryResultBackend} on the process-wide store a URL names, like {@link createMemoryBroker}. */
export function createMemoryResultBackend(url: string): MemoryResultBackend {
  return new MemoryResultBackend({ url })
}
