import { execFile, spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Redis } from 'ioredis'
import { freePort } from './redis-server.js'

const run = promisify(execFile)

/** A Redis Cluster of masters without replicas, on loopback ports, each node in its own folder. */
export interface RedisCluster {
  readonly ports: number[]
  readonly urls: string[]
  /** A plain connection to the node on `port`, closed with the cluster. */
  node (port: number): Redis
  /** Moves `slot` to the node on `toPort` with CLUSTER SETSLOT, as a resharding tool would. */
  moveSlot (slot: number, toPort: number): Promise<void>
  /** The port of the master that owns `slot`. */
  ownerOf (slot: number): Promise<number>
  /**
   * Kills the node on `port` with SIGKILL and starts it again from its nodes.conf, as after a
   * crash, then waits until the cluster is whole.
   */
  restart (port: number): Promise<void>
  stop (): Promise<void>
}

/** Starts `masters` cluster-enabled redis-server processes and joins them into one cluster. */
export async function startRedisCluster (masters = 3): Promise<RedisCluster> {
  const ports = await clusterPorts(masters)
  const dirs: string[] = []
  const children = new Map<number, ChildProcess>()
  const connections = new Map<number, Redis>()

  const startNode = async (port: number, dir: string): Promise<void> => {
    const child = spawn('redis-server', [
      '--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no',
      '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000',
      '--dir', dir
    ], { stdio: ['ignore', 'pipe', 'pipe'] })
    children.set(port, child)
    await waitForOutput(child, 'Ready to accept connections')
  }

  for (const port of ports) {
    const dir = await mkdtemp(join(tmpdir(), `backplane-cluster-${port}-`))
    dirs.push(dir)
    await startNode(port, dir)
  }

  await run('redis-cli', ['--cluster', 'create', ...ports.map((port) => `127.0.0.1:${port}`), '--cluster-replicas', '0', '--cluster-yes'])

  const node = (port: number): Redis => {
    let connection = connections.get(port)
    if (connection === undefined) {
      connection = new Redis(port, '127.0.0.1', { lazyConnect: false })
      connections.set(port, connection)
    }
    return connection
  }
  await waitForClusterOk(ports.map(node))

  const nodeId = async (port: number): Promise<string> => String(await node(port).call('CLUSTER', 'MYID'))

  const ownerOf = async (slot: number): Promise<number> => {
    const slots = await node(ports[0]!).call('CLUSTER', 'SLOTS') as Array<[number, number, [string, number]]>
    const range = slots.find(([start, end]) => start <= slot && slot <= end)
    if (range === undefined) throw new Error(`slot ${slot} has no owner`)
    return Number(range[2][1])
  }

  return {
    ports,
    urls: ports.map((port) => `redis://127.0.0.1:${port}`),
    node,
    ownerOf,
    moveSlot: async (slot, toPort) => {
      const fromPort = await ownerOf(slot)
      if (fromPort === toPort) return
      const [fromId, toId] = [await nodeId(fromPort), await nodeId(toPort)]
      await node(toPort).call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', fromId)
      await node(fromPort).call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', toId)
      // The backplane stores no keys, so there is nothing to MIGRATE before handing the slot over.
      await node(toPort).call('CLUSTER', 'SETSLOT', slot, 'NODE', toId)
      await node(fromPort).call('CLUSTER', 'SETSLOT', slot, 'NODE', toId)
      for (const port of ports) {
        if (port !== fromPort && port !== toPort) await node(port).call('CLUSTER', 'SETSLOT', slot, 'NODE', toId)
      }
    },
    restart: async (port) => {
      const child = children.get(port)!
      child.kill('SIGKILL')
      if (child.exitCode === null && child.signalCode === null) await once(child, 'exit')
      await startNode(port, dirs[ports.indexOf(port)]!)
      await waitForClusterOk(ports.map(node))
    },
    stop: async () => {
      for (const connection of connections.values()) connection.disconnect()
      await Promise.all([...children.values()].map(async (child) => {
        if (child.exitCode !== null) return
        child.kill('SIGTERM')
        await once(child, 'exit')
      }))
      await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })))
    }
  }
}

/** Picks ports whose cluster bus port (port + 10000) is free too. */
async function clusterPorts (count: number): Promise<number[]> {
  const ports: number[] = []
  while (ports.length < count) {
    const port = await freePort()
    if (port > 55_000 || ports.includes(port)) continue
    if (await isFree(port + 10_000)) ports.push(port)
  }
  return ports
}

async function isFree (port: number): Promise<boolean> {
  const { createServer } = await import('node:net')
  const server = createServer()
  return await new Promise((resolve) => {
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}

async function waitForOutput (child: ChildProcess, text: string): Promise<void> {
  let output = ''
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`redis-server did not print "${text}" within 10 s:\n${output}`)), 10_000)
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      if (output.includes(text)) {
        clearTimeout(timer)
        resolve()
      }
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`redis-server exited with code ${code}:\n${output}`))
    })
  })
}

async function waitForClusterOk (nodes: Redis[]): Promise<void> {
  const deadline = Date.now() + 20_000
  for (const node of nodes) {
    while (!String(await node.call('CLUSTER', 'INFO')).includes('cluster_state:ok')) {
      if (Date.now() > deadline) throw new Error('the cluster did not reach cluster_state:ok within 20 s')
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
}
