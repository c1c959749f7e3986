import {
  type AnyCanvas,
  Canvas,
  type ErrorCallbackInput,
  type NeedOf,
  nodeWithErrbacks,
  type Outcome,
  type OutputOf,
  type ReadyOf,
  requireCanvas,
  requireCanvases,
} from './canvas-base.js'
import { requireOptions } from './canvas-checks.js'
import type { WireNode } from './envelope.js'
import { ValidationError } from './errors.js'

export {
  type AnyCanvas,
  Canvas,
  type ErrorCallbackInput,
  type NeedOf,
  nodeWithErrbacks,
  type Outcome,
  type OutputOf,
  type ReadyOf,
} from './canvas-base.js'

/** The keys of {@link SignatureOptions}; any other key is refused. */
export const SIGNATURE_OPTION_KEYS: readonly string[] = ['queue', 'priority', 'countdownMs', 'timeoutMs']

/** Per-signature options: where and how the task is sent. */
export interface SignatureOptions {
  /** Queue to send to. Default: the task's, else `default`. */
  readonly queue?: string
  /** 0..the broker's `maxPriority`; higher first. Default: the task's. */
  readonly priority?: number
  /** Run no sooner than this many ms after it is sent. */
  readonly countdownMs?: number
  /** Override the task's timeout. */
  readonly timeoutMs?: number
}

/**
 * How a partial signature takes the previous step's output. Without `into` the output must be an
 * object whose fields fill the ones left open (where both have a field, the bound one wins);
 * with `into` the whole output becomes that one field.
 */
export interface PartialMerge {
  readonly into?: string
}

/** Checks a bound input (a task's input schema). */
export interface InputValidator {
  parseInput(input: unknown): unknown
}

/** One task with its input (or awaiting it from the previous step). Made by `task.s()` / `task.si()`. */
export class Signature<Need, Out, Ready extends boolean> extends Canvas<Need, Out, Ready> {
  readonly kind = 'task' as const
  readonly task: string
  readonly input: unknown
  readonly bound: boolean
  readonly immutable: boolean
  readonly options: SignatureOptions
  /** @internal The task's input check, so `send` validates even tasks the app does not register. */
  readonly validator: InputValidator | undefined
  /**
   * Set on a partial signature (`task.partial(bound, into?)`): `input` holds the bound fields and
   * the previous step's output fills the rest (see {@link PartialMerge}).
   */
  readonly merge: PartialMerge | undefined

  /** @internal Use `task.s()` / `task.si()`. */
  constructor(
    task: string,
    bound: boolean,
    input: unknown,
    immutable: boolean,
    options: SignatureOptions,
    errbacks: readonly AnyCanvas[] = [],
    validator?: InputValidator,
    merge?: PartialMerge,
  ) {
    super(errbacks)
    this.task = task
    this.bound = bound
    this.input = input
    this.immutable = immutable
    this.options = options
    this.validator = validator
    this.merge = merge
  }

  /** A copy with these options merged in. */
  set(options: SignatureOptions): Signature<Need, Out, Ready> {
    requireOptions('set', options, SIGNATURE_OPTION_KEYS)
    return this.withSuccesses(
      new Signature(
        this.task,
        this.bound,
        this.input,
        this.immutable,
        { ...this.options, ...options },
        this.errbacks,
        this.validator,
        this.merge,
      ),
    )
  }

  onError(callback: Canvas<ErrorCallbackInput, unknown, boolean>): Signature<Need, Out, Ready> {
    requireCanvas('onError', 'the callback', callback)
    return this.withSuccesses(
      new Signature(
        this.task,
        this.bound,
        this.input,
        this.immutable,
        this.options,
        [...this.errbacks, callback as AnyCanvas],
        this.validator,
        this.merge,
      ),
    )
  }

