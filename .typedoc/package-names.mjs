// TypeDoc plugin: name each module after its package (`@errand/core`) instead of its path
// (`core/src`), which is what TypeDoc's "resolve" strategy derives from the entry point.
// (The "packages" strategy names them right, but converts each package separately, three times
// slower here, and loses `@internal` filtering of constructor parameters.)
import { readFileSync } from 'node:fs'
import { Converter, ReflectionKind } from 'typedoc'

export function load(app) {
  app.converter.on(Converter.EVENT_RESOLVE_BEGIN, (context) => {
    for (const mod of context.project.getChildrenByKind(ReflectionKind.Module)) {
      const match = /^([a-z0-9-]+)\/src$/.exec(mod.name)
      if (!match) continue
      const manifest = JSON.parse(readFileSync(`packages/${match[1]}/package.json`, 'utf8'))
      mod.name = manifest.name
    }
  })
}
