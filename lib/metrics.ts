import { collectDefaultMetrics, Gauge, Registry } from 'prom-client'

/**
 * A Prometheus registry with what every zonegate process exports: prom-client's default process metrics and
 * `zonegate_build_info{version,node}` (always 1). `registers` is the list metrics are created with.
 */
export function processRegistry(version: string): { registry: Registry; registers: Registry[] } {
  const registry = new Registry()
  const registers = [registry]
  collectDefaultMetrics({ register: registry })
  new Gauge({
    name: 'zonegate_build_info',
    help: 'Always 1; the labels say which zonegate and Node.js versions run',
    labelNames: ['version', 'node'],
    registers,
  }).set({ version, node: process.version }, 1)
  return { registry, registers }
}
