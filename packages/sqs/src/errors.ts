import { ConnectionError, ErrandError, maskCredentials, reconnectDelay } from '@errand/core'

// How SDK failures are told apart (worth a retry, missing queue, stale receipt handle), wrapped
// for the caller, and retried with core's reconnect waits.

interface SdkErrorShape {
  name?: string
  code?: string
  message?: string
  $fault?: 'client' | 'server'
  $retryable?: unknown
}

const THROTTLING = new Set([
  'RequestThrottled',
  'ThrottlingException',
  'Throttling',
  'KmsThrottled',
  'ServiceUnavailable',
  'InternalError',
  'RequestLimitExceeded',
  'TooManyRequestsException',
])
const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ENOTFOUND',
])

/**
 * Throttling, server faults and network errors: worth retrying with backoff. Everything else
 * (a bad parameter, missing credentials or region, a missing queue) is not.
 */
export function isTransient(err: unknown): boolean {
  if (err instanceof ErrandError) return err.code === 'ERR_CONNECTION'
  if (typeof err !== 'object' || err === null) return false
  const e = err as SdkErrorShape
  if (e.name !== undefined && THROTTLING.has(e.name)) return true
  if (e.$fault === 'server' || e.$retryable !== undefined) return true
  if (e.$fault === 'client') return false
  if (e.code !== undefined && NETWORK_CODES.has(e.code)) return true
  if (e.name === 'TimeoutError') return true
  return /socket hang up|ECONNRESET|ECONNREFUSED|EPIPE|ETIMEDOUT|network|closed/i.test(e.message ?? '')
}

/** The SDK error name of `err`, or of the SDK error it wraps. */
function sdkName(err: unknown): string | undefined {
  if (err instanceof ErrandError) return sdkName(err.cause)
  return (err as SdkErrorShape | null)?.name
}

/** True for the SDK's "queue does not exist" error (also when wrapped). */
export function isQueueMissing(err: unknown): boolean {
  const name = sdkName(err)
  return name === 'QueueDoesNotExist' || name === 'AWS.SimpleQueueService.NonExistentQueue'
}

/** True when a receipt handle no longer holds the message: expired, re-received or deleted. */
export function isStaleReceipt(err: unknown): boolean {
  const name = sdkName(err)
  return (
    name === 'ReceiptHandleIsInvalid' || name === 'MessageNotInflight' || name === 'InvalidParameterValue'
  )
}

const REFUSED_INPUT = new Set([
  'InvalidParameterValue',
  'InvalidAttributeValue',
  'InvalidAttributeName',
  'InvalidMessageContents',
  'MissingParameter',
  'BatchRequestTooLong',
  'QueueNameExists',
])

/** Wrap an SDK failure in an `ErrandError` naming the operation (credentials masked). */
export function wrapError(operation: string, err: unknown): ErrandError {
  if (err instanceof ErrandError) return err
  const e = (err ?? {}) as SdkErrorShape
  const text = maskCredentials(`SQS ${operation} failed: ${e.name ?? 'Error'}: ${e.message ?? String(err)}`)
  if (e.name !== undefined && REFUSED_INPUT.has(e.name)) {
    return new ErrandError('ERR_VALIDATION', text, { adapter: 'sqs', cause: err })
  }
  return new ConnectionError(text, { adapter: 'sqs', cause: err })
}

/** Resolve after `ms`, or at once when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve()
    const timer = setTimeout(done, ms)
    function done(): void {
      clearTimeout(timer)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    signal?.addEventListener('abort', done, { once: true })
  })
}

/**
 * Run `fn` until it succeeds, a non-transient error occurs, or `deadline` (ms since epoch)
 * passes; transient errors back off in between (core's {@link reconnectDelay}: the same waits as
 * every adapter's reconnects). The last error is rethrown wrapped.
 */
export async function retryTransient<T>(
  operation: string,
  deadline: number,
  fn: () => Promise<T>,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn()
    } catch (err) {
      if (!isTransient(err) || Date.now() >= deadline) throw wrapError(operation, err)
      await sleep(Math.min(reconnectDelay(attempt), Math.max(0, deadline - Date.now())))
    }
  }
}
