export { type Adapter, type AdapterContext, type AdapterModule, defineAdapter } from './adapter.js'
export {
  App,
  type AppOptions,
  appOptionsSchema,
  createApp,
  type DeadLetters,
  type SendOptions,
  type TransactionalBroker,
} from './app.js'
export { type AsyncResult, type GetOptions, GroupResult, TaskResult } from './async-result.js'
export {
  type Broker,
  type BrokerCapabilities,
  brokerCapabilities,
  type ConsumeOptions,
  type Consumer,
  DEAD_LETTER_REASONS,
  DEFAULT_BROKER_CAPABILITIES,
  type DeadLetter,
  type DeadLetterInfo,
  type DeadLetterReason,
  type Delivery,
  type DeliveryHandler,
  isDeadLetterReason,
  type ListDeadLettersOptions,
  type OutgoingMessage,
  type QueueStats,
} from './broker.js'
export {
  type AnyCanvas,
  Canvas,
  Chain,
  type ChainStepMismatch,
  type CheckChain,
  Chord,
  type ChordBodyMismatch,
  type ChordOptions,
  chain,
  chord,
  type ErrorCallbackInput,
  Group,
  group,
  type InputValidator,
  type NeedOf,
  type Outcome,
  type OutcomesOf,
  type OutputOf,
  type OutputsOf,
  type PartialMerge,
  type ReadyOf,
  Signature,
  type SignatureOptions,
} from './canvas.js'
export { CHUNK_TASK, chunks } from './canvas-chunks.js'
export {
  type FieldsTuple,
  MapCanvas,
  type MapElementOf,
  type MapOutputOf,
  type Mappable,
  map,
  starmap,
} from './canvas-map.js'
export type {
  NotAnInputField,
  OpenFields,
  PartialBound,
  PartialNeedsObjectInput,
  PartialSignature,
  PartialStepMismatch,
} from './canvas-partial.js'
export type { DedupMode } from './dedup.js'
export {
  DEFAULT_MAX_ENVELOPE_BYTES,
  decodeEnvelope,
  ENVELOPE_VERSION,
  type Envelope,
  encodeEnvelope,
  envelopeJsonSchema,
  envelopeSchema,
  type WireFrame,
  type WireNode,
} from './envelope.js'
export {
  AdapterNotInstalledError,
  CanceledError,
  ClosedError,
  ConnectionError,
  DecodeError,
  DeliveryLostError,
  ErrandError,
  type ErrandErrorCode,
  type ErrandErrorOptions,
  InvalidOptionError,
  isErrandError,
  NotSupportedError,
  PayloadTooLargeError,
  RejectTaskError,
  RetryTaskError,
  type SerializedError,
  serializeError,
  TaskFailedError,
  TimeoutError,
  UnknownTaskError,
  ValidationError,
  type ValidationIssue,
} from './errors.js'
export {
  type BackendEventSubscription,
  type CanceledEvent,
  type DeadLetteredEvent,
  EVENT_ERROR_MESSAGE_MAX,
  type EventError,
  type EventFilter,
  type EventStore,
  type EventStreamItem,
  type EventsDropped,
  type EventsOptions,
  eventError,
  type FailedEvent,
  hasEventStore,
  isTaskEventType,
  matchesFilter,
  type ProgressEvent,
  parseTaskEvent,
  type SentEvent,
  type StartedEvent,
  type SucceededEvent,
  TASK_EVENT_TYPES,
  type TaskEvent,
  type TaskEventBase,
  type TaskEventType,
} from './events.js'
export { EVENT_FLUSH_MS, EventSink, MAX_PENDING_EVENTS } from './events-sink.js'
export { DEFAULT_EVENT_BUFFER, type EventListener, EventStream } from './events-stream.js'
export { type FlowControlStore, hasFlowControl, MAX_FLOW_KEY_LENGTH } from './flow-control.js'
export type { Instrumentation, RunInfo } from './instrumentation.js'
// The adapter kit: what every adapter shares (docs/adapters.md).
export {
  Batcher,
  type BatcherOptions,
  type BatchFlush,
  type BatchOutcome,
  BrokerBase,
  batchOk,
  type CheckedConsumeOptions,
  checkConsumeOptions,
  DEFAULT_RECONNECT_BACKOFF,
  type DeliveryHost,
  type DeliveryInit,
  type DeliveryState,
  ExpirySweep,
  type ExpirySweepOptions,
  flowChecks,
  LeasedDelivery,
  Lifecycle,
  type LifecycleState,
  MAX_PREFETCH,
  MAX_RESULT_KEY_LENGTH,
  optionsFromQuery,
  parseOptions,
  parseStoreUrl,
  type QueryOptions,
  type QueryOptionsSpec,
  type ReconnectBackoff,
  type ReleaseReason,
  reconnectBackoffSchema,
  reconnectDelay,
  resultChecks,
  SettleOnceDelivery,
  type SweepCounts,
  WaitRegistry,
  type WaitRegistryHooks,
} from './kit/index.js'
export type { ConcurrencyLimit, QueueLimits, RateLimit } from './limits.js'
export { consoleLogger, type Logger, maskingLogger, silentLogger } from './logger.js'
export {
  createMemoryBroker,
  createMemoryResultBackend,
  DEFAULT_MEMORY_LEASE_MS,
  MemoryBroker,
  type MemoryBrokerOptions,
  type MemoryCapabilityOverrides,
  MemoryEvents,
  MemoryResultBackend,
  type MemoryResultBackendOptions,
  MemoryStore,
  type MemoryStoreSelector,
  parseMemoryUrl,
} from './memory/index.js'
export { type CheckedMessage, checkOutgoing } from './outgoing.js'
export { maskCredentials } from './redact.js'
export { Replaced } from './replaced.js'
export { ADAPTER_PACKAGES, type AdapterLookup, memoryAdapter, registerAdapter } from './resolve-adapter.js'
export {
  DEFAULT_RESULT_BACKEND_CAPABILITIES,
  FINAL_STATES,
  type GroupProgress,
  isFinalState,
  isTaskState,
  type MemberOutcome,
  type ResultBackend,
  type ResultBackendCapabilities,
  resultBackendCapabilities,
  type SetStateOptions,
  TASK_STATES,
  type TaskLogLine,
  type TaskRecord,
  type TaskState,
} from './result-backend.js'
export { type Backoff, backoffDelay, backoffSchema, type RetryPolicy, retryPolicySchema } from './retry.js'
export { ShutdownError } from './running-task.js'
export {
  type Schedule,
  type ScheduleInfo,
  type ScheduleOptions,
  Scheduler,
  type ScheduleSpec,
} from './schedule.js'
export {
  type AnyTask,
  defineTask,
  Task,
  type TaskContext,
  type TaskDefinitionNoOutput,
  type TaskDefinitionWithOutput,
  type TaskHandler,
} from './task.js'
export {
  PROGRESS_MAX_BYTES,
  PROGRESS_WRITE_EVERY_MS,
  TASK_LOG_LINE_MAX_BYTES,
  TASK_LOG_MAX_BYTES,
  TASK_LOG_MAX_LINES,
} from './task-telemetry.js'
export { isTransactionalBroker } from './transactional-broker.js'
export { Worker } from './worker.js'
export {
  type ResolvedWorkerOptions,
  type TaskInfo,
  type WorkerHooks,
  type WorkerOptions,
  workerOptionsSchema,
} from './worker-options.js'
