// The Keycloak adapter's HTTP side against a fake Keycloak (no Java): the
// client-credentials token is reused until shortly before it expires and then
// renewed, a 401 gets one fresh token, errors map to retryable or not, and a
// caFile makes a certificate from a private CA trusted.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createKeycloakProvider } from '../../src/identity/keycloak.ts';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

async function listen(server: Server): Promise<string> {
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return String((server.address() as { port: number }).port);
}

/** A token whose payload carries the realm-management roles Usher needs. */
function token(n: number): string {
  const payload = Buffer.from(JSON.stringify({ n, resource_access: { 'realm-management': { roles: ['manage-users'] } } })).toString('base64url');
  return `e30.${payload}.sig`;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

/** Token endpoint (expires_in as given), the user profile, and a users search that answers with an empty list, or 401 for tokens in `revoked`. */
function fakeKeycloak(expiresIn: number, revoked = new Set<string>()): { handler: Handler; tokenRequests: () => number; authorizations: string[] } {
  let issued = 0;
  const authorizations: string[] = [];
  const handler: Handler = (req, res) => {
    if (req.method === 'POST' && req.url === '/realms/r/protocol/openid-connect/token') {
      issued++;
      json(res, 200, { access_token: token(issued), expires_in: expiresIn, token_type: 'Bearer' });
      return;
    }
    if (req.url === '/admin/realms/r/users/profile') {
      json(res, 200, { unmanagedAttributePolicy: 'ADMIN_EDIT', attributes: [] });
      return;
    }
    if (req.url?.startsWith('/admin/realms/r/users')) {
      const auth = req.headers.authorization ?? '';
      authorizations.push(auth);
      if (revoked.has(auth.replace(/^Bearer /, ''))) json(res, 401, { error: 'HTTP 401 Unauthorized' });
      else json(res, 200, []);
      return;
    }
    json(res, 404, { error: 'not here' });
  };
  return { handler, tokenRequests: () => issued, authorizations };
}

const config = { realm: 'r', clientId: 'usher', clientSecret: 's3cret' };

describe('the Keycloak adapter over HTTP', () => {
  it('reuses its token until shortly before it expires, then gets a new one (client credentials have no refresh token)', async () => {
    const fake = fakeKeycloak(2); // renewed after half its life when that is shorter than the 30 s margin: after 1 s
    const url = `http://127.0.0.1:${await listen(createHttpServer(fake.handler))}`;
    const provider = createKeycloakProvider({ ...config, url });
    await provider.findByEmail('a@example.com');
    await provider.findByEmail('b@example.com');
    expect(fake.tokenRequests()).toBe(1);
    await new Promise((r) => setTimeout(r, 1100));
    await provider.findByEmail('c@example.com');
    expect(fake.tokenRequests()).toBe(2);
    expect(fake.authorizations).toEqual([`Bearer ${token(1)}`, `Bearer ${token(1)}`, `Bearer ${token(2)}`]);
  });

  it('a token refused before it expires (revoked, Keycloak restarted) is replaced once', async () => {
    const revoked = new Set([token(1)]);
    const fake = fakeKeycloak(300, revoked);
    const url = `http://127.0.0.1:${await listen(createHttpServer(fake.handler))}`;
    const provider = createKeycloakProvider({ ...config, url });
    expect(await provider.findByEmail('a@example.com')).toBeUndefined();
    expect(fake.tokenRequests()).toBe(2);
    revoked.add(token(2));
    revoked.add(token(3));
    await expect(provider.findByEmail('a@example.com')).rejects.toMatchObject({
      retryable: false,
      message: expect.stringMatching(/refused \(401\)/) as unknown,
    });
  });

  it('5xx is retryable, 403 is not and names the role', async () => {
    let status = 503;
    const handler: Handler = (req, res) => {
      if (req.url?.endsWith('/token')) json(res, 200, { access_token: token(1), expires_in: 300 });
      else json(res, status, { error: 'nope' });
    };
    const url = `http://127.0.0.1:${await listen(createHttpServer(handler))}`;
    const provider = createKeycloakProvider({ ...config, url });
    await expect(provider.findByEmail('a@example.com')).rejects.toMatchObject({ retryable: true, message: expect.stringMatching(/\(503 nope\)/) as unknown });
    status = 403;
    await expect(provider.findByEmail('a@example.com')).rejects.toMatchObject({
      retryable: false,
      message: expect.stringMatching(
        /client usher may not find accounts by email \(403\): give its service account the realm-management role manage-users/,
      ) as unknown,
    });
  });

  it('check() names a service account without manage-users', async () => {
    const handler: Handler = (req, res) => {
      const payload = Buffer.from(JSON.stringify({ resource_access: { 'realm-management': { roles: ['view-users'] } } })).toString('base64url');
      json(res, 200, { access_token: `e30.${payload}.sig`, expires_in: 300 });
    };
    const url = `http://127.0.0.1:${await listen(createHttpServer(handler))}`;
    expect(await createKeycloakProvider({ ...config, url }).check()).toEqual({
      ok: false,
      reason: `keycloak at ${url} realm r: client usher's service account lacks the realm-management role manage-users`,
    });
  });

  it.skipIf(!hasOpenssl())('with caFile a certificate from a private CA is trusted; without it the reason says to set caFile', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'usher-kc-tls-'));
    try {
      execFileSync(
        'openssl',
        ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=Usher test CA', '-addext', 'subjectAltName=IP:127.0.0.1'].concat([
          '-keyout',
          join(dir, 'key.pem'),
          '-out',
          join(dir, 'cert.pem'),
        ]),
        { stdio: 'ignore' },
      );
      const fake = fakeKeycloak(300);
      const server = createHttpsServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }, fake.handler);
      const url = `https://127.0.0.1:${await listen(server)}`;
      // First without: trusting a CA is process-wide and cannot be undone.
      expect(await createKeycloakProvider({ ...config, url }).check()).toEqual({
        ok: false,
        reason: expect.stringMatching(/its TLS certificate is not trusted \(DEPTH_ZERO_SELF_SIGNED_CERT\): set usher\.identity\.keycloak\.caFile/) as unknown,
      });
      expect(await createKeycloakProvider({ ...config, url, caFile: join(dir, 'cert.pem') }).check()).toEqual({ ok: true });
      expect(fake.tokenRequests()).toBe(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
