import type { BrokerCapabilities, OutgoingMessage } from './broker.js'
import { NotSupportedError, PayloadTooLargeError } from './errors.js'

/** An outgoing message after {@link checkOutgoing}: delay and priority resolved to numbers. */
export interface CheckedMessage {
  readonly body: Uint8Array
  /** Whole ms, 0 when not delayed. */
  readonly delayMs: number
  /** 0 when not given. */
  readonly priority: number
  readonly dedupId: string | undefined
  readonly orderingKey: string | undefined
}

/**
 * Check one message of a `publish` call against a broker's capabilities, the same way on every
 * adapter: a body that is not bytes or a bad delay/priority is a `TypeError` (a programming
 * mistake), a body over `maxMessageBytes` is `ERR_PAYLOAD_TOO_LARGE`, a delay over `maxDelayMs`
 * or a priority over `maxPriority` is `ERR_NOT_SUPPORTED` (core hops long delays itself).
 * `index` names the message in errors.
 */
export function checkOutgoing(
  message: OutgoingMessage,
  index: number,
  capabilities: BrokerCapabilities,
  adapter: string,
): CheckedMessage {
  if (typeof message !== 'object' || message === null || !(message.body instanceof Uint8Array)) {
    throw new TypeError(`publish: messages[${index}].body must be a Uint8Array`)
  }
  const { maxMessageBytes, maxDelayMs, maxPriority } = capabilities
  if (message.body.byteLength > maxMessageBytes) {
    throw new PayloadTooLargeError(message.body.byteLength, maxMessageBytes, { adapter })
  }
  const delayMs = message.delayMs ?? 0
  if (typeof delayMs !== 'number' || !Number.isFinite(delayMs) || delayMs < 0) {
    throw new TypeError(`publish: messages[${index}].delayMs must be a finite number >= 0`)
  }
  if (delayMs > maxDelayMs) {
    throw new NotSupportedError(`delay of ${delayMs} ms is over maxDelayMs ${maxDelayMs}`, { adapter })
  }
  const priority = message.priority ?? 0
  if (!Number.isInteger(priority) || priority < 0) {
    throw new TypeError(`publish: messages[${index}].priority must be an integer >= 0`)
  }
  if (priority > maxPriority) {
    throw new NotSupportedError(
      maxPriority === 0
        ? `priority ${priority} asked, but this broker has no priorities`
        : `priority ${priority} is over maxPriority ${maxPriority}`,
      { adapter },
    )
  }
  return {
    body: message.body,
    delayMs: Math.ceil(delayMs),
    priority,
    dedupId: message.dedupId,
    orderingKey: message.orderingKey,
  }
}
