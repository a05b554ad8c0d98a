import { describeValue } from '../describe-value.js'
import {
  InvalidBroadcastError,
  InvalidConnectionIdError,
  InvalidGroupNameError,
  InvalidUserIdError
} from '../errors.js'
import type { Target } from './target.js'

/** The maximum length of a group name or user id, in UTF-16 code units, which bounds channel names. */
export const MAXIMUM_NAME_LENGTH = 1024

/**
 * Options of `broadcast()` that select recipients. At most one of `group`, `connection` and
 * `user` may be set; without any, every connection of the hub is a recipient.
 */
export interface BroadcastOptions {
  /**
   * The hub whose connections receive the message.
   * @default the only hub registered on this instance; required when there is none or several
   */
  hub?: string
  /** Only members of this group, or of any of these groups, receive the message. */
  group?: string | readonly string[]
  /** Only this connection, or these connections, receive the message. */
  connection?: string | readonly string[]
  /** Only the connections of this user, or of these users, receive the message. */
  user?: string | readonly string[]
  /** Connection ids that must not receive the message, such as the caller's. */
  except?: string | readonly string[]
}

/** Turns the recipient options of a broadcast into a target, validating every name. */
export function resolveTarget (options: BroadcastOptions): Target {
  const selectors = (['group', 'connection', 'user'] as const).filter((key) => options[key] !== undefined)
  if (selectors.length > 1) {
    throw new InvalidBroadcastError('options', `${selectors.join(' and ')} cannot be combined; send one broadcast per kind of recipient`)
  }

  if (options.group !== undefined) {
    return { kind: 'groups', groups: nameList(options.group, 'group', validateGroupName) }
  }
  if (options.connection !== undefined) {
    return { kind: 'connections', connectionIds: nameList(options.connection, 'connection', validateConnectionId) }
  }
  if (options.user !== undefined) {
    return { kind: 'users', userIds: nameList(options.user, 'user', validateUserId) }
  }
  return { kind: 'all' }
}

/** Validates the `except` option and returns it as an array. */
export function resolveExcept (except: BroadcastOptions['except']): string[] {
  if (except === undefined) return []
  const ids = typeof except === 'string' ? [except] : except
  if (!Array.isArray(ids) || !ids.every((id) => typeof id === 'string')) {
    throw new InvalidBroadcastError('except', `expected a connection id or an array of them, got ${describeValue(except)}`)
  }
  return [...ids]
}

/** Throws FST_BACKPLANE_INVALID_GROUP_NAME unless `group` is a non-empty string of bounded length. */
export function validateGroupName (group: unknown): asserts group is string {
  validateName(group, (value, problem) => new InvalidGroupNameError(value, problem))
}

/** Throws FST_BACKPLANE_INVALID_USER_ID unless `userId` is a non-empty string of bounded length. */
export function validateUserId (userId: unknown): asserts userId is string {
  validateName(userId, (value, problem) => new InvalidUserIdError(value, problem))
}

/** Throws FST_BACKPLANE_INVALID_CONNECTION_ID unless `connectionId` is a non-empty string of bounded length. */
export function validateConnectionId (connectionId: unknown): asserts connectionId is string {
  validateName(connectionId, (value, problem) => new InvalidConnectionIdError(value, problem))
}

function validateName (name: unknown, error: (value: string, problem: string) => Error): void {
  if (typeof name !== 'string' || name === '') {
    throw error(describeValue(name), 'expected a non-empty string')
  }
  if (name.length > MAXIMUM_NAME_LENGTH) {
    throw error(`of ${name.length} characters`, `the maximum is ${MAXIMUM_NAME_LENGTH}`)
  }
}

function nameList (value: string | readonly string[], option: string, validate: (name: unknown) => void): string[] {
  const names = typeof value === 'string' ? [value] : value
  if (!Array.isArray(names) || names.length === 0) {
    throw new InvalidBroadcastError(option, `expected a string or a non-empty array of strings, got ${describeValue(value)}`)
  }
  names.forEach(validate)
  return [...new Set<string>(names)]
}

