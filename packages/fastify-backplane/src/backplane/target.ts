/** Who receives a message on each instance: every connection of a hub, or a group's members. */
export type Target =
  | { kind: 'all' }
  | { kind: 'group', group: string }
