// Leaf certificates for the names norikae-splice terminates TLS for, signed by the local CA
// (local-ca.ts): minted on the first ClientHello for a name, one mint however many handshakes
// wait for it, kept in memory and on disk (`leaves/NAME.pem`, 0600), and minted again once less
// than a third of their validity is left. The caller decides which names may have one (the
// router's); a name the CA's constraints do not cover gets a CaError instead.

import { webcrypto } from 'node:crypto';
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createSecureContext, type SecureContext } from 'node:tls';
import { replaceFile } from './atomic-file.js';
import { caErrors } from './errors.js';
import { loadX509 } from './x509.js';
import { KEY_ALGORITHM, loadOrCreateCa, type LocalCa, permits, rootFile, serialNumber, SIGNING_ALGORITHM, withNewline } from './local-ca.js';

const DAY_MS = 24 * 60 * 60 * 1000;
/** What browsers accept at most for a TLS server certificate (Apple's 398-day rule, less a day). */
export const MAX_LEAF_DAYS = 397;
export const DEFAULT_LEAF_DAYS = 365;
/** Leaves kept in memory: a `*.localhost` wildcard could otherwise grow the map without bound. */
const MEMORY_LIMIT = 512;
/** How often (at most) the root file is looked at, to notice a `trust --renew` by another process. */
const CA_CHECK_MS = 1000;

/** A leaf certificate and its key, as PEM, with its validity. */
export interface Leaf {
  name: string;
  certPem: string;
  keyPem: string;
  notBefore: number;
  notAfter: number;
  serial: string;
}

export interface CertificatesOptions {
  /** The CA's folder (dataDir()). */
  dir: string;
  /** The configured host names: what a CA made now must cover. */
  hosts: () => Iterable<string>;
  /** Days a new leaf is valid (at most MAX_LEAF_DAYS). */
  leafDays?: number;
  /** The wall clock, in ms since the epoch (tests move it). */
  now?: () => number;
}

/** Signs a leaf for `name` with `ca`, valid `days` from `now`. Checks no constraint: `Certificates` does. */
export async function mintLeaf(ca: LocalCa, name: string, now = Date.now(), days = DEFAULT_LEAF_DAYS): Promise<Leaf> {
  if (!(days > 0 && days <= MAX_LEAF_DAYS)) throw new RangeError(`a leaf may be valid for at most ${MAX_LEAF_DAYS} days, not ${days}`);
  const { x509 } = await loadX509();
  const keys = await webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify']) as webcrypto.CryptoKeyPair;
  const notBefore = now - 60 * 60 * 1000;
  const notAfter = now + days * DAY_MS;
  const serial = serialNumber();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial,
    subject: [{ CN: [name] }],
    issuer: ca.root.subject,
    notBefore: new Date(notBefore),
    notAfter: new Date(notAfter),
    signingKey: ca.key,
    publicKey: keys.publicKey,
    signingAlgorithm: SIGNING_ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: name }]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(ca.root),
    ],
  });
  const keyPem = withNewline(x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY'));
  return { name, certPem: withNewline(cert.toString('pem')), keyPem, notBefore: cert.notBefore.getTime(), notAfter: cert.notAfter.getTime(), serial };
}

/** The leaves of one CA folder: minting, caching, renewal. */
export class Certificates {
  private ca: Promise<LocalCa> | undefined;
  /** The root file's identity when `ca` was read: a change means another CA. */
  private caStamp = '';
  private caCheckedAt = -Infinity;
  private readonly leaves = new Map<string, { leaf: Leaf; context: SecureContext }>();
  private readonly minting = new Map<string, Promise<{ leaf: Leaf; context: SecureContext }>>();
  /** Leaves signed by this process: what the tests count. */
  minted = 0;
  private readonly now: () => number;
  private readonly leafDays: number;

  constructor(private readonly options: CertificatesOptions) {
    this.now = options.now ?? Date.now;
    this.leafDays = options.leafDays ?? DEFAULT_LEAF_DAYS;
  }

  get dir(): string {
    return this.options.dir;
  }

