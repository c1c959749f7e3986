import type { Broker, OutgoingMessage } from './broker.js'
import { type Envelope, encodeEnvelope } from './envelope.js'
import { NotSupportedError, PayloadTooLargeError, ValidationError } from './errors.js'
import { type Instrumentation, notifyPublish } from './instrumentation.js'
import { envelopeProblem } from './wire-check.js'

// Publishing: envelopes to broker messages (encoded, the broker's capabilities enforced, delays
// cut to what it can hold) and into `Broker.publish` or a caller's transaction, by queue and chunk.

/** Where the dispatcher sends: the broker, or the user's transaction. */
export type PublishTarget = (queue: string, messages: readonly OutgoingMessage[]) => Promise<void>

/** Encodes and publishes envelopes on one broker. */
export class Publisher {
  constructor(
    private readonly broker: Broker,
    /** Chunk size for one `publish` call when sending many messages. */
    private readonly chunk: number,
    private readonly instrumentation: readonly Instrumentation[],
  ) {}

  /**
   * Encode and publish envelopes, grouped by queue, through `target` (default: the broker).
   * Delays longer than the broker's `maxDelayMs` go out as the longest it allows; the worker
   * re-publishes the rest (a hop) and never runs a task before its `eta`.
   */
  async publish(envelopes: readonly Envelope[], target?: PublishTarget): Promise<void> {
    const n = envelopes.length
    if (n === 0) return
    if (this.instrumentation.length !== 0) notifyPublish(this.instrumentation, envelopes)
    const now = Date.now()
    const first = envelopes[0] as Envelope
    if (n === 1) {
      // One send of one task (the common case): no grouping, no per-call closures.
      await this.#send(first.queue, [this.toMessage(first, now)], target)
      return
    }
    const byQueue = new Map<string, OutgoingMessage[]>()
    for (const env of envelopes) {
      const message = this.toMessage(env, now)
      let list = byQueue.get(env.queue)
      if (!list) {
        list = []
        byQueue.set(env.queue, list)
      }
      list.push(message)
    }
    if (byQueue.size === 1) {
      await this.#sendChunked(first.queue, byQueue.get(first.queue) as OutgoingMessage[], target)
      return
    }
    await Promise.all([...byQueue].map(([queue, messages]) => this.#sendChunked(queue, messages, target)))
  }

  /** `messages` to `queue`, in calls of at most `chunk`, one after the other. */
  async #sendChunked(
    queue: string,
    messages: OutgoingMessage[],
    target: PublishTarget | undefined,
  ): Promise<void> {
    const chunk = this.chunk
    if (messages.length <= chunk) return this.#send(queue, messages, target)
    for (let i = 0; i < messages.length; i += chunk)
      await this.#send(queue, messages.slice(i, i + chunk), target)
  }

  /** One publish call: through `target` (a caller's transaction) or the broker. */
  #send(
    queue: string,
    messages: readonly OutgoingMessage[],
    target: PublishTarget | undefined,
  ): Promise<void> {
    return target === undefined ? this.broker.publish(queue, messages) : target(queue, messages)
  }

  /** One envelope as a broker message; enforces the broker's capabilities. */
  toMessage(env: Envelope, now = Date.now()): OutgoingMessage {
    const caps = this.broker.capabilities
    const problem = envelopeProblem(env)
    if (problem) {
      throw new ValidationError(
        `task "${env.task}": envelope field ${problem.path.join('.')} ${problem.message}`,
        [problem],
      )
    }
    const body = encodeEnvelope(env)
    if (body.byteLength > caps.maxMessageBytes) {
      throw new PayloadTooLargeError(body.byteLength, caps.maxMessageBytes, { adapter: this.broker.name })
    }
    let delayMs: number | undefined
    if (env.eta !== undefined && env.eta > now) {
      if (caps.maxDelayMs <= 0) {
        throw new NotSupportedError(`task "${env.task}": this broker cannot delay messages`, {
          adapter: this.broker.name,
        })
      }
      delayMs = Math.min(env.eta - now, caps.maxDelayMs)
    }
    if (env.priority !== undefined && env.priority > caps.maxPriority) {
      throw new NotSupportedError(
        caps.maxPriority === 0
          ? `task "${env.task}" asks for priority ${env.priority}, but this broker has no priorities`
          : `task "${env.task}" asks for priority ${env.priority}, above this broker's highest (${caps.maxPriority})`,
        { adapter: this.broker.name },
      )
    }
    return {
      body,
      // A deferred run and each debounced send are new publishes of the same attempt.
      dedupId: `${env.id}:${env.attempt}${env.deferrals ? `:d${env.deferrals}` : ''}${env.debounce ? `:${env.debounce.slice(env.debounce.lastIndexOf(' ') + 1)}` : ''}`,
      ...(delayMs !== undefined && { delayMs }),
      ...(env.priority !== undefined && env.priority > 0 && { priority: env.priority }),
    }
  }
}
