export { createMemoryBroker, createMemoryResultBackend } from './factories.js'
export { MemoryBroker } from './memory-broker.js'
export { DEFAULT_MEMORY_EVENT_RETENTION, MemoryEvents } from './memory-events.js'
export { MemoryResultBackend } from './memory-result-backend.js'
export { MemoryStore } from './memory-store.js'
export {
  DEFAULT_MEMORY_LEASE_MS,
  type MemoryBrokerOptions,
  type MemoryCapabilityOverrides,
  type MemoryResultBackendOptions,
  type MemoryStoreSelector,
  parseMemoryUrl,
} from './options.js'
