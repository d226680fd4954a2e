// The local certificate authority: one ECDSA P-256 key and a self-signed root, created on first
// need under $XDG_DATA_HOME/norikae/ (the key file 0600, its folder 0700). The root carries a
// critical Name Constraints extension, so that even its key, if stolen, cannot sign for a real
// site: only `localhost` and its subdomains, the suffixes of the configured names that are not
// under `localhost` (`test` for `app.test`, the name itself under a public suffix), 127.0.0.0/8
// and ::1. Which names it covers is read back from the root itself: nothing else is kept.

import { createPublicKey, randomBytes, webcrypto } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { homedir, hostname, userInfo } from 'node:os';
import { join } from 'node:path';
import { replaceFile } from './atomic-file.js';
import { expandHome } from './config.js';
import { caErrors } from './errors.js';
import { loadX509, type X509Certificate, type X509Extension, type X509Kit } from './x509.js';

/** ECDSA P-256 signing with SHA-256: what every browser and OpenSSL accept. */
export const KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;
export const SIGNING_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const;

/** Top-level names reserved for private use (RFC 6761, RFC 2606, RFC 6762, ICANN's .internal): nobody can register under them. */
export const PRIVATE_TLDS = ['localhost', 'test', 'example', 'invalid', 'local', 'internal', 'lan', 'home.arpa'];
/** The addresses a leaf may name besides DNS names (CIDR). */
const PERMITTED_ADDRESSES = ['127.0.0.0/8', '::1/128'];
const ROOT_YEARS = 10;

export const ROOT_FILE = 'root-ca.pem';
export const KEY_FILE = 'root-ca-key.pem';

/** A loaded CA: its root, its signing key, and the DNS subtrees the root permits. */
export interface LocalCa {
  readonly dir: string;
  readonly root: X509Certificate;
  readonly rootPem: string;
  readonly key: webcrypto.CryptoKey;
  /** The permitted DNS subtrees, from the root's Name Constraints. */
  readonly permittedNames: readonly string[];
}

/** $XDG_DATA_HOME/norikae (~/.local/share/norikae): the local CA and its leaves. */
export function dataDir(env = process.env): string {
  const base = env.XDG_DATA_HOME ? expandHome(env.XDG_DATA_HOME) : join(homedir(), '.local', 'share');
  return join(base, 'norikae');
}

/** The root's file in `dir` (what NODE_EXTRA_CA_CERTS and the trust stores are given). */
export function rootFile(dir: string): string {
  return join(dir, ROOT_FILE);
}

/**
 * The DNS subtrees that cover `hosts` (configured names, `*.` allowed): `localhost` always; for
 * a name under another private top-level name, that name (`app.test` → `test`); for any other
 * name, the name itself (`*.dev.example.com` → `dev.example.com`), as no public suffix may be
 * permitted whole. Sorted, without one covered by another.
 */
export function subtreesFor(hosts: Iterable<string>): string[] {
  const wanted = new Set(['localhost']);
  for (const host of hosts) {
    const bare = host.startsWith('*.') ? host.slice(2) : host;
    const tld = PRIVATE_TLDS.find((suffix) => bare === suffix || bare.endsWith(`.${suffix}`));
    wanted.add(tld ?? bare);
  }
  return [...wanted].filter((name) => ![...wanted].some((other) => other !== name && within(name, other))).sort();
}

/** Whether `name` is `subtree` or under it, as a DNS name constraint reads (RFC 5280 §4.2.1.10). */
export function within(name: string, subtree: string): boolean {
  return name === subtree || name.endsWith(`.${subtree}`);
}

/** Whether the CA may sign for `name` (a host name, no `*.`). */
export function permits(ca: LocalCa, name: string): boolean {
  return ca.permittedNames.some((subtree) => within(name, subtree));
}

