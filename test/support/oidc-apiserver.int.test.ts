// The test infrastructure for "kube-apiserver trusts the ID tokens Keycloak issues":
// one realm of the run's Keycloak served over HTTPS with an https issuer
// (keycloak-tls.ts), and a second kube-apiserver on the shared etcd with an
// AuthenticationConfiguration for that issuer (tools/control-plane/oidc-apiserver.ts,
// oidc-auth-config.ts). A person's password grant gives an ID token that this API
// server maps to oidc:<username> in oidc:/<group>; RoleBindings written through the
// first API server hold on the second; tokens of another issuer, or tampered ones,
// are refused with 401.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startOidcApiServer, type OidcApiServer } from '../../tools/control-plane/oidc-apiserver.ts';
import { kubectl, kubectlOk, useNamespace } from './cluster.ts';
import { keycloakTls, httpsRequest, passwordGrantTls, type TlsRealm } from './keycloak-tls.ts';
import { keycloakAdmin, newRealm, passwordGrant, useKeycloak, type TestKeycloak, type TestRealm } from './keycloak.ts';
import { oidcAuthenticationConfig } from './oidc-auth-config.ts';

const controlPlaneDir = inject('controlPlaneDir');
const etcdUrl = inject('etcdUrl');
const PASSWORD = 'quiet lantern under the bridge';
const GROUP = 'developers';

const namespace = useNamespace('oidc-apiserver');
let keycloak: TestKeycloak;
let realm: TestRealm;
let tls: TlsRealm;
let api: OidcApiServer;
let username: string;
let idToken: string;
let claims: Record<string, unknown>;
let tokenMs: number;
const cleanups: (() => Promise<unknown>)[] = [];

/** kubectl against the second API server, with nothing but the given token (no kubeconfig identity). */
function asToken(token: string, args: string[]): ReturnType<typeof kubectl> {
  return kubectl(['--server', api.server, '--certificate-authority', api.caFile, '--token', token, ...args], { kubeconfig: '/dev/null' });
}

