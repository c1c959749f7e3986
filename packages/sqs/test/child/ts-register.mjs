// `node --conditions=source --import ./ts-register.mjs child.ts`: run TypeScript sources.
import { register } from 'node:module'

register('./ts-hooks.mjs', import.meta.url)
