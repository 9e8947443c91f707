import { natsServers, natsUnreachableMessage, UsageError } from '../../lib/common.js'
import { type NatsFlags, natsConnectOptions } from '../../lib/nats-connect.js'
import type { Bus } from '../transport/nats-bus.js'

/**
 * Connects a one-shot command (`zonegate status`, `zonegate nats migrate`) to NATS as a Bus within `budgetMs`:
 * only the servers that answer the probe are tried, the client never reconnects, and its logs go to stderr only
 * when LOG_LEVEL asks. pino and the NATS client are loaded here, on use, so other commands start without them.
 * UsageError (exit 2) naming the URLs tried when no server can be reached, or a flag file is unreadable.
 */
export async function connectCommandBus(flags: NatsFlags, budgetMs: number): Promise<Bus> {
  const servers = natsServers(flags.nats)
  const auth = await natsConnectOptions(flags)
  const [{ pino }, { connectBus }, { natsServersAnswering }] = await Promise.all([
    import('pino'),
    import('../transport/nats-bus.js'),
    import('../../lib/nats-probe.js'),
  ])
  const answering = await natsServersAnswering(servers, budgetMs)
  const log = pino({ level: process.env.LOG_LEVEL ?? 'silent' }, pino.destination(2))
  try {
    return await connectBus({
      servers: answering,
      auth,
      connectTimeoutMs: budgetMs,
      name: 'zonegate-cli',
      log,
      waitOnFirstConnect: false,
      maxReconnectAttempts: 0,
    })
  } catch (err) {
    throw new UsageError(natsUnreachableMessage(servers, err))
  }
}
