// Side-effect entry: `node --import @errand/example-mysql-adapter/register app.js` makes
// `mysql://` URLs work in every Errand app of the process, with no change to the app's code.
import { registerAdapter } from '@errand/core'
import { adapter } from './index.js'

registerAdapter(adapter)
