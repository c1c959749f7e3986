import { Presets, SingleBar } from 'cli-progress'
import type { Io } from './io.js'

/** Reports how far a long operation got: a bar on a terminal, plain lines otherwise (logs, CI). */
export interface Progress {
  advance(by: number): void
  stop(): void
}

/**
 * A progress report for `total` items of `label` (e.g. "requeued"). On a terminal (stderr is a
 * TTY) a bar that redraws in place; elsewhere a line at most every 10% so a log stays readable.
 */
export function progress(io: Io, label: string, total: number): Progress {
  if (io.stderr.isTTY) {
    const bar = new SingleBar(
      {
        format: `${label} [{bar}] {percentage}% {value}/{total} ({eta}s left)`,
        stream: io.stderr as NodeJS.WritableStream,
        hideCursor: true,
        clearOnComplete: false,
      },
      Presets.shades_classic,
    )
    bar.start(total, 0)
    return { advance: (by) => bar.increment(by), stop: () => bar.stop() }
  }
  let done = 0
  let reported = 0
  return {
    advance(by) {
      done += by
      if (done === total || done - reported >= Math.max(1, Math.ceil(total / 10))) {
        reported = done
        io.stderr.write(`${label} ${done}/${total}\n`)
      }
    },
    stop() {},
  }
}
