import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** A file the dashboard serves itself. */
export interface Asset {
  readonly type: string
  readonly body: Uint8Array
}

const here = dirname(fileURLToPath(import.meta.url))

/**
 * The page script, the stylesheet and Chart.js's UMD build, read once. Chart.js comes from the
 * installed package (no CDN: dashboards often run where the internet is not reachable, and a
 * third-party script would need a looser CSP). Its exports map hides the UMD file, so it is found
 * beside the package's resolved entry point.
 */
function load(): Map<string, Asset> {
  // src/ and dist/ both sit beside assets/.
  const own = (name: string) => readFileSync(join(here, '..', 'assets', name))
  const chartEntry = createRequire(import.meta.url).resolve('chart.js')
  return new Map<string, Asset>([
    ['dashboard.js', { type: 'text/javascript; charset=utf-8', body: own('dashboard.js') }],
    ['dashboard.css', { type: 'text/css; charset=utf-8', body: own('dashboard.css') }],
    [
      'chart.umd.min.js',
      {
        type: 'text/javascript; charset=utf-8',
        body: readFileSync(join(dirname(chartEntry), 'chart.umd.min.js')),
      },
    ],
  ])
}

let cache: Map<string, Asset> | undefined

/** The asset named `name`, or undefined. */
export function asset(name: string): Asset | undefined {
  cache ??= load()
  return cache.get(name)
}
