/**
 * Config generators for the proxy-throughput benchmark (method: benchmarks/peers/README.md). Every peer is
 * generated from the same route list: a.test → a, b.test → b, c.test → a+b (weight 1 each), raw.test → the raw
 * stream server. Pure: paths and ports in, config text out.
 */
import { tableDigest } from '../../schemas/digest.js'
import { TABLE_API_VERSION, TABLE_KIND, type TableRoute, type ZoneTable } from '../../schemas/table.js'

export interface Ports {
  backendA: number
  backendB: number
  raw: number
  haproxy: number
  nginxStream: number
  nodeRef: number
  /** node-raw: an experiment on Node's internal TCP handles (benchmarks/peers/node-raw.js). */
  nodeRaw: number
  egress: number
  egressAdmin: number
  /** The same peers with 2 threads / workers / egress workers (whole-machine figures). */
  haproxy2: number
  nginxStream2: number
  egress2: number
  egress2Admin: number
}

/** Ports laid out from a base: backends base+1..3, proxies base+10..19. */
export function portsFrom(base: number): Ports {
  return {
    backendA: base + 1,
    backendB: base + 2,
    raw: base + 3,
    haproxy: base + 10,
    nginxStream: base + 11,
    nodeRef: base + 12,
    egress: base + 13,
    egressAdmin: base + 14,
    haproxy2: base + 15,
    nginxStream2: base + 16,
    egress2: base + 17,
    egress2Admin: base + 18,
    nodeRaw: base + 19,
  }
}

export interface BenchRoute {
  sni: string
  upstreams: number[]
}

/** The route list every target is built from (sorted by SNI, as a ZoneTable's routes). */
export function benchRoutes(p: Ports): BenchRoute[] {
  return [
    { sni: 'a.test', upstreams: [p.backendA] },
    { sni: 'b.test', upstreams: [p.backendB] },
    { sni: 'c.test', upstreams: [p.backendA, p.backendB] },
    { sni: 'raw.test', upstreams: [p.raw] },
  ]
}

/** routes.json in the reference harness's format (read by the node-ref fixture). */
export function routesJson(routes: BenchRoute[]): string {
  return `${JSON.stringify({ routes: routes.map((r) => ({ sni: r.sni, upstreams: r.upstreams.map((u) => `127.0.0.1:${u}`) })) }, null, 2)}\n`
}

/** The table envelope (docs/design.md) for `zonegate egress --static`: passthrough cross-zone routes, generation 1. */
export function zoneTable(routes: BenchRoute[], p: Ports): ZoneTable {
  const tableRoutes: TableRoute[] = routes.map((r) => ({
    sni: r.sni,
    mesh: 'default',
    service: r.sni.replace(/\.test$/, ''),
    kind: 'cross-zone',
    mode: 'passthrough',
    upstreams: r.upstreams.map((port) => ({ address: '127.0.0.1', port, weight: 1, zone: 'bench-remote' })),
  }))
  const egresses = [{ name: 'bench', address: '127.0.0.1', port: p.egress, adminPort: p.egressAdmin }]
  const zone = 'bench'
  return {
    apiVersion: TABLE_API_VERSION,
    kind: TABLE_KIND,
    zone,
    generation: 1,
    revision: `bench@sha1:${'0'.repeat(40)}`,
    digest: tableDigest({ zone, egresses, routes: tableRoutes }),
    egresses,
    routes: tableRoutes,
  }
}

