/** Highest priority the broker accepts; the fetch probes each level from here down to 0. */
export const MAX_PRIORITY = 9
