// "Continue with SSO": the OpenID Connect authorization-code flow with PKCE
// (openid-client v6). The provider is discovered on first use rather than at
// start-up, so a provider that is down delays SSO, not the whole page; a
// failed discovery is retried on the next request.
import { setTimeout as delay } from 'node:timers/promises';
import * as client from 'openid-client';
import type { OidcConfig } from '../config/types.ts';

/** What travels, sealed, in the SSO cookie from the redirect to the callback. */
export interface SsoState {
  /** The invitation token the flow belongs to (the callback URL is the same for every invitation). */
  token: string;
  state: string;
  nonce: string;
  codeVerifier: string;
  /** Epoch milliseconds after which the callback is refused. */
  expiresAt: number;
}

/** Ten minutes to sign in at the provider, including a password reset there. */
export const SSO_STATE_TTL_MS = 10 * 60 * 1000;
/** Seconds to wait for the provider (discovery, token and userinfo requests). */
const PROVIDER_TIMEOUT_S = 10;
/** How long rendering the page waits for discovery before falling back to the issuer's origin. */
const FORM_TARGETS_WAIT_MS = 2000;

export interface SsoIdentity {
  email: string;
  emailVerified: boolean;
  givenName?: string;
  familyName?: string;
}

export function isSsoState(value: unknown): value is SsoState {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return ['token', 'state', 'nonce', 'codeVerifier'].every((k) => typeof v[k] === 'string') && typeof v.expiresAt === 'number';
}

export class OidcLogin {
  readonly redirectUri: string;
  private readonly config: OidcConfig;
  private discovered: Promise<client.Configuration> | undefined;

  constructor(config: OidcConfig, redirectUri: string) {
    this.config = config;
    this.redirectUri = redirectUri;
  }

  private discover(): Promise<client.Configuration> {
    this.discovered ??= client
      .discovery(
        new URL(this.config.issuer),
        this.config.clientId,
        { client_secret: this.config.clientSecret },
        client.ClientSecretBasic(this.config.clientSecret),
        {
          timeout: PROVIDER_TIMEOUT_S,
          // The config loader accepts http only for loopback issuers (tests, a provider on the same machine).
          // eslint-disable-next-line @typescript-eslint/no-deprecated -- deprecated only to stand out; loopback http is its documented use
          ...(this.config.issuer.startsWith('http:') ? { execute: [client.allowInsecureRequests] } : {}),
        },
      )
      .catch((err: unknown) => {
        this.discovered = undefined;
        throw err;
      });
    return this.discovered;
  }

  /**
   * The origins the browser is sent to when the SSO form is submitted, for
   * the page's CSP form-action (Chromium checks redirects after a form
   * submission against it). The issuer's origin when discovery fails, so the
   * page still renders.
   */
  async formTargets(): Promise<string[]> {
    const origins = new Set([new URL(this.config.issuer).origin]);
    try {
      // A provider that is slow to answer must not hold up the page for long.
      const configuration = await Promise.race([this.discover(), delay(FORM_TARGETS_WAIT_MS, undefined, { ref: false })]);
      const endpoint = configuration?.serverMetadata().authorization_endpoint;
      if (endpoint) origins.add(new URL(endpoint).origin);
    } catch {
      // Reported when the button is pressed.
    }
    return [...origins];
  }

  async start(token: string, now: Date): Promise<{ url: URL; state: SsoState }> {
    const configuration = await this.discover();
    const codeVerifier = client.randomPKCECodeVerifier();
    const state: SsoState = { token, state: client.randomState(), nonce: client.randomNonce(), codeVerifier, expiresAt: now.getTime() + SSO_STATE_TTL_MS };
    const url = client.buildAuthorizationUrl(configuration, {
      redirect_uri: this.redirectUri,
      scope: 'openid email profile',
      response_type: 'code',
      code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      state: state.state,
      nonce: state.nonce,
    });
    return { url, state };
  }

  /** Redeems the code from the callback; throws when the response, the state, the nonce or the ID token do not check out. */
  async finish(callbackUrl: URL, state: SsoState): Promise<SsoIdentity> {
    const configuration = await this.discover();
    const tokens = await client.authorizationCodeGrant(configuration, callbackUrl, {
      pkceCodeVerifier: state.codeVerifier,
      expectedState: state.state,
      expectedNonce: state.nonce,
      idTokenExpected: true,
    });
    const idToken = tokens.claims();
    if (!idToken) throw new Error('the provider returned no ID token');
    let claims: Record<string, unknown> = idToken;
    // Many providers put email and profile claims only in the userinfo response when an access token is issued.
    if (typeof claims.email !== 'string') claims = { ...(await client.fetchUserInfo(configuration, tokens.access_token, idToken.sub)), ...idToken };
    const email = typeof claims.email === 'string' ? claims.email : '';
    return {
      email,
      // Some providers send the boolean as a string.
      emailVerified: claims.email_verified === true || claims.email_verified === 'true',
      ...(typeof claims.given_name === 'string' ? { givenName: claims.given_name } : {}),
      ...(typeof claims.family_name === 'string' ? { familyName: claims.family_name } : {}),
    };
  }
}
