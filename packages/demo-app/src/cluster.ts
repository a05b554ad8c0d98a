// Runs the notes board as Heroku runs it with two web dynos, on this machine: a redis-server,
// two instances and a round-robin front in place of Heroku's router. `pnpm demo:cluster` at
// the repository root builds the packages and runs this file.
import { parseArgs } from 'node:util'
import { startLocalCluster } from './cluster/local-cluster.js'
import type { LocalCluster } from './cluster/local-cluster.js'

const USAGE = `Usage: node packages/demo-app/dist/cluster.js [--port PORT] [--instances N]

Starts a redis-server, N notes board instances (default 2) and a round-robin TCP front, all on
127.0.0.1, and prints their URLs. --port sets the front's port (default: a free port).
Ctrl-C or SIGTERM stops everything. An instance that exits on its own restarts.`

const BOARD_QUERY = '/?board=team'

let options: { port: number, instances: number }
try {
  const { values } = parseArgs({
    options: {
      port: { type: 'string' },
      instances: { type: 'string' },
      help: { type: 'boolean', short: 'h' }
    }
  })
  if (values.help === true) {
    console.log(USAGE)
    process.exit(0)
  }
  options = {
    port: parseInteger('--port', values.port ?? '0', 0, 65535),
    instances: parseInteger('--instances', values.instances ?? '2', 1, 16)
  }
} catch (err) {
  console.error(`${(err as Error).message}\n\n${USAGE}`)
  process.exit(2)
}

let cluster: LocalCluster
try {
  cluster = await startLocalCluster({
    instances: options.instances,
    frontPort: options.port,
    restartOnExit: true,
    onOutput: (source, line) => console.log(`${source.padEnd(6)}| ${line}`)
  })
} catch (err) {
  console.error(`The local cluster failed to start: ${(err as Error).message}`)
  process.exit(1)
}

// The children run in their own process groups, so they outlive a crash of this process
// unless it kills them on the way out.
let stopped = false
process.on('exit', () => {
  if (stopped) return
  for (const pid of [cluster.redis.pid, ...cluster.instances.map((instance) => instance.pid)]) {
    if (pid === undefined) continue
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // Already gone.
    }
  }
})

const lines = [
  `Local cluster running (cluster pid ${process.pid}):`,
  `  front  ${cluster.front.url}${BOARD_QUERY}   round robin over the instances, as Heroku's router does`,
  ...cluster.instances.map((instance) => `  ${instance.name.padEnd(6)} ${instance.url}${BOARD_QUERY}   pid ${instance.pid}`),
  `  redis  ${cluster.redis.url}   pid ${cluster.redis.pid}`,
  'Open the front URL in two windows. Stop an instance with "kill PID" to watch its pages',
  'reconnect to another; it restarts a second later. Ctrl-C stops everything.'
]
console.log(lines.join('\n'))

let stopping = false
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return
    stopping = true
    console.log(`Received ${signal}; stopping the front, the instances and redis-server…`)
    cluster.stop().then(() => {
      stopped = true
      console.log('Local cluster stopped.')
      process.exit(0)
    }, (err: unknown) => {
      console.error(`Stopping the local cluster failed: ${(err as Error).message}`)
      process.exit(1)
    })
  })
}

function parseInteger (name: string, value: string, min: number, max: number): number {
  const number = Number(value)
  if (!/^\d+$/.test(value) || number < min || number > max) {
    throw new Error(`Invalid ${name} "${value}": expected an integer from ${min} to ${max}.`)
  }
  return number
}