  toWire(ids: () => string): WireNode {
    const node: WireNode = { kind: 'task', id: ids(), task: this.task }
    if (this.bound || this.merge) node.input = this.input
    if (this.merge) node.merge = this.merge.into === undefined ? {} : { into: this.merge.into }
    // JSON drops an `undefined` input, which would leave the step unbound on the wire (taking the
    // previous output): `immutable` keeps it bound, which is what a bound step means anyway.
    if (this.immutable || (this.bound && this.input === undefined)) node.immutable = true
    const o = this.options
    if (
      o.queue !== undefined ||
      o.priority !== undefined ||
      o.countdownMs !== undefined ||
      o.timeoutMs !== undefined
    ) {
      node.options = {
        ...(o.queue !== undefined && { queue: o.queue }),
        ...(o.priority !== undefined && { priority: o.priority }),
        // The wire carries whole ms; rounding up keeps "never early".
        ...(o.countdownMs !== undefined && { countdownMs: Math.ceil(o.countdownMs) }),
        ...(o.timeoutMs !== undefined && { timeoutMs: o.timeoutMs }),
      }
    }
    return nodeWithErrbacks(node, this, ids)
  }
}

/** Steps run one after another, each output the next input. Made by {@link chain}. */
export class Chain<Need, Out, Ready extends boolean> extends Canvas<Need, Out, Ready> {
  readonly kind = 'chain' as const
  readonly steps: readonly AnyCanvas[]

  /** @internal Use {@link chain}. */
  constructor(steps: readonly AnyCanvas[], errbacks: readonly AnyCanvas[] = []) {
    super(errbacks)
    this.steps = steps
  }

  onError(callback: Canvas<ErrorCallbackInput, unknown, boolean>): Chain<Need, Out, Ready> {
    requireCanvas('onError', 'the callback', callback)
    return this.withSuccesses(new Chain(this.steps, [...this.errbacks, callback as AnyCanvas]))
  }

  toWire(ids: () => string): WireNode {
    const node: WireNode = { kind: 'chain', steps: this.steps.map((s) => s.toWire(ids)) }
    return nodeWithErrbacks(node, this, ids)
  }
}

/** Members run in parallel; the output is the array of their outputs in order. Made by {@link group}. */
export class Group<Need, Out, Ready extends boolean> extends Canvas<Need, Out, Ready> {
  readonly kind = 'group' as const
  readonly members: readonly AnyCanvas[]

  /** @internal Use {@link group}. */
  constructor(members: readonly AnyCanvas[], errbacks: readonly AnyCanvas[] = []) {
    super(errbacks)
    this.members = members
  }

  onError(callback: Canvas<ErrorCallbackInput, unknown, boolean>): Group<Need, Out, Ready> {
    requireCanvas('onError', 'the callback', callback)
    return this.withSuccesses(new Group(this.members, [...this.errbacks, callback as AnyCanvas]))
  }

  toWire(ids: () => string): WireNode {
    const node: WireNode = { kind: 'group', id: ids(), members: this.members.map((m) => m.toWire(ids)) }
    return nodeWithErrbacks(node, this, ids)
  }
}

/** A group whose outputs go, once all are in, to one callback. Made by {@link chord}. */
export class Chord<Need, Out, Ready extends boolean> extends Canvas<Need, Out, Ready> {
  readonly kind = 'chord' as const
  readonly header: readonly AnyCanvas[]
  readonly body: AnyCanvas
  readonly tolerant: boolean

  /** @internal Use {@link chord}. */
  constructor(
    header: readonly AnyCanvas[],
    body: AnyCanvas,
    tolerant: boolean,
    errbacks: readonly AnyCanvas[] = [],
  ) {
    super(errbacks)
    this.header = header
    this.body = body
    this.tolerant = tolerant
  }

  onError(callback: Canvas<ErrorCallbackInput, unknown, boolean>): Chord<Need, Out, Ready> {
    requireCanvas('onError', 'the callback', callback)
    return this.withSuccesses(
      new Chord(this.header, this.body, this.tolerant, [...this.errbacks, callback as AnyCanvas]),
    )
  }

