import { chmodSync, mkdirSync, statSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { SqliteBroker } from '../src/index.js'
import { tempDir, uniqueQueue } from './helpers.js'
import { spawnChild } from './processes.js'

const tmp = tempDir('readonly')
// Permission bits do not stop root: as root, the child runs as `nobody`.
const asRoot = process.getuid?.() === 0
const uid = asRoot ? 65534 : undefined
chmodSync(tmp.dir, 0o755)
// `nobody` must reach the checkout's code: a checkout under a private directory (`mktemp -d` is
// 0700) gets others' traverse bit on each such ancestor for this file's run, given back after.
const opened: { path: string; mode: number }[] = []
if (asRoot) {
  for (let d = dirname(fileURLToPath(import.meta.url)); d !== dirname(d); d = dirname(d)) {
    const mode = statSync(d).mode & 0o7777
    if ((mode & 0o001) === 0) {
      chmodSync(d, mode | 0o001)
      opened.push({ path: d, mode })
    }
  }
}
afterAll(() => {
  chmodSync(join(tmp.dir, 'ro-dir'), 0o755)
  tmp.remove()
  for (const { path, mode } of opened) chmodSync(path, mode)
})

async function openAsOther(path: string): Promise<Record<string, unknown>> {
  const child = spawnChild(
    'open',
    { DB_URL: `sqlite://${path}`, QUEUE: uniqueQueue('ro') },
    uid === undefined ? {} : { uid },
  )
  const answer = await child.next((m) => 'ok' in m, 180_000)
  await child.exited
  return answer
}

describe('sqlite: a file that cannot be written', () => {
  it('a read-only directory: ERR_CONNECTION naming the path, no crash', async () => {
    const dir = join(tmp.dir, 'ro-dir')
    mkdirSync(dir)
    chmodSync(dir, 0o555)
    const path = join(dir, 'new.db')
    const answer = await openAsOther(path)
    expect(answer).toMatchObject({ ok: false, code: 'ERR_CONNECTION', name: 'ConnectionError' })
    expect(String(answer.message)).toContain(path)
    expect(String(answer.message)).toContain('[sqlite]')
  }, 300_000)

  it('a read-only file in a writable directory: ERR_CONNECTION naming the path, no crash', async () => {
    const dir = join(tmp.dir, 'rw-dir')
    mkdirSync(dir)
    chmodSync(dir, 0o777)
    const path = join(dir, 'ro.db')
    const broker = new SqliteBroker({ url: `sqlite://${path}` })
    await broker.connect()
    await broker.close()
    chmodSync(path, 0o444)
    const answer = await openAsOther(path)
    expect(answer).toMatchObject({ ok: false, code: 'ERR_CONNECTION', name: 'ConnectionError' })
    expect(String(answer.message)).toContain(path)
  }, 300_000)
})
