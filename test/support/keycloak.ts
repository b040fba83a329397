// A real Keycloak for integration tests: one per vitest run, started by the first
// file that calls useKeycloak() and stopped by the global teardown
// (tools/keycloak/shared.ts); each file then works in realms of its own (newRealm).
import { randomBytes } from 'node:crypto';
import KeycloakAdminClient from '@keycloak/keycloak-admin-client';
import { inject } from 'vitest';
import { setUpRealm, type RealmOptions, type RealmSetup } from '../../tools/keycloak/realm.ts';
import { sharedKeycloak } from '../../tools/keycloak/shared.ts';

export interface TestKeycloak {
  /** http://127.0.0.1:PORT */
  url: string;
  managementUrl: string;
  version: string;
  /** An admin of the master realm. */
  adminUser: string;
  adminPassword: string;
}

export type TestRealm = RealmSetup;

/** The run's Keycloak (started on first use: about 10 s on the cached install, plus its one-time install). */
export async function useKeycloak(): Promise<TestKeycloak> {
  const dir = inject('keycloakStateDir') as string | undefined;
  if (!dir) throw new Error('useKeycloak() is for integration tests (*.int.test.ts): it needs the folder test/support/global-setup.ts provides');
  const { url, managementUrl, version, adminUser, adminPassword } = await sharedKeycloak(dir);
  return { url, managementUrl, version, adminUser, adminPassword };
}

/**
 * An admin client signed in as the master realm's admin, working on `realm` (master by default).
 * It signs in again whenever its token is about to expire (master's tokens live a minute),
 * so it can be kept for a whole file.
 */
export async function keycloakAdmin(kc: TestKeycloak, realm = 'master'): Promise<KeycloakAdminClient> {
  let token: { value: string; renewAt: number } | undefined;
  const signIn = async (): Promise<string> => {
    if (token && Date.now() < token.renewAt) return token.value;
    const started = Date.now();
    const response = await fetch(`${kc.url}/realms/master/protocol/openid-connect/token`, {
      method: 'POST',
      body: new URLSearchParams({ grant_type: 'password', client_id: 'admin-cli', username: kc.adminUser, password: kc.adminPassword }),
    });
    if (!response.ok) throw new Error(`keycloak: the master admin could not sign in (${response.status}): ${await response.text()}`);
    const body = (await response.json()) as { access_token: string; expires_in: number };
    token = { value: body.access_token, renewAt: started + (body.expires_in - 15) * 1000 };
    return token.value;
  };
  const client = new KeycloakAdminClient({ baseUrl: kc.url, realmName: realm });
  client.registerTokenProvider({ getAccessToken: signIn });
  await signIn();
  return client;
}

/** A fresh realm set up as Usher's set-up steps say (tools/keycloak/realm.ts), named `<prefix>-<random>`. */
export async function newRealm(kc: TestKeycloak, opts: Omit<RealmOptions, 'realm'> & { prefix?: string }): Promise<TestRealm> {
  const { prefix = 'usher', ...rest } = opts;
  return setUpRealm(await keycloakAdmin(kc), { ...rest, realm: `${prefix}-${randomBytes(4).toString('hex')}` });
}

export interface PasswordGrant {
  status: number;
  idToken?: string;
  /** The ID token's payload (not verified: it came straight from the token endpoint). */
  claims?: Record<string, unknown>;
  body: unknown;
}

/** Signs in with a username and password at the realm's token endpoint (the client must allow direct access grants). */
export async function passwordGrant(issuer: string, clientId: string, clientSecret: string, username: string, password: string): Promise<PasswordGrant> {
  const response = await fetch(`${issuer}/protocol/openid-connect/token`, {
    method: 'POST',
    body: new URLSearchParams({ grant_type: 'password', client_id: clientId, client_secret: clientSecret, username, password, scope: 'openid' }),
  });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  const idToken = typeof body === 'object' && body !== null && 'id_token' in body && typeof body.id_token === 'string' ? body.id_token : undefined;
  if (!idToken) return { status: response.status, body };
  const claims = JSON.parse(Buffer.from(idToken.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
  return { status: response.status, idToken, claims, body };
}
