import { ConnectionError, type DeadLetter, isDeadLetterReason, type QueueStats } from '@errand/core'
import type { Channel, ConfirmChannel, GetMessage, Options } from 'amqplib'
import { closeQuietly, type Session } from './connection.js'
import { carriedHeaders, H_DEAD_AT, H_REASON, messageIdOf, parseErrorHeader } from './headers.js'
import { deadQueueName, delayQueueName, MAX_DELAY_LEVELS } from './names.js'
import type { Topology } from './topology.js'

/**
 * The broker's admin calls: counts, purges, dead letters, deleting a queue. Each runs on the
 * topology's admin channel (or channels of its own), across reconnects.
 *
 * Dead letters live in `<queue>.dead`, one message each, the original bytes as the body and the
 * reason, error and time in headers. AMQP has no "peek" and no "delete by id", so every
 * operation here reads the queue with `basic.get` on a channel of its own, holding what it reads
 * unacknowledged: acking removes a message, closing the channel puts the rest back (in their
 * places). Cost: one round trip per dead letter read; while a scan runs, the messages it holds
 * are invisible to a concurrent scan.
 */

/** Ready messages, delayed ones (in the delay levels), dead letters. In-flight: unknown to AMQP. */
export async function queueStats(topology: Topology, queue: string): Promise<QueueStats> {
  const counts = await topology.admin(async (ch) => {
    const work = await ch.assertQueue(queue, topology.workQueueOptions())
    const dead = await ch.assertQueue(deadQueueName(queue), topology.deadQueueOptions())
    return { ready: work.messageCount, dead: dead.messageCount }
  }, queue)
  let delayed = 0
  for (const n of (await topology.existingLevels(queue)).values()) delayed += n
  return { ready: counts.ready, delayed, inFlight: undefined, dead: counts.dead }
}

/** Remove the ready and delayed messages of `queue`; returns how many. */
export async function purgeQueue(topology: Topology, queue: string): Promise<number> {
  const ready = await topology.admin(async (ch) => (await ch.purgeQueue(queue)).messageCount)
  const levels = [...(await topology.existingLevels(queue)).keys()]
  if (levels.length === 0) return ready
  const delayed = await topology.admin(async (ch) => {
    let m = 0
    for (const level of levels) m += (await ch.purgeQueue(delayQueueName(queue, level))).messageCount
    return m
  })
  return ready + delayed
}

/** Delete `queue` with its dead-letter and delay queues; returns the number of messages deleted. */
export async function deleteQueue(topology: Topology, queue: string): Promise<number> {
  let n = 0
  const names = [queue, deadQueueName(queue)]
  for (let level = 0; level < MAX_DELAY_LEVELS; level++) names.push(delayQueueName(queue, level))
  await topology.fanOut(
    names.map((name) => async (ch) => {
      const { messageCount } = await ch.deleteQueue(name)
      n += messageCount
    }),
  )
  topology.forget(queue)
  return n
}

/** The first `limit` dead letters of `queue`, oldest first, left in place. */
export function listDeadLetters(topology: Topology, queue: string, limit: number): Promise<DeadLetter[]> {
  return topology.admin((_ch, session) => listOn(session, queue, limit))
}

/**
 * Move dead letters (all, or those whose id is in `ids`) back to `queue`: each is published
 * anew (original bytes, headers without the dead-letter ones, delivery count reset) on a
 * confirm channel, and acked in `<queue>.dead` once every copy is confirmed.
 */
export function requeueDeadLetters(
  topology: Topology,
  queue: string,
  ids: readonly string[] | undefined,
): Promise<number> {
  return topology.admin((_ch, session) => requeueOn(session, queue, ids))
}

/** Delete the dead letters of `queue` (all, or those whose id is in `ids`); returns how many. */
export function purgeDeadLetters(
  topology: Topology,
  queue: string,
  ids: readonly string[] | undefined,
): Promise<number> {
  if (ids === undefined) {
    return topology.admin(async (ch) => (await ch.purgeQueue(deadQueueName(queue))).messageCount)
  }
  return topology.admin((_ch, session) => purgeOn(session, queue, ids))
}

async function listOn(session: Session, queue: string, limit: number): Promise<DeadLetter[]> {
  const dead = deadQueueName(queue)
  const ch = await session.openChannel()
  try {
    const out: DeadLetter[] = []
    while (out.length < limit) {
      const message = await ch.get(dead, { noAck: false })
      if (message === false) break
      out.push(toDeadLetter(queue, message))
    }
    return out
  } finally {
    await closeQuietly(ch)
  }
}

async function requeueOn(
  session: Session,
  queue: string,
  ids: readonly string[] | undefined,
): Promise<number> {
  const ch = (await session.openChannel(true)) as ConfirmChannel
  let returned = 0
  ch.on('return', () => {
    returned++
  })
  try {
    const taken = await scan(ch, queue, ids, (message) => {
      const options: Options.Publish = {
        persistent: true,
        mandatory: true,
        messageId: messageIdOf(message),
        headers: carriedHeaders(message),
      }
      if (typeof message.properties.priority === 'number') options.priority = message.properties.priority
      ch.sendToQueue(queue, message.content, options)
    })
    if (taken.length === 0) return 0
    await ch.waitForConfirms()
    // A copy found no queue (deleted meanwhile): ack nothing, every dead letter stays.
    if (returned > 0)
      throw new ConnectionError(`requeue: queue "${queue}" is gone; nothing was moved`, { adapter: 'amqp' })
    for (const message of taken) ch.ack(message)
    return taken.length
  } finally {
    await closeQuietly(ch)
  }
}

async function purgeOn(session: Session, queue: string, ids: readonly string[]): Promise<number> {
  const ch = await session.openChannel()
  try {
    const taken = await scan(ch, queue, ids, () => {})
    for (const message of taken) ch.ack(message)
    return taken.length
  } finally {
    await closeQuietly(ch)
  }
}

/** Read the whole dead-letter queue once (as long as it was when the scan began), picking by id. */
async function scan(
  ch: Channel,
  queue: string,
  ids: readonly string[] | undefined,
  onPick: (message: GetMessage) => void,
): Promise<GetMessage[]> {
  const dead = deadQueueName(queue)
  const wanted = ids === undefined ? undefined : new Set(ids)
  if (wanted !== undefined && wanted.size === 0) return []
  const { messageCount } = await ch.checkQueue(dead)
  const taken: GetMessage[] = []
  for (let i = 0; i < messageCount; i++) {
    const message = await ch.get(dead, { noAck: false })
    if (message === false) break
    if (wanted === undefined || wanted.has(messageIdOf(message))) {
      onPick(message)
      taken.push(message)
    }
  }
  return taken
}

function toDeadLetter(queue: string, message: GetMessage): DeadLetter {
  const headers = message.properties.headers ?? {}
  const reason = headers[H_REASON]
  const deadAt = headers[H_DEAD_AT]
  return {
    id: messageIdOf(message),
    queue,
    reason: isDeadLetterReason(reason) ? reason : 'rejected',
    error: parseErrorHeader(headers['x-errand-error']),
    body: message.content,
    deadAt: typeof deadAt === 'number' ? deadAt : 0,
  }
}
