export { Batcher, type BatcherOptions, type BatchFlush, type BatchOutcome, batchOk } from './batcher.js'
export { BrokerBase } from './broker-base.js'
export { type CheckedConsumeOptions, checkConsumeOptions, MAX_PREFETCH } from './consume-options.js'
export { ExpirySweep, type ExpirySweepOptions, type SweepCounts } from './expiry-sweep.js'
export { flowChecks } from './flow-checks.js'
export { Lifecycle, type LifecycleState } from './lifecycle.js'
export { parseOptions } from './parse-options.js'
export {
  DEFAULT_RECONNECT_BACKOFF,
  type ReconnectBackoff,
  reconnectBackoffSchema,
  reconnectDelay,
} from './reconnect.js'
export { MAX_RESULT_KEY_LENGTH, resultChecks } from './result-checks.js'
export {
  type DeliveryHost,
  type DeliveryInit,
  type DeliveryState,
  LeasedDelivery,
  type ReleaseReason,
  SettleOnceDelivery,
} from './settle-once.js'
export { optionsFromQuery, parseStoreUrl, type QueryOptions, type QueryOptionsSpec } from './url-options.js'
export { WaitRegistry, type WaitRegistryHooks } from './wait-registry.js'
