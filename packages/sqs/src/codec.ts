import type { Message, MessageAttributeValue } from '@aws-sdk/client-sqs'

/** Message attributes the adapter sets. Names are stable: other tools may read them. */
export const ATTR = {
  /** How the body travels: absent = the SQS body is the UTF-8 text; `bin` = in `errand.body`; `empty`. */
  enc: 'errand.enc',
  /** The bytes of a body that is not SQS-safe text. */
  body: 'errand.body',
  /** Deliveries before this message was (re)sent: `attempt` = base + ApproximateReceiveCount. */
  base: 'errand.base',
  /** Not before this time (ms since epoch): receipts before it are hidden and hop on. */
  notBefore: 'errand.nb',
  /** FIFO delay queue: the message group and dedup id to forward with, and the priority level. */
  group: 'errand.group',
  dedup: 'errand.dedup',
  level: 'errand.level',
  /** Dead letters: why, the error (JSON), when (ms since epoch) and from which queue. */
  reason: 'errand.reason',
  error: 'errand.error',
  deadAt: 'errand.deadAt',
  source: 'errand.source',
} as const

/** Attributes that describe the body; copied whenever a message is re-sent. */
export const BODY_ATTRS: readonly string[] = [ATTR.enc, ATTR.body]

export type Attributes = Record<string, MessageAttributeValue>

const utf8 = new TextDecoder('utf-8', { fatal: true })
const encoder = new TextEncoder()
/** Characters SQS accepts in a body (supplementary planes left out: some emulators refuse them). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: tab, LF and CR are the allowed ones named here
const UNSAFE_TEXT = /[^\x09\x0A\x0D\x20-\uD7FF\uE000-\uFFFD]/

/** A body ready for SendMessage: the text body and the attributes that carry it. */
export interface EncodedBody {
  readonly text: string
  readonly attrs: Attributes
}

/**
 * Bytes → SQS message. Valid UTF-8 made of SQS-safe characters travels as the body itself (the
 * common case: JSON envelopes); anything else travels byte-exact in a Binary attribute with a
 * one-character placeholder body, because SQS bodies are text and cannot be empty.
 */
export function encodeBody(bytes: Uint8Array): EncodedBody {
  if (bytes.byteLength === 0) return { text: '-', attrs: { [ATTR.enc]: str('empty') } }
  let text: string | undefined
  try {
    text = utf8.decode(bytes)
  } catch {
    text = undefined
  }
  if (text !== undefined && !UNSAFE_TEXT.test(text)) return { text, attrs: {} }
  return {
    text: '-',
    attrs: { [ATTR.enc]: str('bin'), [ATTR.body]: { DataType: 'Binary', BinaryValue: bytes } },
  }
}

/** SQS message → the exact bytes that were published. */
export function decodeBody(message: Message): Uint8Array {
  const attrs = message.MessageAttributes ?? {}
  const enc = attrs[ATTR.enc]?.StringValue
  if (enc === 'empty') return new Uint8Array(0)
  if (enc === 'bin') {
    const value = attrs[ATTR.body]?.BinaryValue
    return value === undefined ? new Uint8Array(0) : new Uint8Array(value)
  }
  return encoder.encode(message.Body ?? '')
}

/** A String attribute. */
export function str(value: string): MessageAttributeValue {
  return { DataType: 'String', StringValue: value }
}

/** A Number attribute. */
export function num(value: number): MessageAttributeValue {
  return { DataType: 'Number', StringValue: String(value) }
}

/** Read a Number attribute (undefined when absent or not a number). */
export function readNumber(attrs: Attributes | undefined, name: string): number | undefined {
  const raw = attrs?.[name]?.StringValue
  if (raw === undefined) return undefined
  const n = Number(raw)
  return Number.isFinite(n) ? n : undefined
}

/** Read a String attribute. */
export function readString(attrs: Attributes | undefined, name: string): string | undefined {
  return attrs?.[name]?.StringValue
}

/** The attributes that carry the body of a received message (to re-send it unchanged). */
export function bodyAttributes(message: Message): Attributes {
  const out: Attributes = {}
  for (const name of BODY_ATTRS) {
    const value = message.MessageAttributes?.[name]
    if (value?.DataType === undefined) continue
    out[name] =
      value.BinaryValue !== undefined
        ? { DataType: value.DataType, BinaryValue: value.BinaryValue }
        : { DataType: value.DataType, StringValue: value.StringValue ?? '' }
  }
  return out
}

/**
 * Size of a message as SQS counts it against its limits: body plus each attribute's name, type
 * and value. Binary values are counted base64-encoded, as they travel (and as emulators count).
 */
export function messageSize(text: string, attrs: Attributes): number {
  let size = Buffer.byteLength(text, 'utf8')
  for (const [name, value] of Object.entries(attrs)) {
    size += name.length + (value.DataType?.length ?? 0)
    if (value.StringValue !== undefined) size += Buffer.byteLength(value.StringValue, 'utf8')
    if (value.BinaryValue !== undefined) size += Math.ceil(value.BinaryValue.byteLength / 3) * 4
  }
  return size
}
