// The demo's Keycloak (tools/demo.ts; the keycloak benchmark uses the same set-up):
// a throwaway Keycloak on 127.0.0.1 (tools/keycloak/server.ts: not detached, so it
// lives no longer than the demo), a realm set up as the README's steps say
// (tools/keycloak/realm.ts), the two client secrets in files of the demo's folder,
// Usher's config lines for them, and how to sign in once an invitation is accepted.
//
// Loopback only, plain HTTP: Keycloak listens on 127.0.0.1, and a realm's default
// `sslRequired: external` lets loopback (and private) addresses use HTTP. Reaching it
// from another machine would need HTTPS.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import KeycloakAdminClient from '@keycloak/keycloak-admin-client';
import type { Log } from './keycloak/process.ts';
import { setUpRealm, type RealmSetup } from './keycloak/realm.ts';
import { startKeycloak, type RunningKeycloak } from './keycloak/server.ts';

export interface DemoKeycloak {
  keycloak: RunningKeycloak;
  realm: RealmSetup;
  /** Files holding the secrets of the clients `usher` (the controller's) and `usher-accept` (the page's SSO). */
  secretFiles: { usher: string; accept: string };
  /** `usher.identity`, indented for the top of `usher:`. */
  identityYaml: string[];
  /** `oidc:`, indented to go under `usher.accept`. */
  oidcYaml: string[];
  stop(): Promise<void>;
}

export interface DemoKeycloakOptions {
  /** The acceptance page's port: SSO sends the browser back to it, as localhost or 127.0.0.1. */
  acceptPort: number;
  /** Where the secret files go (the demo's temp folder, removed when it stops). */
  dir: string;
  /** 'usher' */
  realm?: string;
  /** Let usher-accept use the password grant, so that a token request can show the claims (a demo and bench convenience). */
  directAccessGrants?: boolean;
  log?: Log;
}

/** A master-realm admin client for a Keycloak started by startKeycloak (its token lives a minute: use it at once). */
export async function masterAdmin(keycloak: Pick<RunningKeycloak, 'url' | 'adminUser' | 'adminPassword'>): Promise<KeycloakAdminClient> {
  const admin = new KeycloakAdminClient({ baseUrl: keycloak.url, realmName: 'master' });
  await admin.auth({ grantType: 'password', clientId: 'admin-cli', username: keycloak.adminUser, password: keycloak.adminPassword });
  return admin;
}

export async function startDemoKeycloak(opts: DemoKeycloakOptions): Promise<DemoKeycloak> {
  const keycloak = await startKeycloak(opts.log ? { log: opts.log } : {});
  try {
    const realm = await setUpRealm(await masterAdmin(keycloak), {
      realm: opts.realm ?? 'usher',
      acceptRedirectUris: ['localhost', '127.0.0.1'].map((host) => `http://${host}:${opts.acceptPort}/accept/oidc/callback`),
      directAccessGrants: opts.directAccessGrants ?? true,
    });
    const secretFiles = { usher: join(opts.dir, 'keycloak-usher.secret'), accept: join(opts.dir, 'keycloak-usher-accept.secret') };
    // No trailing newline: curl's --data-urlencode name@file sends the file as it is.
    writeFileSync(secretFiles.usher, realm.usher.clientSecret, { mode: 0o600 });
    writeFileSync(secretFiles.accept, realm.accept.clientSecret, { mode: 0o600 });
    return {
      keycloak,
      realm,
      secretFiles,
      identityYaml: [
        '  identity:',
        '    provider: keycloak',
        '    keycloak:',
        `      url: ${keycloak.url}`,
        `      realm: ${realm.realm}`,
        `      clientId: ${realm.usher.clientId}`,
        `      clientSecretFile: ${secretFiles.usher}`,
      ],
      oidcYaml: ['    oidc:', `      issuer: ${realm.issuer}`, `      clientId: ${realm.accept.clientId}`, `      clientSecretFile: ${secretFiles.accept}`],
      stop: () => keycloak.stop(),
    };
  } catch (err) {
    await keycloak.stop();
    throw err;
  }
}

/** Decodes the ID token of a token response on stdin and prints its claims (any Node; no packages). */
export const DECODE_ID_TOKEN =
  `node -e 'let b="";process.stdin.on("data",(c)=>(b+=c)).on("end",()=>{const t=JSON.parse(b);if(!t.id_token){console.error(b);process.exit(1)}` +
  `console.log(JSON.stringify(JSON.parse(Buffer.from(t.id_token.split(".")[1],"base64url")),null,2))})'`;

/** A shell command that signs `username` in with the password grant and prints the ID token's claims; the password comes from $PASSWORD. */
export function tokenRequest(kc: DemoKeycloak, username: string): string {
  return [
    `curl -s ${kc.realm.issuer}/protocol/openid-connect/token \\`,
    `    -d grant_type=password -d scope=openid -d client_id=${kc.realm.accept.clientId} \\`,
    `    --data-urlencode client_secret@${kc.secretFiles.accept} \\`,
    `    --data-urlencode username=${username} --data-urlencode "password=$PASSWORD" \\`,
    `  | ${DECODE_ID_TOKEN}`,
  ].join('\n');
}

/** What the demo prints: where and how Jane signs in after accepting. */
export function signInHelp(kc: DemoKeycloak, who: { name: string; email: string }): string {
  const { keycloak, realm } = kc;
  return `Keycloak ${keycloak.version}: ${keycloak.url} (loopback only), realm ${realm.realm}. After accepting, ${who.name} signs in there:

  1. Open ${who.name}'s acceptance link above, choose a password (15 characters or more) and accept.
  2. Sign in as ${who.email} with that password at the realm's account console (the success page links it):
       ${realm.issuer}/account
     or ask the token endpoint for an ID token and see its claims (groups, usher_roles):
       read -rs PASSWORD     # type ${who.name}'s password, then Enter
       ${tokenRequest(kc, who.email).replaceAll('\n', '\n       ')}
  kubectl get users.usher.dev shows PROVISIONED once the account is made.
  Admin console: ${keycloak.url}/admin/  (user ${keycloak.adminUser}, password ${keycloak.adminPassword}, this run only)`;
}
