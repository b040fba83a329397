// Sets up a Keycloak realm for Usher, the way the README's set-up steps describe it:
//
//   1. The realm: enabled, no self-registration, and a user profile that keeps
//      unmanaged attributes for admins (unmanagedAttributePolicy ADMIN_EDIT), since
//      Usher stores usher_user_uid and usher_roles on the users it creates, and
//      whose lastName is optional, as on Usher's form.
//   2. The client `usher`: confidential, the service account only (client-credentials
//      grant, no browser flows), whose service-account user holds the realm-management
//      role manage-users (USHER_CLIENT_ROLES) and nothing else.
//   3. The client scope `usher`: puts the groups (full paths) and usher_roles into
//      ID tokens, access tokens and userinfo.
//   4. The client `usher-accept`: confidential, for the acceptance page's sign-in
//      (authorization code with PKCE S256, the given redirect URIs), with the scope
//      `usher` as a default scope.
//
// Everything is found before it is created, so running it again on the same realm
// changes nothing but what drifted (and returns the same secrets).
import type KeycloakAdminClient from '@keycloak/keycloak-admin-client';
import type ClientRepresentation from '@keycloak/keycloak-admin-client/lib/defs/clientRepresentation.js';
import type ProtocolMapperRepresentation from '@keycloak/keycloak-admin-client/lib/defs/protocolMapperRepresentation.js';
import { UnmanagedAttributePolicy } from '@keycloak/keycloak-admin-client/lib/defs/userProfileMetadata.js';

/**
 * The realm-management client roles the `usher` client's service account needs, and no
 * more: manage-users alone. In Keycloak 26.7 it lets the holder find users (by email, by
 * id, count them), create them with an imported credential and attributes, update their
 * attributes, enable, disable and delete them, list, create and look up groups and
 * subgroups (by path), and add and remove group memberships: Keycloak guards groups with
 * the users permission, and manage implies view. view-users (which includes query-users
 * and query-groups) is read-only and not needed besides. It does not let the holder touch
 * clients, roles or the realm (test/identity/keycloak.int.test.ts runs every call of the
 * adapter as this client, and shows creating a client or a realm is refused).
 */
export const USHER_CLIENT_ROLES = ['manage-users'] as const;

export interface RealmOptions {
  realm: string;
  /** Where the acceptance page may be sent back after sign-in (its /oidc/callback URLs). */
  acceptRedirectUris: string[];
  /** 'usher' */
  usherClientId?: string;
  /** 'usher-accept' */
  acceptClientId?: string;
  /** Lets usher-accept use the password grant as well (tests sign people in without a browser). */
  directAccessGrants?: boolean;
}

export interface RealmSetup {
  realm: string;
  /** <Keycloak URL>/realms/<realm> */
  issuer: string;
  usher: { clientId: string; clientSecret: string };
  accept: { clientId: string; clientSecret: string };
}

/** `admin` is signed in to the master realm with rights to create realms. */
export async function setUpRealm(admin: KeycloakAdminClient, opts: RealmOptions): Promise<RealmSetup> {
  const { realm } = opts;
  const usherClientId = opts.usherClientId ?? 'usher';
  const acceptClientId = opts.acceptClientId ?? 'usher-accept';

  // 1. The realm and its user profile.
  const existing = await admin.realms.findOne({ realm });
  if (existing) await admin.realms.update({ realm }, { enabled: true, registrationAllowed: false });
  else await admin.realms.create({ realm, enabled: true, registrationAllowed: false });
  const profile = await admin.users.getProfile({ realm });
  // Usher's form asks for a last name but does not require one; Keycloak's default profile does, and
  // would hold an account without one at "update your profile" (and refuse it a token by password grant).
  const lastNameRequired = profile.attributes?.some((a) => a.name === 'lastName' && a.required !== undefined) ?? false;
  if (profile.unmanagedAttributePolicy !== UnmanagedAttributePolicy.AdminEdit || lastNameRequired) {
    const attributes = profile.attributes?.map((a) => (a.name === 'lastName' ? { ...a, required: undefined } : a));
    await admin.users.updateProfile({ realm, ...profile, ...(attributes ? { attributes } : {}), unmanagedAttributePolicy: UnmanagedAttributePolicy.AdminEdit });
  }

  // 2. The client Usher calls the admin API with, and its service account's roles.
  const usherId = await ensureClient(admin, realm, {
    clientId: usherClientId,
    name: 'Usher (operator)',
    protocol: 'openid-connect',
    publicClient: false,
    clientAuthenticatorType: 'client-secret',
    serviceAccountsEnabled: true,
    standardFlowEnabled: false,
    implicitFlowEnabled: false,
    directAccessGrantsEnabled: false,
  });
  const serviceAccount = await admin.clients.getServiceAccountUser({ realm, id: usherId });
  const realmManagement = (await admin.clients.find({ realm, clientId: 'realm-management' }))[0];
  if (!serviceAccount.id || !realmManagement?.id) throw new Error(`realm ${realm}: no service-account user or realm-management client`);
  const available = await admin.clients.listRoles({ realm, id: realmManagement.id });
  const wanted = available.filter((role) => (USHER_CLIENT_ROLES as readonly string[]).includes(role.name ?? ''));
  if (wanted.length !== USHER_CLIENT_ROLES.length) throw new Error(`realm ${realm}: realm-management lacks one of ${USHER_CLIENT_ROLES.join(', ')}`);
  await admin.users.addClientRoleMappings({
    realm,
    id: serviceAccount.id,
    clientUniqueId: realmManagement.id,
    roles: wanted.map((role) => ({ id: role.id ?? '', name: role.name ?? '' })),
  });

  // 3. The client scope that carries groups and usher_roles into tokens.
  const scopeId = await ensureUsherScope(admin, realm);

  // 4. The acceptance page's client.
  const acceptId = await ensureClient(admin, realm, {
    clientId: acceptClientId,
    name: 'Usher (acceptance page)',
    protocol: 'openid-connect',
    publicClient: false,
    clientAuthenticatorType: 'client-secret',
    serviceAccountsEnabled: false,
    standardFlowEnabled: true,
    implicitFlowEnabled: false,
    directAccessGrantsEnabled: opts.directAccessGrants ?? false,
    redirectUris: opts.acceptRedirectUris,
    attributes: { 'pkce.code.challenge.method': 'S256' },
  });
  await admin.clients.addDefaultClientScope({ realm, id: acceptId, clientScopeId: scopeId });

  return {
    realm,
    issuer: `${admin.baseUrl.replace(/\/$/, '')}/realms/${encodeURIComponent(realm)}`,
    usher: { clientId: usherClientId, clientSecret: await clientSecret(admin, realm, usherId) },
    accept: { clientId: acceptClientId, clientSecret: await clientSecret(admin, realm, acceptId) },
  };
}

