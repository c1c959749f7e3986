// `errand dashboard`, run as a child process from the CLI's sources: it serves on 127.0.0.1,
// prints its URL, answers, and stops cleanly on SIGINT.
import { type ChildProcess, spawn } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { unique } from './helpers.js'

const CLI_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cli')

function startCli(args: readonly string[]): ChildProcess {
  return spawn(
    process.execPath,
    ['--import', 'tsx', '--conditions=source', join(CLI_DIR, 'src', 'bin.ts'), ...args],
    {
      cwd: CLI_DIR,
      env: { ...process.env, ERRAND_BROKER_URL: '', ERRAND_BACKEND_URL: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
}

const exited = (child: ChildProcess) =>
  new Promise<number | null>((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode)
    else child.once('close', (code) => resolve(code))
  })

describe('errand dashboard', () => {
  let child: ChildProcess | undefined

  afterEach(() => {
    if (child && child.exitCode === null) child.kill('SIGKILL')
  })

  it('serves on 127.0.0.1, prints its URL, and stops on SIGINT with exit code 0', async () => {
    child = startCli(['dashboard', '--port', '0', '--read-only', '--broker', `memory://${unique('cli')}`])
    let stderr = ''
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString()
    })
    const url = await new Promise<string>((resolve, reject) => {
      let stdout = ''
      const timer = setTimeout(() => reject(new Error(`no URL within 60 s; stderr: ${stderr}`)), 60_000)
      child!.stdout?.on('data', (d: Buffer) => {
        stdout += d.toString()
        const m = /^dashboard: (http:\/\/127\.0\.0\.1:\d+\/) \(read-only\)$/m.exec(stdout)
        if (m) {
          clearTimeout(timer)
          resolve(m[1]!)
        }
      })
      child!.once('close', () => reject(new Error(`exited early; stderr: ${stderr}`)))
    })
    const page = await fetch(url)
    expect(page.status).toBe(200)
    const body = await page.text()
    expect(body).toContain('<h1>Queues</h1>')
    expect(body).toContain('read-only')
    expect(stderr).not.toContain('warning')
    child.kill('SIGINT')
    expect(await exited(child)).toBe(0)
  }, 90_000)

  it('refuses a bad port with the usage exit code', async () => {
    child = startCli(['dashboard', '--port', '70000', '--broker', 'memory://'])
    let stderr = ''
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString()
    })
    expect(await exited(child)).toBe(2)
    expect(stderr).toContain('--port must be an integer from 0 to 65535')
  }, 90_000)
})
