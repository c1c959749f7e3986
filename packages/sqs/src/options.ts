import type { SQSClient } from '@aws-sdk/client-sqs'
import {
  InvalidOptionError,
  type Logger,
  maskCredentials,
  optionsFromQuery,
  parseOptions,
  parseStoreUrl,
} from '@errand/core'
import { z } from 'zod'

const ADAPTER = 'sqs'

/** Static AWS credentials. Without them the AWS SDK's usual provider chain is used. */
export interface SqsCredentials {
  readonly accessKeyId: string
  readonly secretAccessKey: string
  readonly sessionToken?: string
}

/**
 * Options of {@link SqsBroker}. Every field is optional; defaults are listed per field.
 *
 * @example
 * ```ts
 * new SqsBroker({ region: 'eu-west-1' })                                   // AWS, default credentials chain
 * new SqsBroker({ endpoint: 'http://127.0.0.1:4566', region: 'us-east-1',
 *                 credentials: { accessKeyId: 'test', secretAccessKey: 'test' } })
 * new SqsBroker({ client: mySqsClient })                                   // yours: not destroyed on close
 * ```
 */
export interface SqsBrokerOptions {
  /**
   * An SQS client to use. The broker never destroys a client it was given; region, endpoint,
   * credentials, maxAttempts and requestTimeoutMs are then ignored.
   */
  readonly client?: SQSClient
  /** AWS region. Default: the SDK's chain (`AWS_REGION`, profile…). */
  readonly region?: string
  /** Endpoint URL (an emulator, a VPC endpoint). Default: the region's AWS endpoint. */
  readonly endpoint?: string
  /** Static credentials. Default: the SDK's provider chain. */
  readonly credentials?: SqsCredentials
  /** Create missing queues (with their dead-letter queue and redrive policy). Default true. */
  readonly autoCreate?: boolean
  /**
   * Every queue of this broker is a FIFO queue: names are given without `.fifo` and the adapter
   * appends it (a name that already ends in `.fifo` is taken as is). Sets
   * `capabilities.orderedDelivery`. Default false: a name ending in `.fifo` is still a FIFO queue.
   */
  readonly fifo?: boolean
  /**
   * FIFO only: message group of messages without an `orderingKey`. Default: none, each such
   * message gets a group of its own (no order between them, full parallelism). Set it to put
   * all unkeyed messages of a queue in one total order (one message of the group in flight).
   */
  readonly defaultGroupId?: string
  /** Long-poll wait of each receive, 0..20 s. Default 20. `close()` may wait this long. */
  readonly waitTimeSeconds?: number
  /** Lease (visibility timeout) of a delivery when `consume` names none, in ms. Default 30,000. */
  readonly leaseMs?: number
  /** Most receive loops per consumer; each asks for min(10, free prefetch). Default 10. */
  readonly maxReceiveLoops?: number
  /**
   * Map priorities 1..N to queues `<name>-p<level>` (`<name>-p<level>.fifo`); consumers read
   * higher levels first. Default 0: priorities are refused with `ERR_NOT_SUPPORTED`.
   */
  readonly priorityLevels?: number
  /** With priorityLevels: how long an idle consumer waits on the base queue between scans, 1..20 s. Default 1. */
  readonly priorityWaitSeconds?: number
  /** `maxReceiveCount` of the redrive policy set on queues the adapter creates (a backstop). Default 1000. */
  readonly maxReceiveCount?: number
  /** How long acks, extends and nacks wait to share a batch call, in ms. Default 5. */
  readonly batchWindowMs?: number
  /** How long a publish keeps retrying throttling and network errors, in ms. Default 30,000. */
  readonly retryTimeoutMs?: number
  /** Long-poll wait of admin receives (dead-letter listing, purge), 0..20 s. Default 1. */
  readonly adminWaitSeconds?: number
  /** SDK attempts per call (its own retry strategy, with backoff). Default 3. */
  readonly maxAttempts?: number
  /**
   * How long the first `connect()` waits for the endpoint to answer, in ms. Default 10,000. A
   * refused port fails at once; later calls have `retryTimeoutMs` of patience instead.
   */
  readonly connectTimeoutMs?: number
  /** Timeout of one HTTP request other than a long poll, in ms. Default 30,000. */
  readonly requestTimeoutMs?: number
  /** Largest message body accepted, in bytes. Default 262,144 (256 KiB). */
  readonly maxMessageBytes?: number
  /** Most bytes (bodies and attributes) in one SendMessageBatch. Default 262,144. */
  readonly maxBatchBytes?: number
  /**
   * Called with errors of background work (receive loops, hops, FIFO forwarding), which backs
   * off and goes on. Default: a warning to `logger` at most every 10 s.
   */
  readonly onError?: (err: unknown) => void
  /**
   * Where the adapter's warnings go (credentials masked), the AWS SDK's own warnings included.
   * `createApp` passes the app's logger. Default: core's `consoleLogger`. The adapter never
   * writes to the console itself.
   */
  readonly logger?: Logger
}

const isLogger = (v: unknown): boolean =>
  typeof v === 'object' &&
  v !== null &&
  ['debug', 'info', 'warn', 'error'].every((k) => typeof (v as Record<string, unknown>)[k] === 'function')

