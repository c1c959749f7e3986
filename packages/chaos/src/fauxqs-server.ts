import { type ChildProcess, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

/** A fauxqs server in a child process on 127.0.0.1. */
export interface FauxqsServer {
  readonly endpoint: string
  readonly port: number
  stop(): Promise<void>
}

const PACKAGE_DIR = fileURLToPath(new URL('..', import.meta.url))

/**
 * Start fauxqs in its own process (so that its event loop does not share the suite's, which
 * also runs the proxies and waits on thousands of results), bound to 127.0.0.1 on a free port
 * (its own `startFauxqs` binds every interface, hence `buildApp` + `listen`).
 */
export async function startFauxqs(timeoutMs = 30_000): Promise<FauxqsServer> {
  const script = `
    const { buildApp } = await import('fauxqs')
    const app = buildApp({ logger: false })
    await app.listen({ port: 0, host: '127.0.0.1' })
    process.stdout.write(String(app.server.address().port) + '\\n')
    process.on('SIGTERM', () => app.close().then(() => process.exit(0)))
    process.channel.unref()
    process.once('disconnect', () => process.exit(0))
  `
  const child: ChildProcess = spawn(process.execPath, ['--input-type=module', '-e', script], {
    cwd: PACKAGE_DIR,
    // IPC as a lifeline only: fauxqs exits when this process dies.
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  })
  let stderr = ''
  child.stderr?.on('data', (c: Buffer) => {
    stderr = (stderr + c.toString()).slice(-2000)
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  let timer: NodeJS.Timeout | undefined
  try {
    const port = await new Promise<number>((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`fauxqs did not start within ${timeoutMs} ms`)), timeoutMs)
      child.once('exit', (code) => reject(new Error(`fauxqs exited with ${code}: ${stderr}`)))
      child.stdout?.once('data', (chunk: Buffer) => resolve(Number(chunk.toString().trim())))
    })
    return {
      endpoint: `http://127.0.0.1:${port}`,
      port,
      async stop() {
        child.kill('SIGKILL')
        await exited
      },
    }
  } catch (err) {
    child.kill('SIGKILL')
    throw err
  } finally {
    clearTimeout(timer)
  }
}
