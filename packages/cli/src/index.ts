export { CliError, EXIT } from './exit-codes.js'
export { type Io, processIo } from './io.js'
export { run } from './main.js'
