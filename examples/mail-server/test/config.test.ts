import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword, Secret } from '@pigeonpost/wire';
import { applyConfigFile, ConfigError, configFromEnv, defaultConfig, loadConfig } from '../src/config.js';
import { ensureDevUsers, UserDirectory } from '../src/users.js';

describe('configuration', () => {
  let dir: string;
  let hash: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pigeonpost-config-'));
    hash = await hashPassword(new Secret('pw'), { ln: 10 });
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('runs on embedded defaults: the classic seven ports, one local domain, development users', () => {
    expect(defaultConfig.services.map((s) => [s.name, s.port, s.role, s.implicitTls])).toEqual([
      ['smtp', 2525, 'mx', false],
      ['submission', 2587, 'submission', false],
      ['smtps', 2465, 'submission', true],
      ['pop3', 2110, 'pop3', false],
      ['pop3s', 2995, 'pop3', true],
      ['imap', 2143, 'imap', false],
      ['imaps', 2993, 'imap', true],
    ]);
    expect(defaultConfig.domains).toEqual(['localhost.test']);
    expect(defaultConfig.users).toBeUndefined();
    expect(defaultConfig.listen).toEqual(['127.0.0.1']);
  });

  it('reads a config file: domains, users with aliases, ports, relay routing', () => {
    const config = applyConfigFile({
      hostname: 'mail.example.org',
      domains: ['Example.org', 'example.net'],
      users: [{ address: 'Tim@example.org', passwordHash: hash, aliases: ['postmaster@example.net'] }],
      ports: { smtp: 25, imaps: 0 },
      relay: { dnsServers: ['127.0.0.1:5353'], mxPort: 2500, transport: { 'partner.example': { host: '10.0.0.5', port: 2525 } } },
    });
    expect(config.domains).toEqual(['example.org', 'example.net']);
    expect(config.users).toEqual([{ address: 'tim@example.org', passwordHash: hash, aliases: ['postmaster@example.net'] }]);
    expect(config.services.find((s) => s.name === 'smtp')?.port).toBe(25);
    expect(config.services.find((s) => s.name === 'submission')?.port).toBe(2587);
    expect(config.relay).toMatchObject({ mxPort: 2500, tlsPolicy: 'opportunistic', transport: { 'partner.example': { host: '10.0.0.5', port: 2525 } } });
  });

  it.each([
    [{ domian: ['x.test'] }, /unknown key "domian"/],
    [{ users: [{ address: 'a@elsewhere.test', passwordHash: '$scrypt$x' }] }, /users\[0\]\.address: "a@elsewhere\.test" is not in the local domains/],
    [{ users: [{ address: 'a@localhost.test', passwordHash: 'plain text' }] }, /users\[0\]\.passwordHash: must come from hashPassword/],
    [{ users: [{ address: 'a@localhost.test', passwordHash: '$scrypt$x' }, { address: 'b@localhost.test', passwordHash: '$scrypt$x', aliases: ['a@localhost.test'] }] }, /belongs to two users/],
    [{ ports: { smtp: 70000 } }, /ports\.smtp: must be an integer from 0 to 65535/],
    [{ ports: { lmtp: 24 } }, /unknown key "lmtp"/],
    [{ relay: { tlsPolicy: 'maybe' } }, /relay\.tlsPolicy/],
    [{ domains: [] }, /at least one local domain/],
    [{ domains: ['not a domain'] }, /is not a domain name/],
    [[], /must be a JSON object/],
  ])('refuses a bad config file with the field named: %j', (file, message) => {
    expect(() => applyConfigFile(file)).toThrow(ConfigError);
    expect(() => applyConfigFile(file)).toThrow(message);
  });

  it('finds the file in the data directory or through PIGEONPOST_CONFIG, and the environment wins', async () => {
    await writeFile(join(dir, 'config.json'), JSON.stringify({ hostname: 'mail.example.org', domains: ['example.org'] }));
    const { config, file } = loadConfig({ PIGEONPOST_DATA_DIR: dir, PIGEONPOST_PORT_OFFSET: '10000' });
    expect(file).toBe(join(dir, 'config.json'));
    expect(config.domains).toEqual(['example.org']);
    expect(config.services.find((s) => s.name === 'smtp')?.port).toBe(12525);
    expect(loadConfig({ PIGEONPOST_DATA_DIR: dir, PIGEONPOST_HOSTNAME: 'other.example.org' }).config.hostname).toBe('other.example.org');
    expect(loadConfig({ PIGEONPOST_DATA_DIR: join(dir, 'none') }).file).toBeUndefined();
    expect(() => loadConfig({ PIGEONPOST_CONFIG: join(dir, 'missing.json') })).toThrow(/missing\.json: ENOENT/);
    await writeFile(join(dir, 'broken.json'), '{ "hostname": ');
    expect(() => loadConfig({ PIGEONPOST_CONFIG: join(dir, 'broken.json') })).toThrow(ConfigError);
    expect(() => configFromEnv({ PIGEONPOST_PORT_OFFSET: 'ten' })).toThrow(/PIGEONPOST_PORT_OFFSET/);
  });

  it('keeps development users and their passwords from one start to the next', async () => {
    const first = await ensureDevUsers(join(dir, 'dev'), 'localhost.test');
    const second = await ensureDevUsers(join(dir, 'dev'), 'localhost.test');
    expect(second).toEqual(first);
    expect(new Set(first.map((u) => u.password)).size).toBe(2);
    expect(first.every((u) => u.password.length >= 16)).toBe(true);
  });

  it('looks users up by address and alias, case-insensitively, and checks passwords', async () => {
    const users = new UserDirectory(['example.org'], [{ address: 'tim@example.org', passwordHash: hash, aliases: ['postmaster@example.org'] }]);
    expect(users.storeUserFor('Postmaster@Example.ORG')).toBe('tim@example.org');
    expect(users.storeUserFor('nobody@example.org')).toBeUndefined();
    expect(users.storeUserForLogin('postmaster@example.org')).toBeUndefined(); // aliases receive, they do not log in
    expect(users.mayUseSender('tim@example.org', 'postmaster@example.org')).toBe(true);
    expect(users.mayUseSender('tim@example.org', 'other@example.org')).toBe(false);
    expect(await users.verify('TIM@example.org', new Secret('pw'))).toBe(true);
    expect(await users.verify('tim@example.org', new Secret('nope'))).toBe(false);
    expect(await users.verify('nobody@example.org', new Secret('pw'))).toBe(false);
  });
});
