import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { type AnyTask, type App, createApp, type Logger } from '@errand/core'
import { CliError, EXIT, usageError } from './exit-codes.js'
import type { Io } from './io.js'

/** Where the app comes from: a module, or URLs (flags, then the environment). */
export interface AppSource {
  readonly app?: string | undefined
  readonly broker?: string | undefined
  readonly backend?: string | undefined
}

/** Warnings and errors of the app go to stderr, one line each, credentials already masked. */
export function stderrLogger(io: Io): Logger {
  const line = (level: string) => (message: string) => io.stderr.write(`errand: ${level}: ${message}\n`)
  return { debug() {}, info() {}, warn: line('warning'), error: line('error') }
}

function isApp(value: unknown): value is App {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as App).send === 'function' &&
    typeof (value as App).worker === 'function' &&
    typeof (value as App).close === 'function'
  )
}

/**
 * Import the user's app module (TypeScript through tsx, or JavaScript) and return its App: the
 * default export or one named `app`.
 */
async function importApp(path: string, io: Io): Promise<App> {
  const file = resolve(io.cwd, path)
  if (!existsSync(file)) throw usageError(`--app: no such file: ${file}`)
  let mod: Record<string, unknown>
  try {
    // TypeScript: register tsx for the whole process (not a namespaced tsImport), so the module
    // shares this process's @errand/core: one copy, one ErrandError class, one adapter registry.
    if (/\.[mc]?tsx?$/.test(file)) {
      const { register } = await import('tsx/esm/api')
      register()
    }
    mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>
  } catch (err) {
    throw new CliError(`--app: could not load ${path}: ${(err as Error).message}`, EXIT.failure)
  }
  const candidate = isApp(mod.default) ? mod.default : mod.app
  if (!isApp(candidate)) {
    throw usageError(
      `--app: ${path} exports no App (export it as default or as "app": export const app = createApp({...}))`,
    )
  }
  return candidate
}

/**
 * The app the command works on. With `--app`, the module's (its tasks and schemas are known); else
 * one made from `--broker`/`--backend` or `ERRAND_BROKER_URL`/`ERRAND_BACKEND_URL`.
 */
export async function loadApp(source: AppSource, io: Io, tasks: readonly AnyTask[] = []): Promise<App> {
  if (source.app !== undefined) {
    if (source.broker !== undefined || source.backend !== undefined) {
      throw usageError('--app brings its own broker and backend: drop --broker/--backend, or drop --app')
    }
    return importApp(source.app, io)
  }
  const broker = source.broker ?? io.env.ERRAND_BROKER_URL
  const backend = source.backend ?? io.env.ERRAND_BACKEND_URL
  if (broker === undefined || broker === '') {
    throw usageError('no broker: pass --broker <url>, set ERRAND_BROKER_URL, or pass --app <module>')
  }
  return createApp({
    broker,
    tasks: [...tasks],
    ...(backend !== undefined && backend !== '' && { backend }),
    logger: stderrLogger(io),
  })
}
