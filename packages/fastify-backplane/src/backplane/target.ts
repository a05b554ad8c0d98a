/**
 * The recipients of a message on each instance. Lists reach each connection once, even a
 * connection that belongs to several of the listed groups.
 */
export type Target =
  | { kind: 'all' }
  | { kind: 'groups', groups: string[] }
  | { kind: 'connections', connectionIds: string[] }
  | { kind: 'users', userIds: string[] }