  toWire(ids: () => string): WireNode {
    const node: WireNode = {
      kind: 'chord',
      id: ids(),
      header: this.header.map((m) => m.toWire(ids)),
      body: this.body.toWire(ids),
      ...(this.tolerant && { tolerant: true }),
    }
    return nodeWithErrbacks(node, this, ids)
  }
}

// ---- compile-time checks ----

/** Shown by the compiler where a chain step cannot take the previous step's output. */
export interface ChainStepMismatch<Prev, Need> {
  readonly 'error: this step cannot take the previous output': { previousOutput: Prev; stepAccepts: Need }
}

/** Shown by the compiler where a chain step's output cannot fill a partial signature's open fields. */
export interface PartialStepMismatch<Prev, Open> {
  readonly 'error: the previous output cannot fill the open fields of this partial signature': {
    previousOutput: Prev
    openFields: Open
  }
}

type CheckSteps<T extends readonly unknown[], Prev> = T extends readonly [infer H, ...infer R]
  ? [
      [Prev] extends [NeedOf<H>]
        ? H
        : H extends { readonly merge: PartialMerge }
          ? PartialStepMismatch<Prev, NeedOf<H>>
          : ChainStepMismatch<Prev, NeedOf<H>>,
      ...CheckSteps<R, OutputOf<H>>,
    ]
  : []

/** Every step after the first must accept the previous step's output. */
export type CheckChain<T extends readonly unknown[]> = T extends readonly [infer H, ...infer R]
  ? [H, ...CheckSteps<R, OutputOf<H>>]
  : T

type Last<T extends readonly unknown[]> = T extends readonly [...unknown[], infer L] ? L : never
type AllReady<T extends readonly unknown[]> = T extends readonly [infer H, ...infer R]
  ? ReadyOf<H> extends true
    ? AllReady<R>
    : false
  : true
type UnionToIntersection<U> = (U extends unknown ? (x: U) => void : never) extends (x: infer I) => void
  ? I
  : never
type GroupNeed<T extends readonly unknown[]> = [T[number]] extends [never]
  ? unknown
  : UnionToIntersection<NeedOf<T[number]>>
/** Outputs of a list of canvases, as a tuple. */
export type OutputsOf<T extends readonly unknown[]> = { -readonly [K in keyof T]: OutputOf<T[K]> }
/** Outcomes of a list of canvases, as a tuple. */
export type OutcomesOf<T extends readonly unknown[]> = { -readonly [K in keyof T]: Outcome<OutputOf<T[K]>> }

/** Shown by the compiler where a chord callback cannot take the header's outputs. */
export interface ChordBodyMismatch<Outputs, Need> {
  readonly 'error: the chord callback cannot take the group outputs': {
    groupOutputs: Outputs
    callbackAccepts: Need
  }
}

/**
 * Run steps in order, passing each output on as the next step's input. The first step may be
 * bound (`task.s(input)`), later ones take the previous output (`task.s()`) or ignore it
 * (`task.si(input)`). A step that cannot take the previous output does not compile.
 *
 * @example
 * ```ts
 * await app.send(chain(fetch.s({ url }), resize.s(), upload.s()))
 * ```
 */
export function chain<const T extends readonly [AnyCanvas, ...AnyCanvas[]]>(
  ...steps: T & CheckChain<T>
): Chain<NeedOf<T[0]>, OutputOf<Last<T>>, ReadyOf<T[0]>> {
  if ((steps as readonly AnyCanvas[]).length === 0) {
    throw new ValidationError('chain: needs at least one step', [{ path: [], message: 'no steps' }])
  }
  requireCanvases('chain', 'step', steps)
  steps.forEach((s, i) => {
    if (i > 0 && s instanceof Signature && s.bound && !s.immutable) {
      throw new ValidationError(
        `chain: step ${i} (${s.task}) has bound input: use .s() to take the previous output or .si(input) to ignore it`,
        [{ path: [i], message: 'bound input after the first step' }],
      )
    }
  })
  return new Chain(steps as readonly AnyCanvas[])
}

