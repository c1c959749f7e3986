import { createRequire } from 'node:module'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { Adapter, AdapterContext, AdapterModule } from './adapter.js'
import type { Broker } from './broker.js'
import { AdapterNotInstalledError, InvalidOptionError } from './errors.js'
import { consoleLogger } from './logger.js'
import { MemoryBroker, MemoryResultBackend } from './memory/index.js'
import { maskCredentials } from './redact.js'
import type { ResultBackend } from './result-backend.js'

/**
 * Errand's own adapter packages, imported lazily the first time their scheme is used, so an app
 * installs only the one it needs. Any other scheme is served by an adapter passed to
 * `createApp({ adapters })` or {@link registerAdapter}ed.
 */
export const ADAPTER_PACKAGES: Readonly<Record<string, string>> = Object.freeze({
  'redis:': '@errand/redis',
  'rediss:': '@errand/redis',
  'amqp:': '@errand/amqp',
  'amqps:': '@errand/amqp',
  'sqs:': '@errand/sqs',
  'postgres:': '@errand/postgres',
  'postgresql:': '@errand/postgres',
  'sqlite:': '@errand/sqlite',
})

/** The in-memory store, served through the same mechanism as every other adapter. */
export const memoryAdapter: Adapter = Object.freeze({
  name: '@errand/core memory',
  schemes: Object.freeze(['memory:']),
  createBroker: (url: string) => new MemoryBroker({ url }),
  createResultBackend: (url: string) => new MemoryResultBackend({ url }),
})

const registered = new Map<string, Adapter>([['memory:', memoryAdapter]])

const SCHEME = /^[a-z][a-z0-9+.-]*:$/

/** Checks an adapter's shape at run time (it may come from plain JavaScript). */
function checkAdapter(adapter: Adapter, option: string): void {
  if (typeof adapter !== 'object' || adapter === null) {
    throw new InvalidOptionError(
      option,
      'an adapter must be an object { name, schemes, createBroker?, createResultBackend? }',
    )
  }
  if (typeof adapter.name !== 'string' || adapter.name === '') {
    throw new InvalidOptionError(option, 'an adapter needs a name (a non-empty string)')
  }
  if (!Array.isArray(adapter.schemes) || adapter.schemes.length === 0) {
    throw new InvalidOptionError(
      option,
      `adapter ${adapter.name}: schemes must be a non-empty array like ['mysql:']`,
    )
  }
  for (const s of adapter.schemes) {
    if (typeof s !== 'string' || !SCHEME.test(s)) {
      throw new InvalidOptionError(
        option,
        `adapter ${adapter.name}: scheme ${JSON.stringify(s)} must be lower case and end with a colon, like 'mysql:'`,
      )
    }
  }
  if (adapter.createBroker === undefined && adapter.createResultBackend === undefined) {
    throw new InvalidOptionError(
      option,
      `adapter ${adapter.name} has neither createBroker nor createResultBackend`,
    )
  }
}

/**
 * Make `adapter` serve its schemes in every app of this process (as if it were built in).
 * Registering the same adapter again is harmless; claiming a scheme another adapter already
 * serves is refused with `ERR_INVALID_OPTION`, since which one wins would depend on import order.
 * An app's own `adapters` option takes precedence over registrations.
 */
export function registerAdapter(adapter: Adapter): void {
  checkAdapter(adapter, 'adapter')
  for (const s of adapter.schemes) {
    const existing = registered.get(s)
    if (existing !== undefined && existing !== adapter) {
      throw new InvalidOptionError('adapter', `scheme "${s}" is already served by ${existing.name}`)
    }
  }
  for (const s of adapter.schemes) registered.set(s, adapter)
}

/** Where a URL's adapter is looked for, in order. */
export interface AdapterLookup {
  /** Adapters passed to this app (checked first). */
  readonly adapters?: readonly Adapter[] | undefined
  /** Scheme → package to import (Errand's own; tests pass their own). */
  readonly packages?: Readonly<Record<string, string>> | undefined
  /** Given to the factory. */
  readonly logger?: AdapterContext['logger'] | undefined
}

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

/** The adapter serving `scheme`: the app's own, then registered ones, then Errand's packages. */
async function findAdapter(scheme: string, option: string, lookup: AdapterLookup): Promise<Adapter> {
  for (const a of lookup.adapters ?? []) if (a.schemes.includes(scheme)) return a
  const known = registered.get(scheme)
  if (known) return known
  const packages = lookup.packages ?? ADAPTER_PACKAGES
  const pkg = packages[scheme]
  if (!pkg) {
    const schemes = new Set([
      ...(lookup.adapters ?? []).flatMap((a) => a.schemes),
      ...registered.keys(),
      ...Object.keys(packages),
    ])
    throw new InvalidOptionError(
      option,
      `unknown scheme "${scheme}" (known: ${[...schemes].join(', ')}; a third-party adapter is passed as createApp({ adapters: [...] }))`,
    )
  }
  const mod = await importAdapter(pkg, scheme)
  if (mod.adapter !== undefined) {
    checkAdapter(mod.adapter, option)
    return mod.adapter
  }
  return {
    name: pkg,
    schemes: [scheme],
    createBroker: mod.createBroker,
    createResultBackend: mod.createResultBackend,
  }
}

function contextOf(lookup: AdapterLookup): AdapterContext {
  return { logger: lookup.logger ?? consoleLogger }
}

/** Old call shape: a scheme → package table as the second argument. */
function asLookup(lookup: AdapterLookup | Readonly<Record<string, string>> | undefined): AdapterLookup {
  if (lookup === undefined) return {}
  if ('adapters' in lookup || 'packages' in lookup || 'logger' in lookup) return lookup as AdapterLookup
  return { packages: lookup as Readonly<Record<string, string>> }
}

/** A broker from a URL (finding its adapter by scheme) or an instance as it is. */
export async function resolveBroker(
  spec: string | Broker,
  lookup?: AdapterLookup | Readonly<Record<string, string>>,
): Promise<Broker> {
  if (typeof spec !== 'string') return spec
  const options = asLookup(lookup)
  const adapter = await findAdapter(parseScheme(spec, 'broker'), 'broker', options)
  if (typeof adapter.createBroker !== 'function') {
    throw new InvalidOptionError('broker', `${adapter.name} has no broker (it is a result backend only)`)
  }
  return adapter.createBroker(spec, contextOf(options))
}

/** A result backend from a URL or an instance as it is. */
export async function resolveResultBackend(
  spec: string | ResultBackend,
  lookup?: AdapterLookup | Readonly<Record<string, string>>,
): Promise<ResultBackend> {
  if (typeof spec !== 'string') return spec
  const options = asLookup(lookup)
  const adapter = await findAdapter(parseScheme(spec, 'backend'), 'backend', options)
  if (typeof adapter.createResultBackend !== 'function') {
    throw new InvalidOptionError(
      'backend',
      `${adapter.name} has no result backend (it is a broker only): use a store that keeps results, e.g. redis://, postgres:// or memory://`,
    )
  }
  return adapter.createResultBackend(spec, contextOf(options))
}
