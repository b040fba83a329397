// The Keycloak adapter against a real Keycloak (26.7, started once per run by
// test/support/keycloak.ts), in one realm set up as the README's steps say
// (tools/keycloak/realm.ts). Every call of the adapter runs as the `usher` client,
// whose service account holds only manage-users: the tests show that is enough, and
// that it is not enough to touch clients or realms. The realm's master admin only sets
// the scene (a group and an attribute Usher does not own) and looks at the result.
import { createServer, type Server, type Socket } from 'node:net';
import KeycloakAdminClient, { NetworkError } from '@keycloak/keycloak-admin-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../../src/accept/hash.ts';
import { createKeycloakProvider } from '../../src/identity/keycloak.ts';
import { IdentityProviderError, type IdentityProvider, type NewAccount } from '../../src/identity/provider.ts';
import { freePort } from '../../tools/control-plane/control-plane.ts';
import { setUpRealm } from '../../tools/keycloak/realm.ts';
import { keycloakAdmin, newRealm, passwordGrant, useKeycloak, type TestKeycloak, type TestRealm } from '../support/keycloak.ts';

const PASSWORD = 'a long walk on the quiet beach';

let kc: TestKeycloak;
let realm: TestRealm;
let provider: IdentityProvider;
/** The master admin, working on the test's realm. */
let admin: KeycloakAdminClient;
let fileStarted = 0;

beforeAll(async () => {
  fileStarted = Date.now();
  kc = await useKeycloak();
  const realmStarted = Date.now();
  realm = await newRealm(kc, { prefix: 'identity', acceptRedirectUris: ['http://127.0.0.1:9/accept/oidc/callback'], directAccessGrants: true });
  console.log(`keycloak ready for this file in ${Date.now() - fileStarted} ms (realm set-up ${Date.now() - realmStarted} ms)`);
  provider = createKeycloakProvider({ url: kc.url, realm: realm.realm, clientId: realm.usher.clientId, clientSecret: realm.usher.clientSecret });
  admin = await keycloakAdmin(kc, realm.realm);
});

afterAll(() => {
  console.log(`keycloak.int.test.ts: ${Date.now() - fileStarted} ms in all`);
});

let counter = 0;
function newAccount(overrides: Partial<NewAccount> = {}): NewAccount {
  counter++;
  return {
    email: `person-${counter}-${Date.now()}@example.com`,
    firstName: 'Ada',
    lastName: 'Lovelace',
    emailVerified: true,
    usherUserUid: `uid-${counter}`,
    groups: ['/tenants/acme', '/tenants/acme/developers', '/instance', '/instance/ops'],
    roles: ['developer', 'ops'],
    ...overrides,
  };
}

const signIn = (username: string, password: string) => passwordGrant(realm.issuer, realm.accept.clientId, realm.accept.clientSecret, username, password);

async function adminGroups(id: string): Promise<string[]> {
  return (await admin.users.listGroups({ id })).map((g) => g.path ?? '').sort();
}

describe('the realm set-up (tools/keycloak/realm.ts)', () => {
  it('makes usher a service-account-only client, usher-accept a code-flow client with PKCE S256 and the usher scope; running it again changes nothing', async () => {
    const [usher] = await admin.clients.find({ clientId: realm.usher.clientId });
    expect(usher).toMatchObject({
      publicClient: false,
      serviceAccountsEnabled: true,
      standardFlowEnabled: false,
      implicitFlowEnabled: false,
      directAccessGrantsEnabled: false,
    });
    const [accept] = await admin.clients.find({ clientId: realm.accept.clientId });
    expect(accept).toMatchObject({ publicClient: false, serviceAccountsEnabled: false, standardFlowEnabled: true, implicitFlowEnabled: false });
    expect(accept?.attributes?.['pkce.code.challenge.method']).toBe('S256');
    expect(accept?.redirectUris).toEqual(['http://127.0.0.1:9/accept/oidc/callback']);
    const scopes = await admin.clients.listDefaultClientScopes({ id: accept?.id ?? '' });
    expect(scopes.map((s) => s.name)).toContain('usher');
    const sa = await admin.clients.getServiceAccountUser({ id: usher?.id ?? '' });
    const realmManagement = (await admin.clients.find({ clientId: 'realm-management' }))[0]?.id ?? '';
    const granted = await admin.users.listClientRoleMappings({ id: sa.id ?? '', clientUniqueId: realmManagement });
    expect(granted.map((r) => r.name)).toEqual(['manage-users']);
    expect((await admin.realms.findOne({ realm: realm.realm }))?.registrationAllowed).toBe(false);

    const started = Date.now();
    const again = await setUpRealm(await keycloakAdmin(kc), { realm: realm.realm, acceptRedirectUris: accept?.redirectUris ?? [], directAccessGrants: true });
    console.log(`setUpRealm on a realm already set up: ${Date.now() - started} ms`);
    expect(again).toEqual(realm);
    expect(await admin.users.listClientRoleMappings({ id: sa.id ?? '', clientUniqueId: realmManagement })).toHaveLength(1);
  });
});

