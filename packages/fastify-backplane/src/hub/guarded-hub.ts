import { GroupForbiddenError, TooManyGroupsError } from '../errors.js'
import type { HubConnection } from './connection.js'
import { Hub } from './hub.js'
import type { HubConnectionContext, HubConnectionGroups } from './options.js'

/**
 * A hub whose connection contexts check `context.groups.add()` against the `authorizeGroup`
 * option and the `maximumGroupsPerClient` limit. Every group join that a connection's code
 * makes, in a hub method or in `onConnected`, goes through these checks. Joins that app code
 * makes for any connection through `hubContext.groups.add()` are trusted and not checked.
 */
export class GuardedHub extends Hub {
  override createGroups (context: HubConnectionContext, connection: HubConnection): HubConnectionGroups {
    const groups = super.createGroups(context, connection)
    return {
      ...groups,
      add: (group) => {
        const joined = this.#join(context, connection, group, groups.add)
        // Handled here, so that a hub method that ignores the promise causes no unhandled
        // rejection. The caller still sees the rejection when it awaits, and failures are
        // logged where they happen.
        joined.catch(() => {})
        return joined
      }
    }
  }

  async #join (context: HubConnectionContext, connection: HubConnection, group: string, join: (group: string) => Promise<void>): Promise<void> {
    // A non-string name is rejected by the join itself, with FST_BACKPLANE_INVALID_GROUP_NAME.
    if (typeof group !== 'string' || connection.groups.has(group)) return await join(group)

    const authorize = this.options.authorizeGroup
    if (authorize !== undefined && await authorize(context, group) !== true) {
      const err = new GroupForbiddenError(JSON.stringify(group))
      connection.log.info({ err, group }, 'hub group join rejected')
      throw err
    }
    // The check and the start of the join run without an await in between, so parallel
    // invocations of one connection cannot both pass the check for the last free place.
    if (!connection.groups.has(group) && connection.groups.size >= this.options.maximumGroupsPerClient) {
      const err = new TooManyGroupsError(JSON.stringify(group), this.options.maximumGroupsPerClient)
      connection.log.info({ err, group }, 'hub group join rejected')
      throw err
    }
    return await join(group)
  }
}
