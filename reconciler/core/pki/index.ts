/**
 * The mesh PKI of zonegate (one module, importable from tests of both halves): builtin CA creation, provided CA
 * checks, CSR verification and signing, workload certificates. See docs/mtls.md.
 */
export * from './ca.js'
export * from './keys.js'
export * from './sign.js'
