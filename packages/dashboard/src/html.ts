/**
 * HTML that is safe to write into a page: every interpolated value is escaped unless it is itself
 * an {@link Html} (built by this tag). There is deliberately no "raw" escape hatch for strings:
 * payloads, errors and queue names come from whoever can publish to a queue, so nothing from a
 * store may reach the page unescaped.
 */
export class Html {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value
  }
}

const ENTITIES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
  '`': '&#96;',
}

/** Escape text for an element body or a quoted attribute. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"'`]/g, (ch) => ENTITIES[ch] ?? ch)
}

/** What may be interpolated: text (escaped), numbers, nothing, other fragments, or lists of them. */
export type HtmlValue = Html | string | number | boolean | null | undefined | readonly HtmlValue[]

function render(value: HtmlValue): string {
  if (value instanceof Html) return value.value
  if (Array.isArray(value)) return value.map(render).join('')
  if (value === null || value === undefined || value === false || value === true) return ''
  return escapeHtml(String(value))
}

/**
 * Tagged template for HTML: `html\`<td>${queue}</td>\`` escapes `queue`.
 *
 * @example
 * ```ts
 * const row = html`<tr><td>${name}</td><td>${count}</td></tr>`
 * ```
 */
export function html(strings: TemplateStringsArray, ...values: readonly HtmlValue[]): Html {
  let out = strings[0] ?? ''
  for (let i = 0; i < values.length; i++) out += render(values[i]) + (strings[i + 1] ?? '')
  return new Html(out)
}