/**
 * Run members in parallel; the output is the array of their outputs, in member order (not
 * completion order). Needs a result backend.
 */
export function group<const T extends readonly AnyCanvas[]>(
  ...members: T
): Group<GroupNeed<T>, OutputsOf<T>, AllReady<T>> {
  return new Group(requireCanvases('group', 'member', members))
}

type HeaderOf<G> = G extends Group<never, unknown, boolean> ? G['members'] : G
type ChordHeader = Group<never, unknown, boolean> | readonly AnyCanvas[]
type MembersTuple<G> =
  G extends Group<infer _N, infer O, boolean> ? O : G extends readonly unknown[] ? OutputsOf<G> : never
type OutcomesTuple<G> =
  G extends Group<infer _N, infer O, boolean>
    ? { -readonly [K in keyof O]: Outcome<O[K]> }
    : G extends readonly unknown[]
      ? OutcomesOf<G>
      : never
type HeaderNeed<G> =
  G extends Group<infer N, unknown, boolean> ? N : G extends readonly unknown[] ? GroupNeed<G> : never
type HeaderReady<G> =
  G extends Group<never, unknown, infer R> ? R : G extends readonly unknown[] ? AllReady<G> : never

/** Options of {@link chord}. */
export interface ChordOptions {
  /**
   * Run the callback even when members fail, with each member's outcome (`{ ok, value }` or
   * `{ ok: false, error }`) instead of its value. Default false: a failed member fails the chord.
   */
  readonly allowFailures?: boolean
}

/**
 * Run a group, then `callback` exactly once with the array of member outputs. A callback whose
 * input cannot take that array does not compile. With `{ allowFailures: true }` the callback gets
 * each member's outcome instead, and runs even when members fail.
 */
export function chord<const G extends ChordHeader, B extends AnyCanvas>(
  header: G,
  callback: B &
    ([MembersTuple<G>] extends [NeedOf<B>] ? unknown : ChordBodyMismatch<MembersTuple<G>, NeedOf<B>>),
  options?: { readonly allowFailures?: false },
): Chord<HeaderNeed<G>, OutputOf<B>, HeaderReady<G>>
export function chord<const G extends ChordHeader, B extends AnyCanvas>(
  header: G,
  callback: B &
    ([OutcomesTuple<G>] extends [NeedOf<B>] ? unknown : ChordBodyMismatch<OutcomesTuple<G>, NeedOf<B>>),
  options: { readonly allowFailures: true },
): Chord<HeaderNeed<G>, OutputOf<B>, HeaderReady<G>>
export function chord(header: ChordHeader, callback: AnyCanvas, options: ChordOptions = {}): AnyCanvas {
  if (!(header instanceof Group) && !Array.isArray(header)) {
    requireCanvas('chord', 'the header (an array of canvases or a group)', header, ['header'])
    throw new ValidationError('chord: the header must be an array of canvases or a group', [
      { path: ['header'], message: 'a single canvas' },
    ])
  }
  const members: readonly AnyCanvas[] =
    header instanceof Group ? header.members : (header as readonly AnyCanvas[])
  members.forEach((m, i) => {
    requireCanvas('chord', `header member ${i}`, m, ['header', i])
  })
  requireCanvas('chord', 'the callback', callback, ['callback'])
  requireOptions('chord', options, ['allowFailures'])
  if (options.allowFailures !== undefined && typeof options.allowFailures !== 'boolean') {
    throw new ValidationError(`chord: options.allowFailures must be a boolean`, [
      { path: ['options', 'allowFailures'], message: 'not a boolean' },
    ])
  }
  return new Chord(members, callback, options.allowFailures === true)
}

export type { HeaderOf }
