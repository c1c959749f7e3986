import { GetQueueUrlCommand, type SQSClient } from '@aws-sdk/client-sqs'
import { ConnectionError, maskCredentials } from '@errand/core'

/**
 * Queue name looked up by the first connect. It need not exist: "no such queue" (or "access
 * denied", under IAM policies scoped to the app's queues) is an answer from SQS, which is all the
 * probe wants to know.
 */
const PROBE_QUEUE = 'errand-connect-probe'

/** The SDK's names for credentials that SQS refused (as opposed to a missing queue or right). */
const REFUSED_CREDENTIALS = new Set([
  'InvalidClientTokenId',
  'UnrecognizedClientException',
  'SignatureDoesNotMatch',
  'InvalidSignatureException',
  'IncompleteSignature',
  'MissingAuthenticationToken',
  'ExpiredToken',
  'ExpiredTokenException',
])

interface ProbeError {
  name?: string
  code?: string
  message?: string
  $metadata?: { httpStatusCode?: number }
}

/**
 * Check that the endpoint answers, once, at the first connect: one GetQueueUrl bounded by
 * `timeoutMs` (the SDK's own attempts included), so an endpoint that is down fails in well under
 * a second (a refused port) or `timeoutMs` (no answer), instead of the `retryTimeoutMs` of
 * patience that later calls get. Throws `ConnectionError` naming the endpoint, never credentials.
 */
export async function probeEndpoint(client: SQSClient, endpoint: string, timeoutMs: number): Promise<void> {
  const abort = new AbortController()
  const timer = setTimeout(() => abort.abort(), timeoutMs)
  try {
    await client.send(new GetQueueUrlCommand({ QueueName: PROBE_QUEUE }), { abortSignal: abort.signal })
  } catch (cause) {
    const e = (cause ?? {}) as ProbeError
    const where = maskCredentials(endpoint)
    if (abort.signal.aborted) {
      throw new ConnectionError(`SQS at ${where} did not answer within ${timeoutMs} ms (connectTimeoutMs)`, {
        adapter: 'sqs',
        cause,
      })
    }
    if (e.name === 'CredentialsProviderError') {
      throw new ConnectionError(
        maskCredentials(
          `no AWS credentials for SQS at ${where}: ${e.message ?? 'none found'} (pass credentials, or configure the SDK's chain)`,
        ),
        { adapter: 'sqs', cause },
      )
    }
    if (e.name !== undefined && REFUSED_CREDENTIALS.has(e.name)) {
      throw new ConnectionError(`SQS at ${where} refused the credentials (${e.name})`, {
        adapter: 'sqs',
        cause,
      })
    }
    // Any other answer from the service (no such queue, access denied, throttling) means it is up.
    if (e.$metadata?.httpStatusCode !== undefined) return
    throw new ConnectionError(
      maskCredentials(
        `cannot reach SQS at ${where}: ${e.code ?? e.name ?? 'Error'}: ${e.message ?? String(cause)}`,
      ),
      { adapter: 'sqs', cause },
    )
  } finally {
    clearTimeout(timer)
  }
}