/** Backend nginx: HTTPS a/b on two ports (certs by SNI, no session reuse), plus the raw stream server. */
export function backendConf(dir: string, p: Ports, asRoot: boolean): string {
  const names = ['a.test', 'b.test', 'c.test']
  const servers = [
    { port: p.backendA, upstream: 'a' },
    { port: p.backendB, upstream: 'b' },
  ]
    .flatMap(({ port, upstream }) =>
      names.map(
        (name, i) => `  server {
    listen 127.0.0.1:${port} ssl${i === 0 ? ' default_server' : ''};
    server_name ${name};
    ssl_certificate ${dir}/certs/${name}.crt;
    ssl_certificate_key ${dir}/certs/${name}.key;
    root ${dir}/www;
    add_header X-Upstream ${upstream} always;
    location / { }
  }`,
      ),
    )
    .join('\n')
  return `load_module /usr/lib/nginx/modules/ngx_stream_module.so;
${asRoot ? 'user root;\n' : ''}worker_processes 1;
daemon off;
pid ${dir}/backend.pid;
error_log ${dir}/backend-error.log warn;
worker_rlimit_nofile 20000;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  default_type application/octet-stream;
  sendfile on;
  keepalive_requests 1000000;
  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_session_cache off;
  ssl_session_tickets off;
${servers}
}
stream {
  server {
    listen 127.0.0.1:${p.raw};
    ssl_preread on;
    return "${'x'.repeat(1023)}\\n";
  }
}
`
}

/**
 * HAProxy 2.6, `nbthread` threads (1 for the per-core figures), `mode tcp`, inspect the ClientHello, one backend
 * per route, no default backend. `name` keeps the pid files of several instances apart.
 */
export function haproxyCfg(dir: string, routes: BenchRoute[], port: number, nbthread = 1, name = 'haproxy'): string {
  const snis = routes.map((r) => r.sni).join(' ')
  const uses = routes.map((r) => `  use_backend be_${r.sni} if { req.ssl_sni -i ${r.sni} }`).join('\n')
  const backends = routes
    .map(
      (r) =>
        `backend be_${r.sni}\n  balance roundrobin\n${r.upstreams.map((u, i) => `  server s${i} 127.0.0.1:${u} weight 1`).join('\n')}`,
    )
    .join('\n\n')
  return `global
  nbthread ${nbthread}
  maxconn 8000
  pidfile ${dir}/${name}.pid

defaults
  mode tcp
  timeout connect 3s
  timeout client 30s
  timeout server 30s

frontend sni
  bind 127.0.0.1:${port}
  tcp-request inspect-delay 5s
  acl known_sni req.ssl_sni -i ${snis}
  tcp-request content reject if { req.ssl_hello_type 1 } !known_sni
  tcp-request content accept if { req.ssl_hello_type 1 }
  tcp-request content reject
${uses}

${backends}
`
}

/**
 * nginx stream peer: `workers` worker processes (1 for the per-core figures), ssl_preread, map SNI → named
 * upstream, default → a unix socket that closes at once. `name` keeps the pid, log and socket of instances apart.
 */
export function nginxStreamConf(
  dir: string,
  routes: BenchRoute[],
  port: number,
  asRoot: boolean,
  workers = 1,
  name = 'nginx-stream',
): string {
  const up = (sni: string) => `up_${sni.replace(/\W/g, '_')}`
  const maps = routes.map((r) => `    ${r.sni} ${up(r.sni)};`).join('\n')
  const ups = routes
    .map(
      (r) =>
        `  upstream ${up(r.sni)} {\n${r.upstreams.map((u) => `    server 127.0.0.1:${u} weight=1;`).join('\n')}\n  }`,
    )
    .join('\n')
  return `load_module /usr/lib/nginx/modules/ngx_stream_module.so;
${asRoot ? 'user root;\n' : ''}worker_processes ${workers};
daemon off;
pid ${dir}/${name}.pid;
error_log ${dir}/${name}-error.log warn;
worker_rlimit_nofile 20000;
events { worker_connections 8192; }
stream {
  map $ssl_preread_server_name $sni_upstream {
${maps}
    default up_reject;
  }
${ups}
  upstream up_reject {
    server unix:${dir}/${name}-reject.sock;
  }
  server {
    listen 127.0.0.1:${port};
    ssl_preread on;
    proxy_connect_timeout 3s;
    proxy_pass $sni_upstream;
  }
  server {
    listen unix:${dir}/${name}-reject.sock;
    return "";
  }
}
`
}
