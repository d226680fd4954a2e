import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { lookup } from 'node:dns/promises';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { canonicalHost, findAddressClash, formatAddress, hostToDial, isLoopback, parseListenAddress, portSuffix, resolveAddressPlan, serviceUrl } from '../lib/address.js';
import { checkResolvedAddresses, loadConfig, parseConfig } from '../lib/config-file.js';
import { ConfigError } from '../lib/errors.js';

describe('parseListenAddress and formatAddress', () => {
  test('accepts ports, host:port and bracketed IPv6', () => {
    assert.deepEqual(parseListenAddress(8080), { host: '127.0.0.1', port: 8080 });
    assert.deepEqual(parseListenAddress('8080'), { host: '127.0.0.1', port: 8080 });
    assert.deepEqual(parseListenAddress('0.0.0.0:80'), { host: '0.0.0.0', port: 80 });
    assert.deepEqual(parseListenAddress('[::1]:8080'), { host: '::1', port: 8080 });
    assert.deepEqual(parseListenAddress('localhost:8080'), { host: 'localhost', port: 8080 });
    assert.equal(typeof parseListenAddress('::1:8080'), 'string');
    assert.equal(typeof parseListenAddress(':8080'), 'string');
    assert.equal(typeof parseListenAddress(true), 'string');
    assert.equal(typeof parseListenAddress(65536), 'string');
  });

  test('IPv6 is shown in brackets, everything else as host:port', () => {
    assert.equal(formatAddress({ host: '::1', port: 8080 }), '[::1]:8080');
    assert.equal(formatAddress({ host: '127.0.0.1', port: 80 }), '127.0.0.1:80');
    assert.equal(formatAddress({ host: 'localhost', port: 0 }), 'localhost:0');
  });
});

describe('how a listener is reached', () => {
  test('a wildcard is dialled on loopback of its family; any other host as it is', () => {
    assert.equal(hostToDial('0.0.0.0'), '127.0.0.1');
    assert.equal(hostToDial('::'), '::1');
    assert.equal(hostToDial('127.0.0.2'), '127.0.0.2');
    assert.equal(hostToDial('localhost'), 'localhost');
  });

  test('loopback is 127/8, ::1 and localhost; a wildcard or another address is not', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', '::1', 'localhost']) assert.equal(isLoopback(host), true, host);
    for (const host of ['0.0.0.0', '::', '192.168.1.2', 'example.test']) assert.equal(isLoopback(host), false, host);
  });

  test('a URL leaves out :80 (and a port not known), and keeps any other', () => {
    assert.equal(portSuffix(80), '');
    assert.equal(portSuffix(undefined), '');
    assert.equal(portSuffix(8080), ':8080');
    assert.equal(serviceUrl('web.localhost', 80), 'http://web.localhost');
    assert.equal(serviceUrl('web.localhost', 8080), 'http://web.localhost:8080');
    assert.equal(serviceUrl('*.py.localhost', 8080), 'http://*.py.localhost:8080');
  });
});

