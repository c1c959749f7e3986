import type { MiddlewareHandler } from 'hono'

/** Decides whether a request may see the dashboard. Return false to answer 403. */
export type Authorize = (request: Request) => boolean | Promise<boolean>

/**
 * Headers on every response. The CSP allows scripts and styles from the dashboard itself only, so
 * even a markup bug elsewhere could not run an injected inline script; frames are refused so the
 * write buttons cannot be clickjacked; pages are never cached (they show live state).
 */
export const securityHeaders: MiddlewareHandler = async (c, next) => {
  await next()
  const h = c.res.headers
  h.set(
    'Content-Security-Policy',
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  )
  h.set('X-Content-Type-Options', 'nosniff')
  h.set('X-Frame-Options', 'DENY')
  // Not 'no-referrer': under it Chromium sends `Origin: null` on the dashboard's own form posts.
  h.set('Referrer-Policy', 'same-origin')
  if (!h.has('Cache-Control')) h.set('Cache-Control', 'no-store')
}

/** Runs the user's `authorize` hook before anything else; false (or a throw) is a 403. */
export function authorizeRequests(authorize: Authorize | undefined): MiddlewareHandler {
  return async (c, next) => {
    if (authorize) {
      let ok = false
      try {
        ok = (await authorize(c.req.raw)) === true
      } catch {
        ok = false
      }
      if (!ok) return c.text('Forbidden', 403)
    }
    await next()
  }
}

/**
 * Why a write request is refused, or undefined when it may go on. A write must come from a page of
 * this origin: the `Origin` header must equal the request's own origin (or one of `trustedOrigins`,
 * for a dashboard behind a proxy that changes the host or scheme); without `Origin`,
 * or with `Origin: null` (what a browser sends under a `no-referrer` policy, e.g. one a host app
 * sets, and from sandboxed frames), `Sec-Fetch-Site` must say `same-origin`. A request with neither
 * header is refused too: browsers send one of them on every POST, and a script that sends neither
 * is better served by the App API.
 */
export function crossOriginRefusal(request: Request, trustedOrigins: readonly string[]): string | undefined {
  const origin = request.headers.get('origin')
  if (origin !== null && origin !== 'null') {
    const own = new URL(request.url).origin
    if (origin === own || trustedOrigins.includes(origin)) return undefined
    return `cross-origin request refused (Origin ${origin} is not ${own})`
  }
  const site = request.headers.get('sec-fetch-site')
  if (site === 'same-origin') return undefined
  if (site !== null) return `cross-origin request refused (Sec-Fetch-Site: ${site})`
  return 'request refused: a write needs an Origin or Sec-Fetch-Site header from this origin'
}

/** Guards every write: POST only (routes), not in read-only mode, same origin. */
export function guardWrites(readOnly: boolean, trustedOrigins: readonly string[]): MiddlewareHandler {
  return async (c, next) => {
    if (c.req.method !== 'POST') return next()
    if (readOnly) return c.text('Forbidden: this dashboard is read-only', 403)
    const refusal = crossOriginRefusal(c.req.raw, trustedOrigins)
    if (refusal) return c.text(`Forbidden: ${refusal}`, 403)
    await next()
  }
}
