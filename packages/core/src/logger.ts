import { maskCredentials } from './redact.js'

/** Where Errand writes what it has to say. Plug in pino, winston or console. */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void
  info(message: string, fields?: Record<string, unknown>): void
  warn(message: string, fields?: Record<string, unknown>): void
  error(message: string, fields?: Record<string, unknown>): void
}

/** A logger that drops everything. */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} }

/** Writes warnings and errors to the console, with credentials masked. The default logger. */
export const consoleLogger: Logger = {
  debug() {},
  info() {},
  warn(message, fields) {
    console.warn(`[errand] ${maskCredentials(message)}`, ...(fields ? [maskFields(fields)] : []))
  },
  error(message, fields) {
    console.error(`[errand] ${maskCredentials(message)}`, ...(fields ? [maskFields(fields)] : []))
  },
}

function maskFields(fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(fields)) {
    out[k] = typeof v === 'string' ? maskCredentials(v) : v instanceof Error ? maskCredentials(String(v)) : v
  }
  return out
}

/** A logger that masks credentials before handing lines to `inner`. */
export function maskingLogger(inner: Logger): Logger {
  const wrap =
    (fn: Logger['info']): Logger['info'] =>
    (message, fields) =>
      fn(maskCredentials(message), fields ? maskFields(fields) : undefined)
  return {
    debug: wrap(inner.debug.bind(inner)),
    info: wrap(inner.info.bind(inner)),
    warn: wrap(inner.warn.bind(inner)),
    error: wrap(inner.error.bind(inner)),
  }
}
