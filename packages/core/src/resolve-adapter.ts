import { createRequire } from 'node:module'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { AdapterModule } from './adapter.js'
import type { Broker } from './broker.js'
import { AdapterNotInstalledError, InvalidOptionError } from './errors.js'
import { MemoryBroker, MemoryResultBackend } from './memory/index.js'
import { maskCredentials } from './redact.js'
import type { ResultBackend } from './result-backend.js'

/** URL scheme → the package that implements it. */
export const ADAPTER_PACKAGES: Readonly<Record<string, string>> = Object.freeze({
  'redis:': '@errand/redis',
  'rediss:': '@errand/redis',
  'amqp:': '@errand/amqp',
  'amqps:': '@errand/amqp',
  'sqs:': '@errand/sqs',
  'postgres:': '@errand/postgres',
  'postgresql:': '@errand/postgres',
})

function parseScheme(url: string, option: string): string {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new InvalidOptionError(
      option,
      `not a URL: "${maskCredentials(url)}" (expected e.g. redis://127.0.0.1:6379)`,
    )
  }
  return parsed.protocol
}

function isModuleNotFound(err: unknown, pkg: string): boolean {
  const code = (err as { code?: unknown }).code
  return (
    (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') &&
    String((err as Error).message).includes(pkg)
  )
}

async function importAdapter(pkg: string, scheme: string): Promise<AdapterModule> {
  try {
    return (await import(pkg)) as AdapterModule
  } catch (err) {
    if (!isModuleNotFound(err, pkg)) throw err
  }
  // pnpm does not hoist: look the package up from the application's directory as well.
  try {
    const require = createRequire(join(process.cwd(), 'package.json'))
    return (await import(pathToFileURL(require.resolve(pkg)).href)) as AdapterModule
  } catch (err) {
    if (!isModuleNotFound(err, pkg)) throw err
    throw new AdapterNotInstalledError(pkg, scheme.replace(/:$/, ''), { cause: err })
  }
}

/**
 * A broker from a URL (resolving the adapter package by scheme) or an instance as it is.
 * `packages` maps schemes to packages (tests pass their own).
 */
export async function resolveBroker(
  spec: string | Broker,
  packages: Readonly<Record<string, string>> = ADAPTER_PACKAGES,
): Promise<Broker> {
  if (typeof spec !== 'string') return spec
  const scheme = parseScheme(spec, 'broker')
  if (scheme === 'memory:') return new MemoryBroker({ url: spec })
  const pkg = packages[scheme]
  if (!pkg)
    throw new InvalidOptionError(
      'broker',
      `unknown scheme "${scheme}" (known: memory:, ${Object.keys(ADAPTER_PACKAGES).join(', ')})`,
    )
  const mod = await importAdapter(pkg, scheme)
  if (typeof mod.createBroker !== 'function') throw new InvalidOptionError('broker', `${pkg} has no broker`)
  return mod.createBroker(spec)
}

/** A result backend from a URL or an instance as it is. */
export async function resolveResultBackend(spec: string | ResultBackend): Promise<ResultBackend> {
  if (typeof spec !== 'string') return spec
  const scheme = parseScheme(spec, 'backend')
  if (scheme === 'memory:') return new MemoryResultBackend({ url: spec })
  const pkg = ADAPTER_PACKAGES[scheme]
  if (!pkg)
    throw new InvalidOptionError(
      'backend',
      `unknown scheme "${scheme}" (known: memory:, ${Object.keys(ADAPTER_PACKAGES).join(', ')})`,
    )
  const mod = await importAdapter(pkg, scheme)
  if (typeof mod.createResultBackend !== 'function') {
    throw new InvalidOptionError(
      'backend',
      `${pkg} has no result backend (it is a broker only): use redis://, postgres:// or memory://`,
    )
  }
  return mod.createResultBackend(spec)
}