describe('the Keycloak adapter', () => {
  it("creates an account with Usher's own argon2id hash imported: the password signs in and the ID token carries the profile, groups and roles", async () => {
    const input = { ...newAccount(), passwordHash: await hashPassword(PASSWORD) };
    const created = await provider.create(input);
    expect(created).toMatchObject({
      username: input.email,
      email: input.email,
      enabled: true,
      usherUserUid: input.usherUserUid,
      groups: ['/instance', '/instance/ops', '/tenants/acme', '/tenants/acme/developers'],
      roles: ['developer', 'ops'],
    });

    const started = Date.now();
    const ok = await signIn(input.email, PASSWORD);
    console.log(`password grant with the imported hash: ${Date.now() - started} ms`);
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    expect(ok.claims).toMatchObject({
      email: input.email,
      email_verified: true,
      given_name: 'Ada',
      family_name: 'Lovelace',
      preferred_username: input.email,
    });
    expect([...(ok.claims?.groups as string[])].sort()).toEqual(['/instance', '/instance/ops', '/tenants/acme', '/tenants/acme/developers']);
    expect([...(ok.claims?.usher_roles as string[])].sort()).toEqual(['developer', 'ops']);

    const wrong = await signIn(input.email, 'not the password at all');
    expect([400, 401]).toContain(wrong.status);
    expect(wrong.idToken).toBeUndefined();
  });

  it('finds an account by email whatever its case, and by id; unknown ones are undefined', async () => {
    const input = newAccount({ email: `Mixed.Case-${Date.now()}@Example.com`.toLowerCase() });
    const created = await provider.create(input);
    const upper = await provider.findByEmail(input.email.toUpperCase());
    expect(upper?.id).toBe(created.id);
    expect(upper).toEqual(await provider.get(created.id));
    expect(upper?.groups).toEqual(['/instance', '/instance/ops', '/tenants/acme', '/tenants/acme/developers']);
    expect(await provider.findByEmail(`nobody-${Date.now()}@example.com`)).toBeUndefined();
    expect(await provider.get('00000000-0000-0000-0000-000000000000')).toBeUndefined();
  });

  it("setAccess changes only the groups under /tenants and /instance and only usher_roles, keeping the rest of the account; groups deleted behind Usher's back are made again", async () => {
    const input = { ...newAccount(), passwordHash: await hashPassword(PASSWORD) };
    const { id } = await provider.create(input);
    // The scene: a group Usher does not manage, and an attribute of someone else's.
    const staff = (await admin.groups.find({ search: 'staff', exact: true }))[0]?.id ?? (await admin.groups.create({ name: 'staff' })).id;
    await admin.users.addToGroup({ id, groupId: staff });
    const before = await admin.users.findOne({ id });
    await admin.users.update({ id }, { ...before, attributes: { ...before?.attributes, department: ['platform'] } });

    await provider.setAccess(id, ['/tenants/acme', '/tenants/beta/ops'], ['viewer']);
    expect(await adminGroups(id)).toEqual(['/staff', '/tenants/acme', '/tenants/beta/ops']);
    const after = await admin.users.findOne({ id });
    expect(after).toMatchObject({ email: input.email, firstName: 'Ada', lastName: 'Lovelace', emailVerified: true, enabled: true });
    expect(after?.attributes).toMatchObject({ department: ['platform'], usher_user_uid: [input.usherUserUid], usher_roles: ['viewer'] });
    expect(await provider.get(id)).toMatchObject({ groups: ['/tenants/acme', '/tenants/beta/ops'], roles: ['viewer'] });
    const token = await signIn(input.email, PASSWORD);
    expect(token.status).toBe(200);
    expect([...(token.claims?.groups as string[])].sort()).toEqual(['/staff', '/tenants/acme', '/tenants/beta/ops']);
    expect(token.claims?.usher_roles).toEqual(['viewer']);

    // The same again changes nothing.
    await provider.setAccess(id, ['/tenants/acme', '/tenants/beta/ops'], ['viewer']);
    expect(await adminGroups(id)).toEqual(['/staff', '/tenants/acme', '/tenants/beta/ops']);

    // An admin deletes a group the adapter has cached: it is made again and joined.
    const ops = await admin.realms.getGroupByPath({ realm: realm.realm, path: 'tenants/beta/ops' });
    await admin.groups.del({ id: ops.id ?? '' });
    await provider.setAccess(id, ['/tenants/beta/ops'], []);
    expect(await adminGroups(id)).toEqual(['/staff', '/tenants/beta/ops']);
    const last = await admin.users.findOne({ id });
    expect(last?.attributes).toMatchObject({ department: ['platform'], usher_user_uid: [input.usherUserUid] });
    expect(last?.attributes?.usher_roles).toBeUndefined();
    expect(last).toMatchObject({ email: input.email, firstName: 'Ada', lastName: 'Lovelace' });
  });

  it('setEnabled(false) stops the password from signing in, and true lets it again, keeping the attributes', async () => {
    const input = { ...newAccount(), passwordHash: await hashPassword(PASSWORD) };
    const { id } = await provider.create(input);
    await provider.setEnabled(id, false);
    expect((await provider.get(id))?.enabled).toBe(false);
    const refused = await signIn(input.email, PASSWORD);
    expect(refused.status).toBe(400);
    expect(refused.idToken).toBeUndefined();
    await provider.setEnabled(id, true);
    expect((await signIn(input.email, PASSWORD)).status).toBe(200);
    expect(await provider.get(id)).toMatchObject({ enabled: true, usherUserUid: input.usherUserUid, roles: ['developer', 'ops'] });
  });

  it('remove deletes the account; removing or disabling it again is no error', async () => {
    const { id } = await provider.create(newAccount());
    await provider.remove(id);
    expect(await provider.get(id)).toBeUndefined();
    await provider.remove(id);
    await provider.setEnabled(id, false);
    await expect(provider.setEnabled(id, true)).rejects.toMatchObject({ retryable: false });
  });

  it('an account without a password (SSO only) is created but no password signs in to it', async () => {
    const input = newAccount({ groups: [] });
    const created = await provider.create(input);
    expect(created.groups).toEqual([]);
    expect((await admin.users.getCredentials({ id: created.id })).length).toBe(0);
    expect([400, 401]).toContain((await signIn(input.email, PASSWORD)).status);
  });

  it('refuses, without retrying, an email taken meanwhile (409), a hash it cannot import, and a group outside its trees', async () => {
    const input = newAccount();
    await provider.create(input);
    const again = await provider.create({ ...input, usherUserUid: 'someone-else' }).catch((err: unknown) => err);
    expect(again).toBeInstanceOf(IdentityProviderError);
    expect(again).toMatchObject({ retryable: false, message: expect.stringMatching(/exists already/) as unknown });

    const bcrypt = newAccount({ passwordHash: '$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW' });
    await expect(provider.create(bcrypt)).rejects.toMatchObject({ retryable: false, message: expect.stringMatching(/bcrypt, not argon2id/) as unknown });
    expect(await provider.findByEmail(bcrypt.email)).toBeUndefined();

    await expect(provider.create(newAccount({ groups: ['/staff'] }))).rejects.toMatchObject({ retryable: false });
  });

  it('check() is ok; a wrong secret, a closed port, a silent server and a missing realm each get a reason naming it', async () => {
    expect(await provider.check()).toEqual({ ok: true });
    const config = { url: kc.url, realm: realm.realm, clientId: realm.usher.clientId, clientSecret: realm.usher.clientSecret };

    const wrongSecret = await createKeycloakProvider({ ...config, clientSecret: 'not-the-secret' }).check();
    expect(wrongSecret).toEqual({
      ok: false,
      reason: expect.stringMatching(
        new RegExp(`^keycloak at ${kc.url} realm ${realm.realm}: client usher was refused \\(401.*check usher\\.identity\\.keycloak\\.clientSecret`),
      ) as unknown,
    });

    const closed = await createKeycloakProvider({ ...config, url: `http://127.0.0.1:${await freePort()}` }).check();
    expect(closed).toEqual({ ok: false, reason: expect.stringMatching(/: unreachable: ECONNREFUSED$/) as unknown });

    // Accepts connections and never answers.
    const sockets = new Set<Socket>();
    const silent: Server = createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as { port: number }).port;
    const started = Date.now();
    const timedOut = await createKeycloakProvider({ ...config, url: `http://127.0.0.1:${port}`, timeoutMs: 300 }).check();
    expect(Date.now() - started).toBeLessThan(5000);
    expect(timedOut).toEqual({ ok: false, reason: expect.stringMatching(/timed out/) as unknown });
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => silent.close(resolve));

    const noRealm = await createKeycloakProvider({ ...config, realm: 'no-such-realm' }).check();
    expect(noRealm).toEqual({ ok: false, reason: expect.stringMatching(/no such realm/) as unknown });
  });

  it('errors say whether to retry: unreachable is retryable, a wrong secret is not', async () => {
    const config = { url: kc.url, realm: realm.realm, clientId: realm.usher.clientId, clientSecret: realm.usher.clientSecret };
    const closed = createKeycloakProvider({ ...config, url: `http://127.0.0.1:${await freePort()}` });
    await expect(closed.findByEmail('a@example.com')).rejects.toMatchObject({ retryable: true });
    const wrong = createKeycloakProvider({ ...config, clientSecret: 'nope' });
    await expect(wrong.create(newAccount())).rejects.toMatchObject({ retryable: false, message: expect.stringMatching(/clientSecret/) as unknown });
  });

  it('a realm whose user profile drops unmanaged attributes: check() says so, and create takes back an account it could not mark', async () => {
    const profile = await admin.users.getProfile({ realm: realm.realm });
    await admin.users.updateProfile({ realm: realm.realm, ...profile, unmanagedAttributePolicy: undefined });
    try {
      expect(await provider.check()).toEqual({ ok: false, reason: expect.stringMatching(/unmanaged attribute policy to ADMIN_EDIT/) as unknown });
      const input = newAccount();
      await expect(provider.create(input)).rejects.toMatchObject({
        retryable: false,
        message: expect.stringMatching(/dropped the attribute usher_user_uid/) as unknown,
      });
      expect(await provider.findByEmail(input.email)).toBeUndefined();
    } finally {
      await admin.users.updateProfile({ realm: realm.realm, ...profile });
    }
    expect(await provider.check()).toEqual({ ok: true });
  });

  it('the usher client may do all of the above but not manage clients or realms (403)', async () => {
    const usher = new KeycloakAdminClient({ baseUrl: kc.url, realmName: realm.realm });
    await usher.auth({ grantType: 'client_credentials', clientId: realm.usher.clientId, clientSecret: realm.usher.clientSecret });
    const status = (err: unknown): number | undefined => (err instanceof NetworkError ? err.response.status : undefined);
    expect(status(await usher.clients.create({ clientId: `sneaky-${Date.now()}` }).catch((err: unknown) => err))).toBe(403);
    expect(status(await usher.realms.create({ realm: `sneaky-${Date.now()}`, enabled: true }).catch((err: unknown) => err))).toBe(403);
    expect(status(await usher.realms.update({ realm: realm.realm }, { registrationAllowed: true }).catch((err: unknown) => err))).toBe(403);
    // Nor give itself more: a realm-management role it lacks (manage-clients) is refused.
    const realmManagement = (await admin.clients.find({ clientId: 'realm-management' }))[0]?.id ?? '';
    const manageClients = await admin.clients.findRole({ id: realmManagement, roleName: 'manage-clients' });
    const self = await admin.clients.getServiceAccountUser({ id: (await admin.clients.find({ clientId: realm.usher.clientId }))[0]?.id ?? '' });
    const escalate = usher.users
      .addClientRoleMappings({ id: self.id ?? '', clientUniqueId: realmManagement, roles: [{ id: manageClients?.id ?? '', name: 'manage-clients' }] })
      .catch((err: unknown) => err);
    expect(status(await escalate)).toBe(403);
  });
});
