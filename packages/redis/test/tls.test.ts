import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RedisBroker, RedisResultBackend } from '../src/index.js'
import { str, text, until } from './helpers.js'

const run = promisify(execFile)

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0))
    })
  })
}

/** A throwaway TLS-only redis-server on loopback with a self-made CA (openssl). */
describe('rediss:// (TLS) against a local TLS redis-server', () => {
  let dir = ''
  let server: ChildProcess | undefined
  let port = 0
  let ca: Buffer

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'errand-redis-tls-'))
    const f = (name: string) => join(dir, name)
    await run('openssl', [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=errand-test-ca',
      '-keyout',
      f('ca.key'),
      '-out',
      f('ca.crt'),
    ])
    await run('openssl', [
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-subj',
      '/CN=127.0.0.1',
      '-keyout',
      f('server.key'),
      '-out',
      f('server.csr'),
    ])
    await run('sh', ['-c', `printf 'subjectAltName=IP:127.0.0.1' > ${f('san.ext')}`])
    await run('openssl', [
      'x509',
      '-req',
      '-in',
      f('server.csr'),
      '-CA',
      f('ca.crt'),
      '-CAkey',
      f('ca.key'),
      '-CAcreateserial',
      '-days',
      '1',
      '-extfile',
      f('san.ext'),
      '-out',
      f('server.crt'),
    ])
    ca = await readFile(f('ca.crt'))
    port = await freePort()
    server = spawn(
      'redis-server',
      [
        '--port',
        '0',
        '--tls-port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--tls-cert-file',
        f('server.crt'),
        '--tls-key-file',
        f('server.key'),
        '--tls-ca-cert-file',
        f('ca.crt'),
        '--tls-auth-clients',
        'no',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        dir,
      ],
      { stdio: 'ignore' },
    )
    server.on('error', () => {})
    const probe = new RedisBroker({
      url: `rediss://127.0.0.1:${port}`,
      tls: { ca },
      redisOptions: { retryStrategy: () => null },
    })
    const start = Date.now()
    for (;;) {
      try {
        await probe.connect()
        break
      } catch (err) {
        if (Date.now() - start > 10_000) throw err
        await new Promise((r) => setTimeout(r, 100))
      }
    }
    await probe.close()
  }, 60_000)

  afterAll(async () => {
    if (server && server.exitCode === null && server.signalCode === null) {
      await new Promise<void>((resolve) => {
        server?.once('exit', () => resolve())
        server?.kill('SIGTERM')
      })
    }
    await rm(dir, { recursive: true, force: true })
  })

  it('publishes, consumes and stores results over TLS, verifying the server with the given CA', async () => {
    const url = `rediss://127.0.0.1:${port}`
    const broker = new RedisBroker({ url, tls: { ca } })
    const backend = new RedisResultBackend({ url, tls: { ca } })
    await broker.connect()
    await backend.connect()
    const seen: string[] = []
    await broker.consume(
      'tls',
      (d) => {
        seen.push(str(d.body))
        void d.ack()
      },
      { prefetch: 5 },
    )
    await broker.publish('tls', [{ body: text('secret') }, { body: text('later'), delayMs: 20 }])
    await until(() => seen.length === 2)
    expect(seen).toEqual(['secret', 'later'])
    await backend.setState({ id: 't', state: 'SUCCESS', result: 1 }, { ttlMs: 10_000 })
    expect(await backend.waitFor('t', { signal: new AbortController().signal })).toMatchObject({ result: 1 })
    await broker.close()
    await backend.close()
  })

  it('refuses a server its CA does not vouch for', async () => {
    const broker = new RedisBroker({
      url: `rediss://127.0.0.1:${port}`,
      redisOptions: { retryStrategy: () => null },
    })
    await expect(broker.connect()).rejects.toMatchObject({ code: 'ERR_CONNECTION' })
    await broker.close()
  })
})
