import type { AnyTask, App } from '@errand/core'
import type { Io } from './io.js'
import type { AppSource } from './load-app.js'

/** What every command gets. */
export interface CommandContext {
  readonly io: Io
  /**
   * The app of this invocation, opened on first use (`tasks` adds ad-hoc tasks to an app made from
   * URLs, for `send` without `--app`). Closed by the runner when the command ends.
   */
  app(options?: { tasks?: readonly AnyTask[] }): Promise<App>
  /** Whether the app came from `--app` (its tasks and schemas are known). */
  readonly fromModule: (source: AppSource) => boolean
}
