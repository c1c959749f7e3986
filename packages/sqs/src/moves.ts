import type { Message } from '@aws-sdk/client-sqs'
import type { DeadLetterInfo } from '@errand/core'
import { ATTR, type Attributes, bodyAttributes, num, readNumber, readString, str } from './codec.js'
import type { SqsDelivery } from './delivery.js'
import type { QueueNames } from './names.js'
import type { QueueRegistry } from './queues.js'
import { fifoId, MAX_DELAY_SECONDS, type Routed, route } from './sending.js'
import type { Transport } from './transport.js'

type Received = Message & { ReceiptHandle: string }

/** Longest error text kept on a dead letter (SQS counts attributes against the message size). */
const MAX_ERROR_CHARS = 16_384

/** Copy a received message's attributes in the shape SendMessage takes. */
export function copyAttributes(message: Message, drop: readonly string[] = []): Attributes {
  const out: Attributes = {}
  for (const [name, value] of Object.entries(message.MessageAttributes ?? {})) {
    if (drop.includes(name) || value.DataType === undefined) continue
    out[name] =
      value.BinaryValue !== undefined
        ? { DataType: value.DataType, BinaryValue: value.BinaryValue }
        : { DataType: value.DataType, StringValue: value.StringValue ?? '' }
  }
  return out
}

/**
 * The message moves the adapter makes besides publish: re-sends (long nacks, delay hops), FIFO
 * forwarding from the delay queue, dead-lettering and requeueing. Each is send-then-delete, so
 * a crash in between leaves a duplicate, never a loss.
 */
export class Moves {
  readonly #transport: Transport
  readonly #registry: QueueRegistry
  readonly #defaultGroupId: string | undefined
  readonly #retryTimeoutMs: number

  constructor(
    transport: Transport,
    registry: QueueRegistry,
    options: { defaultGroupId?: string | undefined; retryTimeoutMs: number },
  ) {
    this.#transport = transport
    this.#registry = registry
    this.#defaultGroupId = options.defaultGroupId
    this.#retryTimeoutMs = options.retryTimeoutMs
  }

  /** Send a routed message to its queue. */
  async sendRouted(names: QueueNames, routed: Routed): Promise<void> {
    const url =
      routed.target.kind === 'level'
        ? await this.#registry.level(names, routed.target.level)
        : await this.#registry.delay(names)
    await this.#transport.send(url, routed.entry, this.#deadline())
  }

  /**
   * A message received before its not-before time. Due within 15 minutes: re-sent with the
   * exact remaining delay (a fresh receive count) and deleted. Later: hidden again by visibility
   * until about 15 minutes before it is due.
   */
  async hop(url: string, message: Received, notBefore: number): Promise<void> {
    const remainingMs = notBefore - Date.now()
    if (remainingMs <= MAX_DELAY_SECONDS * 1000) {
      const entry = {
        text: message.Body ?? '-',
        attrs: copyAttributes(message),
        delaySeconds: Math.max(0, Math.ceil(remainingMs / 1000)),
      }
      await this.#transport.send(url, entry, this.#deadline())
      await this.#transport.delete(url, message.ReceiptHandle, this.#deadline())
      return
    }
    const seconds = Math.min(43_199, Math.ceil((remainingMs - MAX_DELAY_SECONDS * 1000) / 1000) + 1)
    await this.#transport.changeVisibility(url, message.ReceiptHandle, seconds, this.#deadline())
  }

  /** Move a due message from a FIFO queue's delay queue into the FIFO queue. */
  async forward(names: QueueNames, delayUrl: string, message: Received): Promise<void> {
    const attrs = message.MessageAttributes
    const level = readNumber(attrs, ATTR.level) ?? 0
    const groupId = readString(attrs, ATTR.group) ?? fifoId(message.MessageId ?? message.ReceiptHandle)
    const dedupId = readString(attrs, ATTR.dedup) ?? fifoId(message.MessageId ?? message.ReceiptHandle)
    const url = await this.#registry.level(names, Math.min(level, names.levels.length - 1))
    const entry = {
      text: message.Body ?? '-',
      attrs: copyAttributes(message, [ATTR.group, ATTR.dedup, ATTR.level, ATTR.notBefore]),
      groupId,
      dedupId,
    }
    await this.#transport.send(url, entry, this.#deadline())
    await this.#transport.delete(delayUrl, message.ReceiptHandle, this.#deadline())
  }

  /** Re-send a delivery as a new message due in `delayMs` (nack longer than visibility allows). */
  async resend(names: QueueNames, delivery: SqsDelivery, delayMs: number): Promise<void> {
    const routed = route(
      names,
      {
        text: delivery.message.Body ?? '-',
        attrs: bodyAttributes(delivery.message),
        level: delivery.level,
        delayMs,
        base: delivery.attempt,
        dedupId: undefined,
        groupId: delivery.message.Attributes?.MessageGroupId,
      },
      this.#defaultGroupId,
    )
    await this.sendRouted(names, routed)
  }

  /** Send a delivery to the dead-letter queue with reason, error, time and source queue. */
  async deadLetter(names: QueueNames, delivery: SqsDelivery, info: DeadLetterInfo): Promise<void> {
    const url = await this.#registry.dead(names)
    const attrs: Attributes = {
      ...bodyAttributes(delivery.message),
      [ATTR.reason]: str(info.reason),
      [ATTR.deadAt]: num(Date.now()),
      [ATTR.source]: str(names.logical),
    }
    if (info.error !== undefined) {
      const error = info.error
      let json = JSON.stringify(error)
      if (json.length > MAX_ERROR_CHARS) {
        json = JSON.stringify({ ...error, stack: error.stack?.slice(0, MAX_ERROR_CHARS / 2) })
        if (json.length > MAX_ERROR_CHARS)
          json = JSON.stringify({ name: error.name, message: error.message.slice(0, MAX_ERROR_CHARS / 2) })
      }
      attrs[ATTR.error] = str(json)
    }
    if (delivery.level > 0) attrs[ATTR.level] = num(delivery.level)
    const group = delivery.message.Attributes?.MessageGroupId
    if (group !== undefined) attrs[ATTR.group] = str(group)
    const entry = names.fifo
      ? {
          text: delivery.message.Body ?? '-',
          attrs,
          // A group of its own: dead letters need no order, and listing them stays quick.
          groupId: fifoId(`dead-${delivery.messageId}`),
          dedupId: fifoId(`${delivery.messageId}-${delivery.attempt}`),
        }
      : { text: delivery.message.Body ?? '-', attrs }
    await this.#transport.send(url, entry, this.#deadline())
  }

  /** Put a dead letter back on its queue (attempts start again at 1). */
  async requeue(names: QueueNames, message: Received): Promise<void> {
    const attrs = message.MessageAttributes
    const level = readNumber(attrs, ATTR.level) ?? 0
    const routed = route(
      names,
      {
        text: message.Body ?? '-',
        attrs: bodyAttributes(message),
        level: Math.min(level, names.levels.length - 1),
        delayMs: 0,
        base: 0,
        dedupId: undefined,
        groupId: readString(attrs, ATTR.group),
      },
      this.#defaultGroupId,
    )
    await this.sendRouted(names, routed)
  }

  #deadline(): number {
    return Date.now() + this.#retryTimeoutMs
  }
}
