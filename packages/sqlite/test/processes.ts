import { type ChildProcess, fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url))
/** Runs the children on the workspace's TypeScript sources (test-support/README.md). */
const TS_HOOKS = fileURLToPath(new URL('../../../test-support/ts-hooks.mjs', import.meta.url))

/** A forked child running test/fixtures/child.ts, with its IPC messages collected. */
export interface Child {
  readonly process: ChildProcess
  readonly messages: Record<string, unknown>[]
  /** Resolves with the first message (already received or to come) that `match` accepts. */
  next(match: (m: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>
  /** Resolves with the exit code (or signal name) once the process is gone. */
  readonly exited: Promise<number | string | null>
  output(): string
}

/** Forks test/fixtures/child.ts in `role` with `env` (TypeScript sources through ts-hooks.mjs). */
export function spawnChild(role: string, env: Record<string, string>, options: { uid?: number } = {}): Child {
  const child = fork(fixture('child.ts'), [], {
    execArgv: ['--conditions=source', '--import', TS_HOOKS],
    env: { ...process.env, ...env, ROLE: role },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    ...(options.uid !== undefined && { uid: options.uid, gid: options.uid }),
  })
  const messages: Record<string, unknown>[] = []
  const listeners = new Set<() => void>()
  let output = ''
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()))
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()))
  child.on('message', (m) => {
    messages.push(m as Record<string, unknown>)
    for (const l of [...listeners]) l()
  })
  const exited = new Promise<number | string | null>((resolve) =>
    child.on('close', (code, signal) => {
      resolve(code ?? signal)
      for (const l of [...listeners]) l()
    }),
  )
  return {
    process: child,
    messages,
    exited,
    output: () => output,
    next(match, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          listeners.delete(check)
          reject(
            new Error(
              `no matching message within ${timeoutMs} ms; got ${JSON.stringify(messages)}; output: ${output}`,
            ),
          )
        }, timeoutMs)
        const check = () => {
          const found = messages.find(match)
          if (found !== undefined) {
            clearTimeout(timer)
            listeners.delete(check)
            resolve(found)
          } else if (child.exitCode !== null || child.signalCode !== null) {
            clearTimeout(timer)
            listeners.delete(check)
            reject(new Error(`child exited (${child.exitCode ?? child.signalCode}) first; output: ${output}`))
          }
        }
        listeners.add(check)
        check()
      })
    },
  }
}