const credentialsSchema = z
  .object({
    accessKeyId: z.string().min(1),
    secretAccessKey: z.string().min(1),
    sessionToken: z.string().min(1).optional(),
  })
  .strict()

const optionsSchema = z
  .object({
    client: z.custom<SQSClient>((v) => typeof v === 'object' && v !== null && 'send' in v).optional(),
    region: z.string().min(1).optional(),
    endpoint: z.url().optional(),
    credentials: credentialsSchema.optional(),
    autoCreate: z.boolean().default(true),
    fifo: z.boolean().default(false),
    defaultGroupId: z
      .string()
      .regex(/^[\x21-\x7e]{1,128}$/, 'must be 1-128 printable ASCII characters')
      .optional(),
    waitTimeSeconds: z.number().int().min(0).max(20).default(20),
    leaseMs: z.number().int().min(1).max(43_200_000).default(30_000),
    maxReceiveLoops: z.number().int().min(1).max(100).default(10),
    priorityLevels: z.number().int().min(0).max(9).default(0),
    priorityWaitSeconds: z.number().int().min(1).max(20).default(1),
    maxReceiveCount: z.number().int().min(1).max(1000).default(1000),
    batchWindowMs: z.number().int().min(0).max(1000).default(5),
    retryTimeoutMs: z.number().int().min(0).default(30_000),
    adminWaitSeconds: z.number().int().min(0).max(20).default(1),
    maxAttempts: z.number().int().min(1).max(20).default(3),
    connectTimeoutMs: z.number().int().min(100).max(600_000).default(10_000),
    requestTimeoutMs: z.number().int().min(1000).default(30_000),
    maxMessageBytes: z.number().int().min(1024).max(1_048_576).default(262_144),
    maxBatchBytes: z.number().int().min(1024).max(1_048_576).default(262_144),
    onError: z.custom<(err: unknown) => void>((v) => typeof v === 'function').optional(),
    logger: z
      .custom<Logger>(isLogger, { message: 'expected a Logger (debug, info, warn, error)' })
      .optional(),
  })
  .strict()

/** Options after validation, defaults filled. */
export type ResolvedSqsOptions = z.output<typeof optionsSchema>

/** Validate options; a bad one throws `InvalidOptionError` naming it. */
export function resolveOptions(options: SqsBrokerOptions = {}): ResolvedSqsOptions {
  return parseOptions(optionsSchema, options, ADAPTER)
}

/**
 * What an `sqs:` URL's query may set: every plain option (not the client, callbacks or logger),
 * the credentials one by one, and `tls` (the scheme of an endpoint given as the URL's host).
 */
const urlQuerySchema = optionsSchema
  .omit({ client: true, credentials: true, onError: true, logger: true })
  .extend({
    accessKeyId: z.string().min(1).optional(),
    secretAccessKey: z.string().min(1).optional(),
    sessionToken: z.string().min(1).optional(),
    tls: z.boolean().optional(),
  })

/**
 * Parse an `sqs:` URL into options. Forms:
 *
 * - `sqs://?region=eu-west-1` — AWS, credentials from the SDK's chain;
 * - `sqs://?region=us-east-1&endpoint=http://127.0.0.1:4566` — an emulator;
 * - `sqs://AKID:SECRET@sqs.eu-west-1.amazonaws.com?region=eu-west-1` — explicit credentials; the
 *   host is the endpoint (`https://`, or `http://` with `tls=false`).
 *
 * Any numeric, boolean or string option is a query parameter too (`waitTimeSeconds=5&fifo=true`),
 * read by core's `optionsFromQuery` (converted and checked by the options schema), and so are
 * `accessKeyId`, `secretAccessKey` and `sessionToken`. Errors mask credentials.
 */
export function parseSqsUrl(url: string): SqsBrokerOptions {
  const parsed = parseStoreUrl(url, ADAPTER)
  if (parsed.protocol !== 'sqs:') {
    throw new InvalidOptionError('url', `expected an sqs: URL, got ${maskCredentials(url)}`, {
      adapter: ADAPTER,
    })
  }
  const { options } = optionsFromQuery(parsed, urlQuerySchema, { adapter: ADAPTER })
  const { accessKeyId, secretAccessKey, sessionToken, tls, ...out } = options as Record<string, unknown> & {
    accessKeyId?: string
    secretAccessKey?: string
    sessionToken?: string
    tls?: boolean
  }
  if (parsed.host !== '' && out.endpoint === undefined) {
    out.endpoint = `${tls === false ? 'http' : 'https'}://${parsed.host}`
  }
  const creds: Record<string, string> = {}
  if (accessKeyId !== undefined) creds.accessKeyId = accessKeyId
  if (secretAccessKey !== undefined) creds.secretAccessKey = secretAccessKey
  if (sessionToken !== undefined) creds.sessionToken = sessionToken
  if (parsed.username !== '') creds.accessKeyId = decodeURIComponent(parsed.username)
  if (parsed.password !== '') creds.secretAccessKey = decodeURIComponent(parsed.password)
  if (Object.keys(creds).length > 0) {
    if (creds.accessKeyId === undefined || creds.secretAccessKey === undefined) {
      throw new InvalidOptionError(
        'credentials',
        'both an access key id and a secret access key are needed',
        {
          adapter: ADAPTER,
        },
      )
    }
    out.credentials = creds
  }
  return out as SqsBrokerOptions
}