/** The CA in `dir`, or undefined when there is none yet. Throws a CaError when its files are unusable. */
export async function loadCa(dir: string): Promise<LocalCa | undefined> {
  let rootPem: string;
  let keyPem: string;
  try {
    rootPem = readFileSync(rootFile(dir), 'utf8');
    keyPem = readFileSync(join(dir, KEY_FILE), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw caErrors.unreadable(dir, (err as Error).message);
  }
  try {
    const kit = await loadX509();
    const root = new kit.x509.X509Certificate(rootPem);
    // A key that is not the root's (two processes created the CA at once, or a file was replaced) would mint leaves nobody trusts.
    const spki = createPublicKey(keyPem).export({ type: 'spki', format: 'der' });
    if (!Buffer.from(root.publicKey.rawData).equals(spki)) throw new Error('the key is not the root certificate\'s');
    const der = kit.x509.PemConverter.decodeFirst(keyPem);
    const key = await webcrypto.subtle.importKey('pkcs8', der, KEY_ALGORITHM, false, ['sign']);
    return { dir, root, rootPem, key, permittedNames: readPermittedNames(kit, root) };
  } catch (err) {
    throw caErrors.unreadable(dir, (err as Error).message);
  }
}

/** The CA in `dir`, created for `hosts` when there is none. */
export async function loadOrCreateCa(dir: string, hosts: Iterable<string>): Promise<LocalCa> {
  return (await loadCa(dir)) ?? createCa(dir, hosts);
}

/**
 * Makes a new CA in `dir` for `hosts` (replacing one there): a new key, and a root named for
 * this user and machine whose Name Constraints cover `subtreesFor(hosts)`.
 */
export async function createCa(dir: string, hosts: Iterable<string>): Promise<LocalCa> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const names = subtreesFor(hosts);
  const kit = await loadX509();
  const { x509 } = kit;
  const keys = await webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify']) as webcrypto.CryptoKeyPair;
  const now = Date.now();
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: [{ CN: [`norikae-splice local CA (${userName()}@${hostname()})`] }, { O: ['norikae-splice development CA'] }],
    // A little in the past: a clock a minute behind must not see a root from the future.
    notBefore: new Date(now - 60 * 60 * 1000),
    notAfter: new Date(now + ROOT_YEARS * 365 * 24 * 60 * 60 * 1000),
    keys,
    signingAlgorithm: SIGNING_ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      nameConstraints(kit, names),
    ],
  });
  const keyPem = withNewline(x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY'));
  const rootPem = withNewline(root.toString('pem'));
  // Key first, each written whole and renamed into place: a reader never sees half a file.
  replaceFile(join(dir, KEY_FILE), keyPem, 0o600);
  replaceFile(rootFile(dir), rootPem, 0o644);
  return { dir, root, rootPem, key: keys.privateKey, permittedNames: names };
}

/** Removes the CA's files (and the leaves it signed) from `dir`. */
export function removeCa(dir: string): void {
  rmSync(join(dir, KEY_FILE), { force: true });
  rmSync(rootFile(dir), { force: true });
  rmSync(join(dir, 'leaves'), { recursive: true, force: true });
}

/** The critical Name Constraints of the root: DNS subtrees and loopback addresses. */
export function nameConstraints({ x509, asn1, asn1X509 }: X509Kit, dnsNames: readonly string[]): X509Extension {
  const { GeneralName, GeneralSubtree, GeneralSubtrees, id_ce_nameConstraints, NameConstraints } = asn1X509;
  const permitted = new GeneralSubtrees([
    ...dnsNames.map((dNSName) => new GeneralSubtree({ base: new GeneralName({ dNSName }) })),
    ...PERMITTED_ADDRESSES.map((iPAddress) => new GeneralSubtree({ base: new GeneralName({ iPAddress }) })),
  ]);
  return new x509.Extension(id_ce_nameConstraints, true, asn1.AsnConvert.serialize(new NameConstraints({ permittedSubtrees: permitted })));
}

/** The permitted DNS subtrees of a root; empty when it has no Name Constraints (then it may sign nothing of ours). */
function readPermittedNames({ asn1, asn1X509 }: X509Kit, root: X509Certificate): string[] {
  const extension = root.getExtension(asn1X509.id_ce_nameConstraints);
  if (extension === null) return [];
  const constraints = asn1.AsnConvert.parse(extension.value, asn1X509.NameConstraints);
  return [...(constraints.permittedSubtrees ?? [])].flatMap((subtree) => (subtree.base.dNSName === undefined ? [] : [subtree.base.dNSName.toLowerCase()]));
}

/**
 * A positive 128-bit serial number, 126 bits of it random (RFC 5280 wants at least 64 bits
 * unpredictable). Its first byte is 0x40 to 0x7f: positive, and never 0, which DER would drop, so
 * the certificate read back gives the same hex (1 serial in 128 used to lose its leading `00`).
 */
export function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x3f) | 0x40;
  return bytes.toString('hex');
}

/** PEM text as a file holds it: ending in a newline (x509's toString leaves it off). */
export function withNewline(pem: string): string {
  return pem.endsWith('\n') ? pem : `${pem}\n`;
}

function userName(): string {
  try {
    return userInfo().username;
  } catch {
    return process.env.USER ?? 'user';
  }
}
