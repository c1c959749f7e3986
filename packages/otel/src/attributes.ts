/**
 * Attribute names. The `messaging.*` ones follow OpenTelemetry's messaging semantic conventions
 * (1.27+); `errand.*` ones are Errand's own.
 */
export const ATTR = {
  system: 'messaging.system',
  operationType: 'messaging.operation.type',
  operationName: 'messaging.operation.name',
  destination: 'messaging.destination.name',
  messageId: 'messaging.message.id',
  conversationId: 'messaging.message.conversation_id',
  batchCount: 'messaging.batch.message_count',
  task: 'errand.task.name',
  attempt: 'errand.attempt',
  maxAttempts: 'errand.max_attempts',
  parentId: 'errand.parent_id',
  groupId: 'errand.group.id',
  groupIndex: 'errand.group.index',
  groupSize: 'errand.group.size',
  outcome: 'errand.outcome',
  deadLetterReason: 'errand.dead_letter.reason',
} as const

/** An attribute name of {@link ATTR}. */
export type AttrName = (typeof ATTR)[keyof typeof ATTR]

/** `messaging.system` of every Errand span. */
export const MESSAGING_SYSTEM = 'errand'

/** What became of one attempt, as far as the attempt itself can tell. */
export type AttemptOutcome = 'succeeded' | 'retried' | 'dead-lettered' | 'returned'
