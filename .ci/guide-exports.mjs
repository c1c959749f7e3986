// Every public export of @errand/core (packages/core/src/index.ts) must be mentioned by name in
// docs/guide.md. The API reference (`pnpm run docs`) covers every export by construction; this
// keeps the guide from silently falling behind it.
//
//   node .ci/guide-exports.mjs [package...]     (default: core)
//
// Prints the missing names and exits 1 when there are any. A name counts as mentioned when it
// appears as a whole word anywhere in the guide (prose, a table, or a code block).
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const ts = createRequire(join(root, 'package.json'))('typescript')

/** The names a module's index exports (values and types), in source order. */
export function exportedNames(file) {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, false)
  const names = []
  const isExported = (node) => ts.getModifiers?.(node)?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword)
  for (const node of source.statements) {
    if (ts.isExportDeclaration(node)) {
      if (!node.exportClause) throw new Error(`${file}: "export *" hides what is public; name the exports`)
      if (ts.isNamespaceExport(node.exportClause)) names.push(node.exportClause.name.text)
      else for (const el of node.exportClause.elements) names.push(el.name.text)
    } else if (isExported(node)) {
      if (ts.isVariableStatement(node)) {
        for (const d of node.declarationList.declarations)
          if (ts.isIdentifier(d.name)) names.push(d.name.text)
      } else if (node.name && ts.isIdentifier(node.name)) names.push(node.name.text)
    }
  }
  return [...new Set(names)]
}

/** Exports of `pkg` that `guide` does not mention. */
export function missingFromGuide(pkg, guide = readFileSync(join(root, 'docs/guide.md'), 'utf8')) {
  const names = exportedNames(join(root, 'packages', pkg, 'src/index.ts'))
  return {
    names,
    missing: names.filter((n) => !new RegExp(`(?<![\\w$])${n.replace(/\$/g, '\\$')}(?![\\w$])`).test(guide)),
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const packages = process.argv.slice(2)
  let failed = false
  for (const pkg of packages.length > 0 ? packages : ['core']) {
    const { names, missing } = missingFromGuide(pkg)
    if (missing.length === 0) {
      console.log(`docs/guide.md mentions all ${names.length} exports of packages/${pkg}`)
    } else {
      failed = true
      console.log(
        `docs/guide.md does not mention ${missing.length} of ${names.length} exports of packages/${pkg}:`,
      )
      for (const n of missing) console.log(`  ${n}`)
    }
  }
  process.exit(failed ? 1 : 0)
}
