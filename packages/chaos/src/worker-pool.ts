import { type ChildProcess, spawn } from 'node:child_process'
import { appendFileSync } from 'node:fs'
import { READY_LINE, WORKER_CONFIG_ENV, type WorkerConfig } from './worker-config.js'

/** How one worker process ended. */
export interface WorkerExit {
  readonly pid: number
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  /** What the supervisor did to it: nothing, a SIGKILL (chaos), or a SIGTERM (graceful stop). */
  readonly sent: 'none' | 'SIGKILL' | 'SIGTERM'
  readonly startedAt: number
  readonly exitedAt: number
  /** Whether it printed its ready line before it ended. */
  readonly wasReady: boolean
  /** The end of its stderr, for evidence. */
  readonly stderrTail: string
}

/** A kill or graceful stop the supervisor made, with when and which process. */
export interface StopEvent {
  readonly pid: number
  readonly at: number
  readonly signal: 'SIGKILL' | 'SIGTERM'
}

interface Slot {
  child: ChildProcess
  pid: number
  startedAt: number
  ready: boolean
  sent: 'none' | 'SIGKILL' | 'SIGTERM'
  stderr: string
  exited: Promise<WorkerExit>
}

const TAIL = 4096

/**
 * Keeps `size` worker processes running: each exit is recorded and, while the pool runs, replaced
 * at once. Children run `node <args>` (the bundled worker entry: see worker-bundle.ts).
 * `stop()` ends every child (SIGTERM, then SIGKILL after a bound); `disrupt()` is the chaos.
 */
export class WorkerPool {
  private readonly slots = new Set<Slot>()
  private running = true
  /** Every exit so far, in order. */
  readonly exits: WorkerExit[] = []
  /** Every SIGKILL and SIGTERM sent, in order. */
  readonly stops: StopEvent[] = []
  spawned = 0

  constructor(
    private readonly size: number,
    private readonly config: WorkerConfig,
    private readonly args: readonly string[],
    private readonly logFile: string | undefined,
  ) {}

  /** Start the workers and resolve once every one of them consumes (bounded). */
  async start(timeoutMs: number): Promise<void> {
    for (let i = 0; i < this.size; i++) this.spawnOne()
    const deadline = Date.now() + timeoutMs
    while ([...this.slots].some((s) => !s.ready)) {
      if (Date.now() > deadline) {
        throw new Error(`workers not ready within ${timeoutMs} ms: ${this.describeExits()}`)
      }
      await new Promise((r) => setTimeout(r, 50))
    }
  }

  /** Workers sent a SIGTERM that have not exited yet. */
  get terminating(): number {
    return [...this.slots].filter((s) => s.sent === 'SIGTERM').length
  }

  /** Live pids. */
  get pids(): number[] {
    return [...this.slots].map((s) => s.pid)
  }

  /**
   * SIGKILL (or SIGTERM) one live worker at random that was not already sent a signal. A SIGTERM
   * goes only to a worker that consumes: before that it has no handler for it yet, and Node's
   * default for SIGTERM is to die (which would test nothing but the signal's default). SIGKILLs
   * hit starting workers too: sparing them means each consuming worker lives about three kill
   * intervals, and on two loaded cores (worker start-up takes seconds there) that starved a
   * PostgreSQL full run to ~1 workflow/s.
   */
  disrupt(signal: 'SIGKILL' | 'SIGTERM'): StopEvent | undefined {
    const candidates = [...this.slots].filter((s) => s.sent === 'none' && (signal === 'SIGKILL' || s.ready))
    const slot = candidates[Math.floor(Math.random() * candidates.length)]
    if (!slot) return undefined
    slot.sent = signal
    slot.child.kill(signal)
    const event = { pid: slot.pid, at: Date.now(), signal }
    this.stops.push(event)
    return event
  }

  /**
   * Stop replacing workers and end every child: gracefully (SIGTERM) those that consume, SIGKILL
   * those still starting (they hold no work). Waits at most `timeoutMs`; any child still alive
   * then is SIGKILLed (and its exit shows it).
   */
  async stop(timeoutMs: number): Promise<void> {
    this.running = false
    const live = [...this.slots]
    for (const s of live) {
      if (s.sent !== 'none') continue
      const signal = s.ready ? 'SIGTERM' : 'SIGKILL'
      s.sent = signal
      s.child.kill(signal)
      this.stops.push({ pid: s.pid, at: Date.now(), signal })
    }
    const all = Promise.all(live.map((s) => s.exited))
    const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), timeoutMs).unref())
    if ((await Promise.race([all, timer])) === 'timeout') {
      for (const s of this.slots) s.child.kill('SIGKILL')
      await all
    }
  }

  /** Kill every child at once, whatever happens (for `finally`). */
  killAll(): void {
    this.running = false
    for (const s of this.slots) s.child.kill('SIGKILL')
  }

  private spawnOne(): void {
    const child = spawn(process.execPath, [...this.args], {
      env: { ...process.env, [WORKER_CONFIG_ENV]: JSON.stringify(this.config) },
      // The IPC channel is only a lifeline: the child exits when it closes (this process died).
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    })
    const pid = child.pid
    if (pid === undefined) throw new Error('could not spawn a worker process')
    this.spawned++
    const slot: Slot = {
      child,
      pid,
      startedAt: Date.now(),
      ready: false,
      sent: 'none',
      stderr: '',
      exited: new Promise<WorkerExit>((resolve) => {
        child.once('exit', (code, signal) => {
          this.slots.delete(slot)
          const exit: WorkerExit = {
            pid,
            code,
            signal,
            sent: slot.sent,
            startedAt: slot.startedAt,
            exitedAt: Date.now(),
            wasReady: slot.ready,
            stderrTail: slot.stderr,
          }
          this.exits.push(exit)
          this.log(pid, `exit code=${code} signal=${signal} sent=${slot.sent}`)
          if (this.running) this.spawnOne()
          resolve(exit)
        })
      }),
    }
    this.slots.add(slot)
    child.stdout?.setEncoding('utf8')
    child.stdout?.on('data', (chunk: string) => {
      if (chunk.includes(READY_LINE)) slot.ready = true
    })
    child.stderr?.setEncoding('utf8')
    child.stderr?.on('data', (chunk: string) => {
      slot.stderr = (slot.stderr + chunk).slice(-TAIL)
      this.log(pid, chunk.trimEnd())
    })
  }

  private log(pid: number, text: string): void {
    if (!this.logFile) return
    const lines = text.split('\n').map((l) => `${new Date().toISOString()} [${pid}] ${l}`)
    appendFileSync(this.logFile, `${lines.join('\n')}\n`)
  }

  private describeExits(): string {
    return this.exits.map((e) => `pid ${e.pid} code ${e.code} signal ${e.signal}: ${e.stderrTail}`).join('; ')
  }
}
