const URL_CREDENTIALS = /([a-z][a-z0-9+.-]*:\/\/)([^/@\s:]*)(:[^/@\s]*)?@/gi
const QUERY_SECRETS =
  /([?&](?:password|pass|secret|token|access_?key|secret_?access_?key|session_?token)=)[^&\s]*/gi

/**
 * Masks credentials in any text that may contain URLs: `redis://user:hunter2@host` becomes
 * `redis://user:***@host`, and secret-looking query parameters become `***`. Every message
 * and log line that may carry a URL goes through this.
 */
export function maskCredentials(text: string): string {
  return text
    .replace(URL_CREDENTIALS, (_m, scheme: string, user: string, pass: string | undefined) =>
      pass === undefined ? `${scheme}${user ? '***' : ''}@` : `${scheme}${user}:***@`,
    )
    .replace(QUERY_SECRETS, '$1***')
}
