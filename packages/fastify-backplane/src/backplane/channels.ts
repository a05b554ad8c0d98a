import type { Target } from './target.js'

/**
 * Builds Redis channel names. The scheme, under the configured prefix:
 *
 *   {prefix}{hub length}:{hub}:all
 *   {prefix}{hub length}:{hub}:group:{group}
 *
 * The hub name is length-prefixed and the group name always comes last, after a fixed kind
 * word, so no hub or group name, whatever characters it contains, can produce another
 * target's channel. Redis channel names are binary-safe, so names need no escaping.
 */
export class ChannelNames {
  readonly #prefix: string

  constructor (prefix: string) {
    this.#prefix = prefix
  }

  forTarget (hub: string, target: Target): string {
    const base = `${this.#prefix}${hub.length}:${hub}:`
    return target.kind === 'all' ? base + 'all' : base + 'group:' + target.group
  }
}
