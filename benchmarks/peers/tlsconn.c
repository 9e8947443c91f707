/*
 * tlsconn: closed-loop "new connection per request" load generator for benchmarks/proxy-throughput.bench.ts.
 * Compiled at bench time (gcc -O2 -pthread tlsconn.c -lssl -lcrypto) into the run's temp directory.
 *
 *   tlsconn -a ADDR -p PORT -s SNI -P PATH -c THREADS -d SECONDS          TLS mode: TCP connect + full TLS handshake
 *                                                                       (no tickets, no resumption) + GET PATH
 *                                                                       (Connection: close) + read to EOF + close
 *   tlsconn -R -f HELLO.bin -n BYTES -a ADDR -p PORT -c THREADS -d SECONDS   raw mode: connect, write the canned
 *                                                                       ClientHello, read BYTES or EOF, close
 *
 *   TLS mode options: -C CERT.pem -K KEY.pem present a client certificate (mesh mTLS); -A kuma offers that ALPN.
 *
 * Each thread loops until the deadline; latency is connect() -> last byte. Prints one JSON line on stdout:
 * {"requests":N,"errors":E,"seconds":S,"rate":R,"p50_ms":..,"p99_ms":..,"bytes":B}. Every socket has 5 s timeouts.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *addr = "127.0.0.1", *sni = "a.test", *path = "/small", *hello_file = NULL;
static const char *cert_file = NULL, *key_file = NULL, *alpn = NULL;
static int port = 0, threads = 16, raw = 0;
static long expect_bytes = 1024;
static double duration = 5;
static unsigned char *hello = NULL;
static size_t hello_len = 0;
static SSL_CTX *ctx = NULL;
static struct sockaddr_in sa;
static double deadline;

typedef struct {
  uint32_t *lat; /* microseconds */
  size_t n, cap;
  long errors;
  long long bytes;
} stats_t;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void record(stats_t *st, double us) {
  if (st->n == st->cap) {
    st->cap = st->cap ? st->cap * 2 : 65536;
    st->lat = realloc(st->lat, st->cap * sizeof(uint32_t));
    if (!st->lat) { perror("realloc"); exit(1); }
  }
  st->lat[st->n++] = us > 4e9 ? 4000000000u : (uint32_t)us;
}

static int open_socket(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) { close(fd); return -1; }
  return fd;
}

/* One raw request: returns bytes read (>= expect_bytes on success) or -1. */
static long one_raw(void) {
  int fd = open_socket();
  if (fd < 0) return -1;
  size_t off = 0;
  while (off < hello_len) {
    ssize_t w = write(fd, hello + off, hello_len - off);
    if (w <= 0) { close(fd); return -1; }
    off += (size_t)w;
  }
  char buf[16384];
  long got = 0;
  for (;;) {
    ssize_t r = read(fd, buf, sizeof buf);
    if (r < 0) { close(fd); return -1; }
    if (r == 0) break;
    got += r;
    if (got >= expect_bytes) break;
  }
  close(fd);
  return got >= expect_bytes ? got : -1;
}

/* One TLS request: returns bytes read or -1 (handshake failure, non-200, short read). */
static long one_tls(void) {
  int fd = open_socket();
  if (fd < 0) return -1;
  SSL *ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  SSL_set_tlsext_host_name(ssl, sni);
  long got = -1;
  if (SSL_connect(ssl) == 1) {
    char req[512];
    int len = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, sni);
    if (SSL_write(ssl, req, len) == len) {
      char buf[16384];
      long total = 0;
      int ok200 = 0, first = 1;
      for (;;) {
        int r = SSL_read(ssl, buf, sizeof buf);
        if (r <= 0) break;
        if (first) { ok200 = r >= 12 && memcmp(buf, "HTTP/1.1 200", 12) == 0; first = 0; }
        total += r;
      }
      if (ok200) got = total;
    }
  }
  SSL_free(ssl);
  close(fd);
  ERR_clear_error();
  return got;
}

