// Request and response over a child process's IPC channel, so that the runner can drive the
// servers and the load generator step by step and read their measurements back.
import { spawn } from 'node:child_process'
import { once } from 'node:events'

/**
 * Serves requests from the parent process. Each handler receives the request's params and
 * returns (or resolves to) a JSON-serialisable result. The process exits when the parent
 * disconnects, so that a crashed runner leaves no servers behind.
 */
export function serveRequests (handlers) {
  process.on('message', async ({ id, method, params }) => {
    const handler = handlers[method]
    try {
      if (handler === undefined) throw new Error(`unknown request method "${method}"`)
      const result = await handler(params ?? {})
      process.send({ id, result: result ?? null })
    } catch (err) {
      process.send({ id, error: err.stack ?? String(err) })
    }
  })
  process.on('disconnect', () => process.exit(0))
}

/**
 * Spawns `node script` with an IPC channel. The soft limit on open files is raised to the hard
 * limit first, because the memory scenario opens thousands of sockets in one process.
 */
export function spawnNodeChild (name, script, { nodeOptions = [], env = {} } = {}) {
  const raiseFileLimit = 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$0" "$@"'
  const child = spawn('/bin/sh', ['-c', raiseFileLimit, process.execPath, ...nodeOptions, script], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, ...env }
  })
  return new ChildConnection(name, child)
}

/** The parent's end of a child process that `serveRequests()` runs in. */
export class ChildConnection {
  #nextId = 1
  #pending = new Map()

  constructor (name, child) {
    this.name = name
    this.child = child
    this.exited = once(child, 'exit').then(([code, signal]) => {
      for (const { reject } of this.#pending.values()) {
        reject(new Error(`${this.name} (pid ${child.pid}) exited with ${signal ?? `code ${code}`} during a request`))
      }
      this.#pending.clear()
      return { code, signal }
    })
    child.on('message', ({ id, result, error }) => {
      const request = this.#pending.get(id)
      if (request === undefined) return
      this.#pending.delete(id)
      if (error !== undefined) request.reject(new Error(`${this.name} failed a request: ${error}`))
      else request.resolve(result)
    })
  }

  get pid () {
    return this.child.pid
  }

  /** Sends a request and waits for its result, at most `timeoutMs` milliseconds. */
  request (method, params = {}, timeoutMs = 30_000) {
    const id = this.#nextId++
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id)
        reject(new Error(`${this.name} (pid ${this.child.pid}) did not respond to "${method}" within ${timeoutMs} ms`))
      }, timeoutMs)
      this.#pending.set(id, {
        resolve: (value) => { clearTimeout(timer); resolve(value) },
        reject: (err) => { clearTimeout(timer); reject(err) }
      })
      if (this.child.exitCode !== null || this.child.signalCode !== null || !this.child.connected) {
        this.#pending.get(id).reject(new Error(`${this.name} (pid ${this.child.pid}) is not running`))
        this.#pending.delete(id)
        return
      }
      this.child.send({ id, method, params })
    })
  }

  /**
   * Asks the child to stop, then sends SIGTERM and SIGKILL to this child's pid if it has not
   * exited within the grace periods.
   */
  async stop (graceMs = 10_000) {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.exited
    await this.request('stop', {}, graceMs).catch(() => {})
    const exited = await Promise.race([this.exited, delay(graceMs).then(() => undefined)])
    if (exited !== undefined) return exited
    this.child.kill('SIGTERM')
    const terminated = await Promise.race([this.exited, delay(2000).then(() => undefined)])
    if (terminated !== undefined) return terminated
    this.child.kill('SIGKILL')
    return this.exited
  }
}

export function delay (ms) {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
