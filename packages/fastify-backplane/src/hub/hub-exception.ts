/**
 * An error whose message a hub method wants the client to see. Other errors reach the client
 * only as a generic text unless detailed errors are on, as in ASP.NET Core SignalR, whose
 * class of the same name plays this role.
 */
export class HubException extends Error {
  override name = 'HubException'
}