static void *worker(void *arg) {
  stats_t *st = arg;
  while (now() < deadline) {
    double t0 = now();
    long got = raw ? one_raw() : one_tls();
    double t1 = now();
    if (got < 0) { st->errors++; usleep(1000); continue; }
    if (t1 > deadline) break; /* only whole requests inside the window */
    st->bytes += got;
    record(st, (t1 - t0) * 1e6);
  }
  return NULL;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static int load_hello(void) {
  FILE *f = fopen(hello_file, "rb");
  if (!f) { perror(hello_file); return -1; }
  hello = malloc(65536);
  hello_len = fread(hello, 1, 65536, f);
  fclose(f);
  return hello_len > 0 ? 0 : -1;
}

int main(int argc, char **argv) {
  int opt;
  while ((opt = getopt(argc, argv, "a:p:s:P:c:d:Rf:n:C:K:A:")) != -1) {
    switch (opt) {
      case 'a': addr = optarg; break;
      case 'p': port = atoi(optarg); break;
      case 's': sni = optarg; break;
      case 'P': path = optarg; break;
      case 'c': threads = atoi(optarg); break;
      case 'd': duration = atof(optarg); break;
      case 'R': raw = 1; break;
      case 'f': hello_file = optarg; break;
      case 'n': expect_bytes = atol(optarg); break;
      case 'C': cert_file = optarg; break;
      case 'K': key_file = optarg; break;
      case 'A': alpn = optarg; break;
      default: fprintf(stderr, "usage: see the comment at the top of tlsconn.c\n"); return 2;
    }
  }
  if (port <= 0 || threads <= 0 || duration <= 0 || (raw && !hello_file)) { fprintf(stderr, "tlsconn: bad options\n"); return 2; }
  if (raw && load_hello() != 0) return 2;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) { fprintf(stderr, "tlsconn: bad address\n"); return 2; }
  if (!raw) {
    ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (cert_file && key_file) {
      if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1 || SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        fprintf(stderr, "tlsconn: cannot load -C/-K\n");
        return 2;
      }
    }
    if (alpn) {
      unsigned char protos[256];
      size_t len = strlen(alpn);
      if (len == 0 || len > 254) { fprintf(stderr, "tlsconn: bad -A\n"); return 2; }
      protos[0] = (unsigned char)len;
      memcpy(protos + 1, alpn, len);
      SSL_CTX_set_alpn_protos(ctx, protos, (unsigned)(len + 1));
    }
  }
  pthread_t *tids = calloc((size_t)threads, sizeof(pthread_t));
  stats_t *sts = calloc((size_t)threads, sizeof(stats_t));
  double start = now();
  deadline = start + duration;
  for (int i = 0; i < threads; i++) pthread_create(&tids[i], NULL, worker, &sts[i]);
  size_t n = 0;
  long errors = 0;
  long long bytes = 0;
  for (int i = 0; i < threads; i++) {
    pthread_join(tids[i], NULL);
    n += sts[i].n;
    errors += sts[i].errors;
    bytes += sts[i].bytes;
  }
  double secs = now() - start;
  uint32_t *all = malloc((n ? n : 1) * sizeof(uint32_t));
  size_t k = 0;
  for (int i = 0; i < threads; i++) { memcpy(all + k, sts[i].lat, sts[i].n * sizeof(uint32_t)); k += sts[i].n; }
  qsort(all, n, sizeof(uint32_t), cmp_u32);
  double p50 = n ? all[(size_t)(n * 0.50)] / 1000.0 : 0, p99 = n ? all[n * 99 / 100 < n ? n * 99 / 100 : n - 1] / 1000.0 : 0;
  printf("{\"requests\":%zu,\"errors\":%ld,\"seconds\":%.3f,\"rate\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"bytes\":%lld}\n",
         n, errors, secs, n / duration, p50, p99, bytes);
  return 0;
}