/** Creates the client, or brings an existing one to `wanted`; returns its internal id. */
async function ensureClient(admin: KeycloakAdminClient, realm: string, wanted: ClientRepresentation): Promise<string> {
  const found = (await admin.clients.find({ realm, clientId: wanted.clientId ?? '' }))[0];
  if (found?.id) {
    await admin.clients.update({ realm, id: found.id }, { ...found, ...wanted, attributes: { ...found.attributes, ...wanted.attributes } });
    return found.id;
  }
  const { id } = await admin.clients.create({ realm, ...wanted });
  return id;
}

async function clientSecret(admin: KeycloakAdminClient, realm: string, id: string): Promise<string> {
  const { value } = await admin.clients.getClientSecret({ realm, id });
  if (!value) throw new Error(`realm ${realm}: client ${id} has no secret`);
  return value;
}

/** In ID token, access token, userinfo and introspection. */
const everywhere = {
  'id.token.claim': 'true',
  'access.token.claim': 'true',
  'userinfo.token.claim': 'true',
  'introspection.token.claim': 'true',
};

const USHER_MAPPERS: ProtocolMapperRepresentation[] = [
  {
    name: 'groups',
    protocol: 'openid-connect',
    protocolMapper: 'oidc-group-membership-mapper',
    config: { 'claim.name': 'groups', 'full.path': 'true', ...everywhere },
  },
  {
    name: 'usher_roles',
    protocol: 'openid-connect',
    protocolMapper: 'oidc-usermodel-attribute-mapper',
    config: { 'user.attribute': 'usher_roles', 'claim.name': 'usher_roles', 'jsonType.label': 'String', multivalued: 'true', ...everywhere },
  },
];

/** The client scope `usher` with the groups and usher_roles mappers; returns its id. */
async function ensureUsherScope(admin: KeycloakAdminClient, realm: string): Promise<string> {
  let scope = await admin.clientScopes.findOneByName({ realm, name: 'usher' });
  if (!scope?.id) {
    await admin.clientScopes.create({
      realm,
      name: 'usher',
      description: "Usher's claims: groups (full paths) and usher_roles",
      protocol: 'openid-connect',
      attributes: { 'include.in.token.scope': 'true', 'display.on.consent.screen': 'false' },
    });
    scope = await admin.clientScopes.findOneByName({ realm, name: 'usher' });
  }
  const id = scope?.id;
  if (!id) throw new Error(`realm ${realm}: the client scope usher was not created`);
  const mappers = await admin.clientScopes.listProtocolMappers({ realm, id });
  for (const mapper of USHER_MAPPERS) {
    const present = mappers.find((m) => m.name === mapper.name);
    if (!present) await admin.clientScopes.addProtocolMapper({ realm, id }, mapper);
    else if (present.id) await admin.clientScopes.updateProtocolMapper({ realm, id, mapperId: present.id }, { ...present, ...mapper, id: present.id });
  }
  return id;
}