/** The status of GET <server>/api with a bearer token. */
function statusWith(token: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${api.server}/api`, { headers: { Authorization: `Bearer ${token}` }, ca: readFileSync(api.caFile) }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

describe.skipIf(!controlPlaneDir || !etcdUrl)(
  'a second kube-apiserver trusting Keycloak ID tokens over HTTPS (needs the local control plane: skipped for USE_EXISTING_CLUSTER)',
  () => {
    beforeAll(async () => {
      keycloak = await useKeycloak();
      realm = await newRealm(keycloak, { prefix: 'oidc', acceptRedirectUris: ['http://127.0.0.1:1/accept/oidc/callback'], directAccessGrants: true });
      const admin = await keycloakAdmin(keycloak, realm.realm);
      await admin.groups.create({ name: GROUP });
      username = `jane-${randomBytes(3).toString('hex')}@example.com`;
      await admin.users.create({
        username,
        email: username,
        // As after a password acceptance: not verified, which is why the username is the claim.
        emailVerified: false,
        firstName: 'Jane',
        lastName: 'Doe',
        enabled: true,
        credentials: [{ type: 'password', value: PASSWORD, temporary: false }],
        groups: [`/${GROUP}`],
      });

      tls = await keycloakTls(keycloak, realm.realm);
      cleanups.push(() => tls.close());

      const startedToken = Date.now();
      const grant = await passwordGrantTls(tls.issuer, tls.caPem, realm.accept.clientId, realm.accept.clientSecret, username, PASSWORD);
      tokenMs = Date.now() - startedToken;
      if (!grant.idToken || !grant.claims) throw new Error(`password grant over https failed (${grant.status}): ${JSON.stringify(grant.body)}`);
      idToken = grant.idToken;
      claims = grant.claims;

      api = await startOidcApiServer({
        controlPlaneDir: controlPlaneDir ?? '',
        etcdUrl: etcdUrl ?? '',
        authenticationConfig: oidcAuthenticationConfig({
          issuer: tls.issuer,
          caPem: tls.caPem,
          audience: realm.accept.clientId,
          usernamePrefix: 'oidc:',
          groupsPrefix: 'oidc:',
        }),
      });
      cleanups.push(() => api.stop());
      process.stderr.write(
        `oidc-apiserver: the extra API server was ready in ${(api.readyMs / 1000).toFixed(1)}s; the ID token over https took ${tokenMs} ms\n`,
      );
    }, 300_000);

    afterAll(async () => {
      for (const cleanup of cleanups.reverse()) await cleanup();
    });

    it("Keycloak's discovery document and the ID token's iss both say the https issuer", async () => {
      const discovery = await httpsRequest(`${tls.issuer}/.well-known/openid-configuration`, tls.caPem);
      expect(discovery.status).toBe(200);
      const doc = discovery.body as { issuer: string; jwks_uri: string; token_endpoint: string };
      expect(tls.issuer).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/realms\//);
      expect(doc.issuer).toBe(tls.issuer);
      expect(doc.jwks_uri.startsWith(`${tls.issuer}/`)).toBe(true);
      expect(doc.token_endpoint.startsWith(`${tls.issuer}/`)).toBe(true);
      expect(claims.iss).toBe(tls.issuer);
      expect(claims.aud).toBe(realm.accept.clientId);
      expect(claims.preferred_username).toBe(username);
      expect(claims.email_verified).toBe(false);
      expect(claims.groups).toEqual([`/${GROUP}`]);
    });

    it('maps the ID token to oidc:<username> in oidc:/<group>', async () => {
      // The JWT authenticator fetches discovery and keys on its own after /readyz: wait for it.
      const started = Date.now();
      let result = await asToken(idToken, ['auth', 'whoami', '-o', 'json']);
      while (result.code !== 0 && Date.now() - started < 30_000) {
        await new Promise((r) => setTimeout(r, 250));
        result = await asToken(idToken, ['auth', 'whoami', '-o', 'json']);
      }
      process.stderr.write(
        `oidc-apiserver: the first whoami with the ID token succeeded ${Date.now() - started} ms after /readyz (${result.code === 0 ? 'ok' : 'failed'})\n`,
      );
      expect(result.stderr).toBe('');
      const review = JSON.parse(result.stdout) as { status: { userInfo: { username: string; groups: string[] } } };
      expect(review.status.userInfo.username).toBe(`oidc:${username}`);
      expect(review.status.userInfo.groups).toContain(`oidc:/${GROUP}`);
      expect(review.status.userInfo.groups).toContain('system:authenticated');
    });

    it("keeps the static token file: the harness's admin is still itself there", async () => {
      const kubeconfig = inject('kubeconfigs').admin;
      const result = await kubectl(
        ['--server', api.server, '--certificate-authority', api.caFile, 'auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}'],
        {
          kubeconfig,
        },
      );
      expect(result).toMatchObject({ code: 0, stdout: 'usher-admin' });
    });

    it('enforces a RoleBinding written through the first API server', async () => {
      await kubectlOk(['create', 'rolebinding', 'oidc-developers-view', '-n', namespace(), '--clusterrole=view', `--group=oidc:/${GROUP}`]);
      const started = Date.now();
      let allowed = await asToken(idToken, ['get', 'configmaps', '-n', namespace(), '-o', 'name']);
      // The second API server learns of the binding through its own watch on etcd.
      while (allowed.code !== 0 && Date.now() - started < 15_000) {
        await new Promise((r) => setTimeout(r, 200));
        allowed = await asToken(idToken, ['get', 'configmaps', '-n', namespace(), '-o', 'name']);
      }
      expect(allowed).toMatchObject({ code: 0 });
      const elsewhere = await asToken(idToken, ['get', 'configmaps', '-n', 'default', '-o', 'name']);
      expect(elsewhere.code).not.toBe(0);
      expect(elsewhere.stderr).toMatch(/Forbidden|forbidden/);
      expect(elsewhere.stderr).toContain(`oidc:${username}`);
      const write = await asToken(idToken, ['create', 'configmap', 'nope', '-n', namespace()]);
      expect(write.code).not.toBe(0);
      expect(write.stderr).toMatch(/forbidden/);
    });

    it('refuses an ID token of another issuer, and a tampered one, with 401', async () => {
      expect(await statusWith(idToken)).toBe(200);

      // Another realm of the same Keycloak, over plain http: a valid token, but not from this issuer.
      const other = await newRealm(keycloak, {
        prefix: 'oidc-other',
        acceptRedirectUris: ['http://127.0.0.1:1/accept/oidc/callback'],
        directAccessGrants: true,
      });
      const otherAdmin = await keycloakAdmin(keycloak, other.realm);
      // A complete profile (first and last name): otherwise Keycloak 26 asks to finish it and grants nothing.
      await otherAdmin.users.create({
        username,
        email: username,
        firstName: 'Jane',
        lastName: 'Doe',
        enabled: true,
        credentials: [{ type: 'password', value: PASSWORD, temporary: false }],
      });
      const foreign = await passwordGrant(other.issuer, other.accept.clientId, other.accept.clientSecret, username, PASSWORD);
      expect(foreign.claims?.iss, JSON.stringify(foreign.body)).toBe(other.issuer);
      expect(await statusWith(foreign.idToken ?? '')).toBe(401);
      const whoami = await asToken(foreign.idToken ?? '', ['auth', 'whoami']);
      expect(whoami.code).not.toBe(0);
      expect(whoami.stderr).toMatch(/Unauthorized/);

      // This issuer's token with another username in it (the signature no longer matches).
      const [header, , signature] = idToken.split('.');
      const forged = Buffer.from(JSON.stringify({ ...claims, preferred_username: 'usher-admin', groups: ['/admins'] })).toString('base64url');
      expect(await statusWith(`${header}.${forged}.${signature}`)).toBe(401);
      // And a signature of another realm's key on this issuer's claims.
      const [otherHeader, , otherSignature] = (foreign.idToken ?? '').split('.');
      expect(await statusWith(`${otherHeader}.${idToken.split('.')[1]}.${otherSignature}`)).toBe(401);
    });
  },
);