describe('findAddressClash', () => {
  const service = (name: string, fields: { listen?: { host: string; port: number }[]; port?: number; upstream?: string }) => ({
    name, listen: fields.listen ?? [], port: fields.port, upstream: fields.upstream,
  });

  test('a wildcard covers its own family only', () => {
    const clash = findAddressClash({ listen: [{ host: '0.0.0.0', port: 8080 }], services: [service('db', { listen: [{ host: '127.0.0.1', port: 8080 }], port: 5432 })] });
    assert.deepEqual(clash?.path, ['service', 'db', 'listen']);
    assert.equal(findAddressClash({ listen: [{ host: '::', port: 8080 }], services: [service('db', { listen: [{ host: '127.0.0.1', port: 8080 }], port: 5432 })] }), undefined);
  });

  test('an upstream that is a listener of norikae is named at the service\'s port, with where the listener came from', () => {
    const plan = { listen: [{ host: '127.0.0.1', port: 8080 }], services: [service('web', { port: 8080 })] };
    assert.match(findAddressClash(plan, 'cli')!.message, /port 8080 is the --listen of norikae-splice \(127\.0\.0\.1:8080\)/);
    assert.deepEqual(findAddressClash(plan, 'running')!.path, ['service', 'web', 'port']);
    assert.equal(findAddressClash({ ...plan, services: [service('web', { port: 8080, upstream: '10.0.0.2' })] }), undefined);
  });

  test('among many services, the one whose port is a listener (of norikae or of a service) is named; a listener on port 0 reaches none', () => {
    const many = Array.from({ length: 1000 }, (_, i) => service(`s${i}`, { port: 20000 + i }));
    const plan = { listen: [{ host: '127.0.0.1', port: 8080 }], services: [...many, service('db', { listen: [{ host: '127.0.0.1', port: 20500 }, { host: '127.0.0.1', port: 0 }] })] };
    assert.deepEqual(findAddressClash(plan)?.path, ['service', 's500', 'port']);
    assert.match(findAddressClash(plan)!.message, /port 20500 is the `listen` of service "db" \(127\.0\.0\.1:20500\)/);
    assert.equal(findAddressClash({ ...plan, services: [...many, service('db', { listen: [{ host: '127.0.0.1', port: 0 }] })] }), undefined);
    assert.equal(findAddressClash({ listen: [{ host: '127.0.0.1', port: 0 }], services: [service('web', { port: 0 })] }), undefined);
  });

  test('an upstream spelt otherwise than the listener (Localhost, 127.1, 2130706433, ::ffff:127.0.0.1, IPv6 in full) is still norikae itself', () => {
    for (const [listen, upstream] of [
      ['127.0.0.1', 'Localhost'], ['127.0.0.1', 'LOCALHOST.'], ['127.0.0.1', '127.1'], ['127.0.0.1', '2130706433'], ['127.0.0.1', '0x7f.0.0.1'],
      ['127.0.0.1', '::ffff:127.0.0.1'], ['0.0.0.0', '127.1'], ['::1', '0:0:0:0:0:0:0:1'], ['::', '0::1'],
    ] as const) {
      const plan = { listen: [{ host: listen, port: 8080 }], services: [service('web', { port: 8080, upstream })] };
      assert.match(findAddressClash(plan)?.message ?? '', /would connect back to norikae-splice/, `${upstream} on a listener on ${listen}`);
    }
    assert.equal(findAddressClash({ listen: [{ host: '127.0.0.1', port: 8080 }], services: [service('web', { port: 8080, upstream: '10.1' })] }), undefined);
    assert.equal(canonicalHost('::FFFF:7f00:1'), '127.0.0.1');
    assert.equal(canonicalHost('db.internal'), 'db.internal');
  });

  test('parseConfig refuses such an upstream with the position of the service\'s port', () => {
    assert.throws(() => parseConfig('listen = "127.0.0.1:8080"\n[service.web]\nupstream = "127.1"\nport = 8080\n', '/c.toml'), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /^\/c\.toml:4:1: port 8080 is the `listen` of norikae-splice \(127\.0\.0\.1:8080\), so "web" would connect back/);
      return true;
    });
  });

  test('a wildcard listener is reached on each of this machine\'s addresses: one as the upstream on its port is refused', async (t) => {
    const addresses = Object.values(networkInterfaces()).flatMap((list) => list ?? []).filter((entry) => !entry.internal && !entry.address.includes('%'));
    const v4 = addresses.find((entry) => entry.family === 'IPv4')?.address;
    const v6 = addresses.find((entry) => entry.family === 'IPv6' && !entry.address.startsWith('fe80:'))?.address;
    if (v4 === undefined && v6 === undefined) {
      t.skip('this machine has no address besides loopback');
      return;
    }
    for (const [wildcard, address] of [['0.0.0.0', v4], ['::', v6]] as const) {
      if (address === undefined) continue;
      const config = parseConfig(`listen = "${formatAddress({ host: wildcard, port: 8080 })}"\n[service.web]\nupstream = "${address}"\nport = 8080\n`, '/c.toml');
      const resolved = await resolveAddressPlan(config);
      assert.ok(resolved.own.has(canonicalHost(address)), `${address} is one of this machine's addresses`);
      assert.match(findAddressClash(config, 'file', resolved)?.message ?? '', /port 8080 is the `listen` of norikae-splice .*so "web" would connect back/, address);
      await assert.rejects(checkResolvedAddresses(config, 'file'), ConfigError);
      // Without what was resolved, an address that is not loopback is another machine's.
      assert.equal(findAddressClash(config, 'file'), undefined);
      // A listener on loopback only is not reached on it.
      const loopback = parseConfig(`listen = "${wildcard === '::' ? '[::1]' : '127.0.0.1'}:8080"\n[service.web]\nupstream = "${address}"\nport = 8080\n`, '/c.toml');
      assert.equal(findAddressClash(loopback, 'file', await resolveAddressPlan(loopback)), undefined);
    }
  });

  test('a name is resolved at start and check: the machine\'s own host name on norikae\'s port is refused, with its position', async (t) => {
    const name = hostname();
    try {
      await lookup(name);
    } catch {
      t.skip(`the host name ${name} does not resolve on this machine`);
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), 'norikae-address-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'norikae.toml');
    writeFileSync(file, `listen = "0.0.0.0:8080"\n[service.web]\nupstream = "${name}"\nport = 8080\n`);
    // The text alone does not show it: the config loads.
    const config = loadConfig(file);
    await assert.rejects(checkResolvedAddresses(config, 'file'), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, new RegExp(`^${file.replaceAll('.', '\\.')}:4:1: port 8080 is the \`listen\` of norikae-splice \\(0\\.0\\.0\\.0:8080\\), so "web" would connect back`));
      return true;
    });
    const resolved = await resolveAddressPlan(config);
    assert.ok((resolved.names.get(name.toLowerCase()) ?? []).length > 0);
    // On another port, or a listener on loopback only when the name is not a loopback address, nothing clashes.
    writeFileSync(file, `listen = "0.0.0.0:8080"\n[service.web]\nupstream = "${name}"\nport = 8081\n`);
    await checkResolvedAddresses(loadConfig(file), 'file');
  });
});
