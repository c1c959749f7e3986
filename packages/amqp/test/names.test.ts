import { isErrandError } from '@errand/core'
import { describe, expect, it } from 'vitest'
import {
  arrivalPattern,
  checkQueueName,
  delayRoute,
  levelQueuePattern,
  MAX_DELAY_LEVELS,
  passDownPattern,
} from '../src/names.js'

/** RabbitMQ's topic matching, for checking the bindings on paper. */
function topicMatch(pattern: string, key: string): boolean {
  const p = pattern.split('.')
  const k = key.split('.')
  const go = (i: number, j: number): boolean => {
    if (i === p.length) return j === k.length
    if (p[i] === '#') return go(i + 1, j) || (j < k.length && go(i, j + 1))
    if (j === k.length) return false
    return (p[i] === '*' || p[i] === k[j]) && go(i + 1, j + 1)
  }
  return go(0, 0)
}

/** Where a delayed message goes, following the bindings and dead-letter hops; returns the levels visited. */
function simulate(queue: string, delayMs: number, otherQueue: string): number[] {
  const { exchange, routingKey } = delayRoute(queue, delayMs)
  let level = Number(exchange.split('.').pop())
  const visited: number[] = []
  for (;;) {
    // At exchange `level`: to the level queue of this queue, or one level down, or home.
    expect(topicMatch(levelQueuePattern(otherQueue, level), routingKey)).toBe(false)
    if (topicMatch(levelQueuePattern(queue, level), routingKey)) {
      visited.push(level)
      if (level === 0) return visited
      level -= 1
      continue
    }
    if (level === 0) {
      expect(topicMatch(arrivalPattern(queue), routingKey)).toBe(true)
      expect(topicMatch(arrivalPattern(otherQueue), routingKey)).toBe(false)
      return visited
    }
    expect(topicMatch(passDownPattern(level), routingKey)).toBe(true)
    level -= 1
  }
}

describe('names', () => {
  it('a delay visits exactly the levels of its bits, and they add up to it', () => {
    for (const d of [1, 2, 3, 200, 700, 1000, 1200, 60_000, 2 ** 28 - 1, 2 ** MAX_DELAY_LEVELS - 1]) {
      const visited = simulate('jobs.high', d, 'high')
      expect(visited.reduce((sum, level) => sum + 2 ** level, 0)).toBe(d)
      expect(visited).toEqual([...visited].sort((a, b) => b - a))
    }
  })

  it('fractional delays round up: never early', () => {
    expect(simulate('q', 2.2, 'p').reduce((sum, level) => sum + 2 ** level, 0)).toBe(3)
  })

  it('queue names: the adapter refuses what would collide or break routing', () => {
    for (const ok of ['jobs', 'a.b.c', 'conf-amqp-x_1:2@3/4', 'x'.repeat(180)])
      expect(() => checkQueueName(ok)).not.toThrow()
    for (const bad of [
      '',
      'a..b',
      '.a',
      'a.',
      'a*b',
      'a.#',
      'a b',
      'amq.x',
      'q.dead',
      'q.delay.3',
      'é',
      'x'.repeat(181),
    ]) {
      let error: unknown
      try {
        checkQueueName(bad)
      } catch (err) {
        error = err
      }
      expect(
        error instanceof TypeError || isErrandError(error, 'ERR_INVALID_OPTION'),
        `accepted "${bad}"`,
      ).toBe(true)
    }
  })
})
