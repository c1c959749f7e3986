import { type ChildProcess, spawn } from 'node:child_process'
import { dirname, join } from 'node:path'
import { PassThrough, Readable } from 'node:stream'
import { fileURLToPath } from 'node:url'

export const CLI_DIR = join(dirname(fileURLToPath(import.meta.url)), '..')
export const FIXTURE_APP = join(CLI_DIR, 'test', 'fixtures', 'app.ts')
const BIN = join(CLI_DIR, 'src', 'bin.ts')

/** The command that runs the CLI from its TypeScript sources (as the built bin would run). */
export function cliArgv(args: readonly string[]): string[] {
  return [process.execPath, '--import', 'tsx', '--conditions=source', BIN, ...args]
}

export interface CliRun {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Start the CLI as a child process (its own stdin: not a terminal). */
export function startCli(args: readonly string[], env: Record<string, string>): ChildProcess {
  const [cmd, ...rest] = cliArgv(args)
  return spawn(cmd!, rest, { cwd: CLI_DIR, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] })
}

/** Run the CLI to its end (bounded) and collect its output. */
export function runCli(
  args: readonly string[],
  env: Record<string, string>,
  timeoutMs = 30_000,
): Promise<CliRun> {
  const child = startCli(args, env)
  child.stdin?.end()
  let stdout = ''
  let stderr = ''
  child.stdout?.on('data', (d: Buffer) => {
    stdout += d.toString()
  })
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString()
  })
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`errand ${args.join(' ')} did not end within ${timeoutMs} ms; stderr: ${stderr}`))
    }, timeoutMs)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

/**
 * Run the CLI in this process with its own streams and environment (no terminal), for the cases
 * that need no child process: usage errors, failures to connect. Much faster than a spawn.
 */
export async function runInProcess(args: readonly string[], env: Record<string, string>): Promise<CliRun> {
  const { run } = await import('../src/main.js')
  const stdout = new PassThrough()
  const stderr = new PassThrough()
  let out = ''
  let err = ''
  stdout.on('data', (d: Buffer) => {
    out += d.toString()
  })
  stderr.on('data', (d: Buffer) => {
    err += d.toString()
  })
  const code = await run(args, { stdout, stderr, stdin: Readable.from([]), env, cwd: CLI_DIR })
  return { code, stdout: out, stderr: err }
}