  /** The CA, made for the configured names when there is none yet (one load for all callers). */
  authority(): Promise<LocalCa> {
    this.noticeRenewedCa();
    if (this.ca === undefined) {
      const loading = loadOrCreateCa(this.options.dir, this.options.hosts()).then((ca) => {
        this.caStamp = stampOf(rootFile(this.options.dir));
        return ca;
      });
      this.ca = loading;
      // A failed load is tried again by the next handshake.
      loading.catch(() => {
        if (this.ca === loading) this.ca = undefined;
      });
    }
    return this.ca;
  }

  /** The TLS context for `name` (a host a service claims), minting its leaf when needed. */
  async secureContext(name: string): Promise<SecureContext> {
    return (await this.entry(name)).context;
  }

  /** The current leaf for `name`, minting it when needed. */
  async leaf(name: string): Promise<Leaf> {
    return (await this.entry(name)).leaf;
  }

  private entry(name: string): Promise<{ leaf: Leaf; context: SecureContext }> {
    this.noticeRenewedCa();
    const cached = this.leaves.get(name);
    if (cached !== undefined && this.fresh(cached.leaf)) return Promise.resolve(cached);
    let pending = this.minting.get(name);
    if (pending === undefined) {
      pending = this.obtain(name).finally(() => this.minting.delete(name));
      this.minting.set(name, pending);
    }
    return pending;
  }

  /** From disk when a fresh leaf of this CA is there, else a new one (written to disk). */
  private async obtain(name: string): Promise<{ leaf: Leaf; context: SecureContext }> {
    const ca = await this.authority();
    if (!permits(ca, name)) throw caErrors.outsideConstraints(name, ca.permittedNames);
    const file = join(this.options.dir, 'leaves', `${name}.pem`);
    let leaf = await this.fromDisk(file, ca, name);
    if (leaf === undefined) {
      leaf = await mintLeaf(ca, name, this.now(), this.leafDays);
      this.minted++;
      mkdirSync(join(this.options.dir, 'leaves'), { recursive: true, mode: 0o700 });
      replaceFile(file, `${leaf.certPem}${leaf.keyPem}`, 0o600);
    }
    const entry = { leaf, context: createSecureContext({ cert: leaf.certPem, key: leaf.keyPem }) };
    this.leaves.delete(name);
    if (this.leaves.size >= MEMORY_LIMIT) this.leaves.delete(this.leaves.keys().next().value!);
    this.leaves.set(name, entry);
    return entry;
  }

  /** The leaf in `file` when it is for `name`, signed by `ca` and fresh; undefined otherwise. */
  private async fromDisk(file: string, ca: LocalCa, name: string): Promise<Leaf | undefined> {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      return undefined;
    }
    try {
      const certPem = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----\n?/.exec(text)?.[0];
      const keyPem = /-----BEGIN PRIVATE KEY-----[^-]+-----END PRIVATE KEY-----\n?/.exec(text)?.[0];
      if (certPem === undefined || keyPem === undefined) return undefined;
      const { x509 } = await loadX509();
      const cert = new x509.X509Certificate(certPem);
      const leaf = { name, certPem, keyPem, notBefore: cert.notBefore.getTime(), notAfter: cert.notAfter.getTime(), serial: cert.serialNumber };
      const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
      const forName = san?.names.items.some((item) => item.type === 'dns' && item.value === name) === true;
      if (!forName || !this.fresh(leaf) || !(await cert.verify({ publicKey: ca.root.publicKey, signatureOnly: true }))) return undefined;
      return leaf;
    } catch {
      return undefined;
    }
  }

  /** Whether more than a third of the leaf's validity is left. */
  private fresh(leaf: Leaf): boolean {
    return this.now() < leaf.notAfter - (leaf.notAfter - leaf.notBefore) / 3;
  }

  /** Forgets the CA and its leaves when its root file changed on disk (a `trust --renew`). */
  private noticeRenewedCa(): void {
    if (this.ca === undefined || performance.now() - this.caCheckedAt < CA_CHECK_MS) return;
    this.caCheckedAt = performance.now();
    if (stampOf(rootFile(this.options.dir)) === this.caStamp) return;
    this.ca = undefined;
    this.leaves.clear();
  }
}

/** A file's identity and change time, '' when it is missing. */
function stampOf(file: string): string {
  try {
    const stat = statSync(file);
    return `${stat.ino}:${stat.mtimeMs}`;
  } catch {
    return '';
  }
}
