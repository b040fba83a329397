// One realm of the run's Keycloak (test/support/keycloak.ts), reachable over HTTPS
// with an https issuer, for consumers that refuse http issuers (kube-apiserver's
// structured authentication).
//
// The shared Keycloak listens on plain http on loopback. Here: a throwaway CA and a
// server certificate for IP 127.0.0.1 (made with the openssl CLI in a temp folder), a
// TLS-terminating TCP proxy in the test process (node:tls in front of Keycloak's http
// port), and the realm's frontendUrl attribute set to the proxy's https URL, so that
// Keycloak's issuer for that realm (its discovery document, the `iss` of its tokens and
// its endpoints) is https://127.0.0.1:PORT/realms/<realm>, whichever way a request
// reaches it. Other realms are untouched.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:tls';
import { keycloakAdmin, type PasswordGrant, type TestKeycloak } from './keycloak.ts';

export interface TestCa {
  dir: string;
  caPem: string;
  caFile: string;
  /** Server certificate and key (PEM) for IP 127.0.0.1 and DNS localhost, signed by the CA. */
  certPem: string;
  keyPem: string;
}

/** A throwaway CA and a server certificate for 127.0.0.1 (EC P-256, a day long), in a temp folder. */
export function makeTestCa(): TestCa {
  const dir = mkdtempSync(join(tmpdir(), 'usher-test-ca-'));
  const openssl = (args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  // Go (kube-apiserver) wants a CA with basicConstraints CA:TRUE and keyCertSign.
  openssl([
    'req',
    '-x509',
    ...ec,
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
    '-days',
    '1',
    '-subj',
    '/CN=Usher test CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  openssl(['req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1']);
  writeFileSync(
    join(dir, 'server.ext'),
    'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n',
  );
  openssl([
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'server.crt',
    '-days',
    '1',
    '-extfile',
    'server.ext',
  ]);
  return {
    dir,
    caPem: readFileSync(join(dir, 'ca.crt'), 'utf8'),
    caFile: join(dir, 'ca.crt'),
    certPem: readFileSync(join(dir, 'server.crt'), 'utf8'),
    keyPem: readFileSync(join(dir, 'server.key'), 'utf8'),
  };
}

export interface TlsRealm {
  /** https://127.0.0.1:PORT/realms/<realm> */
  issuer: string;
  caPem: string;
  /** The CA as a file (for kubectl, curl). */
  caFile: string;
  /** Stops the proxy, puts the realm's frontendUrl back and removes the CA's folder. */
  close(): Promise<void>;
}

/** Serves `realm` of the run's Keycloak over HTTPS on a free loopback port, with an https issuer. */
export async function keycloakTls(kc: TestKeycloak, realm: string): Promise<TlsRealm> {
  const ca = makeTestCa();
  const upstream = new URL(kc.url);
  const open = new Set<Socket>();
  const server = createServer({ cert: ca.certPem, key: ca.keyPem }, (client) => {
    const backend = connect(Number(upstream.port), upstream.hostname);
    open.add(client);
    open.add(backend);
    const done = (): void => {
      client.destroy();
      backend.destroy();
      open.delete(client);
      open.delete(backend);
    };
    client.on('error', done).on('close', done);
    backend.on('error', done).on('close', done);
    client.pipe(backend).pipe(client);
  });
  // A client that fails the handshake (wrong CA) is its own problem, not the test process's.
  server.on('tlsClientError', () => undefined);
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address && typeof address === 'object') resolve(address.port);
      else reject(new Error('keycloakTls: no port'));
    });
  });
  const frontendUrl = `https://127.0.0.1:${port}`;
  const admin = await keycloakAdmin(kc);
  const before = (await admin.realms.findOne({ realm }))?.attributes ?? {};
  await admin.realms.update({ realm }, { attributes: { ...before, frontendUrl } });
  const closeProxy = (): Promise<void> =>
    new Promise<void>((resolve) => {
      for (const s of open) s.destroy();
      server.close(() => {
        resolve();
      });
    });
  return {
    issuer: `${frontendUrl}/realms/${encodeURIComponent(realm)}`,
    caPem: ca.caPem,
    caFile: ca.caFile,
    close: async () => {
      await closeProxy();
      // An empty frontendUrl is none: the realm's issuer follows the request again (http).
      await admin.realms.update({ realm }, { attributes: { frontendUrl: '' } }).catch(() => undefined);
      rmSync(ca.dir, { recursive: true, force: true });
    },
  };
}

export interface HttpsResponse {
  status: number;
  text: string;
  /** The body parsed as JSON, or the text when it is not JSON. */
  body: unknown;
}

/** One HTTPS request trusting only `ca` (PEM). */
export function httpsRequest(url: string, ca: string, opts: { method?: string; form?: Record<string, string> } = {}): Promise<HttpsResponse> {
  const payload = opts.form ? new URLSearchParams(opts.form).toString() : undefined;
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: opts.method ?? (payload ? 'POST' : 'GET'),
        ca,
        headers: payload ? { 'Content-Type': 'application/x-www-form-urlencoded', 'Content-Length': Buffer.byteLength(payload) } : {},
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown = text;
          try {
            body = JSON.parse(text);
          } catch {
            // not JSON: keep the text
          }
          resolve({ status: res.statusCode ?? 0, text, body });
        });
      },
    );
    req.on('error', reject);
    req.setTimeout(15_000, () => req.destroy(new Error(`${url}: no answer in 15 s`)));
    req.end(payload);
  });
}

/** The password grant (as passwordGrant in keycloak.ts) at an https issuer, trusting only `ca`. */
export async function passwordGrantTls(
  issuer: string,
  ca: string,
  clientId: string,
  clientSecret: string,
  username: string,
  password: string,
): Promise<PasswordGrant> {
  const { status, body } = await httpsRequest(`${issuer}/protocol/openid-connect/token`, ca, {
    form: { grant_type: 'password', client_id: clientId, client_secret: clientSecret, username, password, scope: 'openid' },
  });
  const idToken = typeof body === 'object' && body !== null && 'id_token' in body && typeof body.id_token === 'string' ? body.id_token : undefined;
  if (!idToken) return { status, body };
  const claims = JSON.parse(Buffer.from(idToken.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
  return { status, idToken, claims, body };
}
