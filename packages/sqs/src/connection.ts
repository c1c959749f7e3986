import { GetQueueUrlCommand, SQSClient, type SQSClientConfig } from '@aws-sdk/client-sqs'
import { ConnectionError, type Logger, maskCredentials } from '@errand/core'
import type { ResolvedSqsOptions } from './options.js'
import { SocketPools } from './sockets.js'

/**
 * Build the SDK client from options (only when the user passed none). The SDK's own warnings
 * (socket pool exhausted, …) go to `logger`. Its info and error lines are dropped: it logs every
 * call at info and every failed call at error, expected ones included (a missing queue before it
 * is created); the adapter reports the failures that matter itself. The socket pools come back
 * with it, for `close()` to let go of (see {@link SocketPools}).
 */
export function createClient(
  options: ResolvedSqsOptions,
  logger: Logger,
): { client: SQSClient; pools: SocketPools } {
  const pools = new SocketPools()
  const sdkLogger = {
    debug: () => undefined,
    info: () => undefined,
    warn: (...args: unknown[]) =>
      logger.warn(
        `[sqs] AWS SDK: ${args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ')}`,
      ),
    error: () => undefined,
  }
  const config: SQSClientConfig = {
    logger: sdkLogger,
    maxAttempts: options.maxAttempts,
    requestHandler: {
      // Long polls time out by their own (unref'd) timer instead: see Store.receive.
      requestTimeout: options.requestTimeoutMs,
      connectionTimeout: 5_000,
      throwOnRequestTimeout: true,
      // The SDK arms a (ref'd) timer per request to warn when no socket came within this long; its
      // default (requestTimeout + connectionTimeout, 35 s) would hold a closed broker's process
      // open for as long as a long poll is in flight.
      socketAcquisitionWarningTimeout: 1_000,
      httpAgent: pools.http,
      httpsAgent: pools.https,
    },
  }
  if (options.region !== undefined) config.region = options.region
  if (options.endpoint !== undefined) config.endpoint = options.endpoint
  if (options.credentials !== undefined) {
    const { accessKeyId, secretAccessKey, sessionToken } = options.credentials
    config.credentials =
      sessionToken === undefined
        ? { accessKeyId, secretAccessKey }
        : { accessKeyId, secretAccessKey, sessionToken }
  }
  return { client: new SQSClient(config), pools }
}

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

/** The parts of a resolved SDK endpoint used in messages. */
interface EndpointShape {
  protocol?: string
  hostname?: string
  port?: number
}

/**
 * The first connect's check: a region must resolve (else `ConnectionError` saying how to set
 * one), and the endpoint must answer ({@link probeEndpoint}).
 */
export async function checkReachable(
  client: SQSClient,
  endpoint: string | undefined,
  timeoutMs: number,
): Promise<void> {
  let region: string
  try {
    region = await client.config.region()
    if (!region) throw new Error('no region')
  } catch (cause) {
    throw new ConnectionError(
      maskCredentials(
        `no AWS region configured (set the region option, ?region= or AWS_REGION): ${String(cause)}`,
      ),
      { adapter: 'sqs', cause },
    )
  }
  await probeEndpoint(client, endpoint ?? (await endpointLabel(client, region)), timeoutMs)
}

/** The endpoint as a user would recognise it (for error messages; credentials masked later). */
async function endpointLabel(client: SQSClient, region: string): Promise<string> {
  try {
    const ep =
      (await (client.config as { endpoint?: () => Promise<EndpointShape> }).endpoint?.()) ?? undefined
    if (ep?.hostname) return `${ep.protocol ?? 'https:'}//${ep.hostname}${ep.port ? `:${ep.port}` : ''}`
  } catch {
    // No fixed endpoint: the SDK derives it from the region.
  }
  return `the AWS endpoint of region ${region}`
}
