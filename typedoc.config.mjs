// API reference of every published package (packages/* without "private"), from their TSDoc.
// `pnpm docs` writes it to docs/api (gitignored); CI builds it with warnings as errors.
import { existsSync, readdirSync, readFileSync } from 'node:fs'

const published = readdirSync('packages')
  .filter((dir) => existsSync(`packages/${dir}/package.json`) && existsSync(`packages/${dir}/src/index.ts`))
  .filter((dir) => !JSON.parse(readFileSync(`packages/${dir}/package.json`, 'utf8')).private)
  // core first, then the suite, then the stores
  .sort((a, b) =>
    a === 'core'
      ? -1
      : b === 'core'
        ? 1
        : a === 'conformance'
          ? -1
          : b === 'conformance'
            ? 1
            : a.localeCompare(b),
  )

/** @type {Partial<import('typedoc').TypeDocOptions>} */
export default {
  name: 'Errand API reference',
  entryPoints: published.map((dir) => `packages/${dir}/src/index.ts`),
  tsconfig: 'tsconfig.typedoc.json',
  plugin: ['./.typedoc/package-names.mjs'],
  out: 'docs/api',
  readme: 'none',
  // No public repository URL to link sources to yet.
  disableSources: true,
  excludePrivate: true,
  excludeProtected: true,
  excludeInternal: true,
  // `pnpm typecheck` checks types; the reference only needs the declarations (and is 2x faster).
  skipErrorChecking: true,
  treatWarningsAsErrors: true,
  validation: { notExported: true, invalidLink: true, notDocumented: false },
}
