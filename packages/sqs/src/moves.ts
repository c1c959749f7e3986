import type { Message } from '@aws-sdk/client-sqs'
import type { DeadLetterInfo } from '@errand/core'
import { ATTR, type Attributes, bodyAttributes, num, readNumber, readString, str } from './codec.js'
import type { SqsDelivery } from './delivery.js'
import type { QueueNames } from './names.js'
import type { QueueRegistry } from './queues.js'
import { fifoId, type Routed, route } from './sending.js'
import type { Store } from './store.js'

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
  readonly #store: Store
  readonly #registry: QueueRegistry
  readonly #defaultGroupId: string | undefined
  readonly #retryTimeoutMs: number

  constructor(
    store: Store,
    registry: QueueRegistry,
    options: { defaultGroupId?: string | undefined; retryTimeoutMs: number },
  ) {
    this.#store = store
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
    await this.#store.send(url, routed.entry, this.#deadline())
  }

  /**
   * Hide a delay-queue message again until about when it is due (visibility, at most 12 h per
   * hop). Its receive count there does not matter: it is forwarded as a new message.
   */
  async hop(url: string, message: Received, notBefore: number): Promise<void> {
    const seconds = Math.min(43_199, Math.max(1, Math.floor((notBefore - Date.now()) / 1000)))
    await this.#store.changeVisibility(url, message.ReceiptHandle, seconds, this.#deadline())
  }

  /** Move a due message from a delay queue into its queue (FIFO: with its group and dedup id). */
  async forward(names: QueueNames, delayUrl: string, message: Received): Promise<void> {
    const attrs = message.MessageAttributes
    const level = Math.min(readNumber(attrs, ATTR.level) ?? 0, names.levels.length - 1)
    const url = await this.#registry.level(names, level)
    const text = message.Body ?? '-'
    const copied = copyAttributes(message, [ATTR.group, ATTR.dedup, ATTR.level, ATTR.notBefore])
    const id = message.MessageId ?? message.ReceiptHandle
    const entry = names.fifo
      ? {
          text,
          attrs: copied,
          groupId: readString(attrs, ATTR.group) ?? fifoId(id),
          dedupId: readString(attrs, ATTR.dedup) ?? fifoId(id),
        }
      : { text, attrs: copied }
    await this.#store.send(url, entry, this.#deadline())
    await this.#store.delete(delayUrl, message.ReceiptHandle, this.#deadline())
  }

  /**
   * Give back a message that a poll brought after its consumer stopped. On a standard queue it is
   * re-sent with its delivery count carried over and the received copy deleted, so the receive
   * that nobody saw does not count as an attempt; on a FIFO queue (where a re-send would lose
   * its place in the group) it is made visible again, which counts one receive.
   */
  async giveBack(names: QueueNames, url: string, message: Received): Promise<void> {
    if (names.fifo) {
      await this.#store.changeVisibility(url, message.ReceiptHandle, 0, this.#deadline())
      return
    }
    const receives = Number(message.Attributes?.ApproximateReceiveCount ?? '1') || 1
    const base = (readNumber(message.MessageAttributes, ATTR.base) ?? 0) + receives - 1
    const attrs = copyAttributes(message, [ATTR.base])
    if (base > 0) attrs[ATTR.base] = num(base)
    await this.#store.send(url, { text: message.Body ?? '-', attrs }, this.#deadline())
    // At once, not batched: until the original is gone both copies exist.
    await this.#store.delete(url, message.ReceiptHandle, this.#deadline(), true)
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
    await this.#store.send(url, entry, this.#deadline())
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
