// The AuthenticationConfiguration (apiserver.config.k8s.io/v1, kube-apiserver's
// --authentication-config) that makes an API server trust one OIDC issuer's ID tokens.
import { dump } from 'js-yaml';

export interface OidcAuthConfigOptions {
  /** The issuer, https only (the API server refuses http): it must equal the discovery document's `issuer` and the tokens' `iss`. */
  issuer: string;
  /** PEM of the CA the issuer's serving certificate chains to. */
  caPem: string;
  /** The ID tokens' `aud`: the client they were issued to (Keycloak: the acceptance page's client id). */
  audience: string;
  /** Put before every username, e.g. 'oidc:' (the API server requires one to be given; '' for none). */
  usernamePrefix: string;
  /** Put before every group, e.g. 'oidc:'. */
  groupsPrefix: string;
}

/** The YAML of an AuthenticationConfiguration with one JWT authenticator. */
export function oidcAuthenticationConfig(opts: OidcAuthConfigOptions): string {
  return dump(
    {
      apiVersion: 'apiserver.config.k8s.io/v1',
      kind: 'AuthenticationConfiguration',
      jwt: [
        {
          issuer: { url: opts.issuer, certificateAuthority: opts.caPem, audiences: [opts.audience] },
          claimMappings: {
            // preferred_username, not email: the API server takes the email claim only with
            // email_verified true, and Usher's accounts have email_verified false after a password
            // acceptance (a mailed link proves the link, not the mailbox). Usher sets the Keycloak
            // username to the invitee's address, so preferred_username is that address; this is safe
            // only while the realm does not let people edit their username (Keycloak's realm setting
            // editUsernameAllowed stays false), or anyone could rename themselves into someone else.
            username: { claim: 'preferred_username', prefix: opts.usernamePrefix },
            // Keycloak's group mapper (the realm's `usher` client scope) gives full paths: /developers.
            groups: { claim: 'groups', prefix: opts.groupsPrefix },
          },
        },
      ],
    },
    { lineWidth: -1, noRefs: true },
  );
}
