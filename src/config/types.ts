// Usher's configuration, as the rest of the code sees it: the YAML file
// (see examples/usher-config.yaml) after validation and defaulting, with
// durations already converted to milliseconds and secrets read from files/env.

export type LinkDisclosure = 'Status' | 'Secret';

export interface MailConfig {
  host: string;
  port: number;
  /** 'implicit': TLS from the first byte (port 465); 'starttls': STARTTLS required; 'none': plain (tests, local catchers). */
  tls: 'implicit' | 'starttls' | 'none';
  /** Accept self-signed server certificates (tests, internal relays). */
  allowSelfSigned: boolean;
  auth?: { user: string; password: string };
  from: string;
  replyTo?: string;
  /** Pooled SMTP connections and the most at once. */
  pool: { maxConnections: number };
  /** Messages per second at most (providers that throttle); 0 for no limit. */
  rateLimitPerSecond: number;
  /** Folder with operator-supplied templates replacing the built-in ones. */
  templatesDir?: string;
}

export interface OidcConfig {
  /** The OpenID Provider's issuer identifier (https; http only on loopback, for tests and local setups). */
  issuer: string;
  clientId: string;
  /** Read from clientSecretFile or clientSecretEnv. */
  clientSecret: string;
}

export interface AcceptConfig {
  /** Port of the acceptance page's HTTP server. */
  port: number;
  /** Where a person signs in once they have accepted; shown on the success page. */
  loginUrl?: string;
  /** Namespace of the Secrets holding password hashes (default usher.namespace, Usher's own). */
  credentialsNamespace: string;
  /** When set, the page offers "Continue with SSO" instead of a password form. */
  oidc?: OidcConfig;
  /**
   * Key material for the CSRF tokens and the SSO state cookie, from csrfKeyFile.
   * Absent: a random key per process, which is fine for one replica; with
   * several replicas behind one Service a form rendered by one and posted to
   * another would fail its CSRF check, so they need the same key file.
   */
  csrfKey?: string;
  rateLimit: {
    /** Requests per minute from one client address (all pages). */
    perClientPerMinute: number;
    /** Requests per minute for one invitation link, whatever the client. */
    perTokenPerMinute: number;
  };
  /**
   * Addresses or CIDR ranges of reverse proxies whose X-Forwarded-For is
   * believed (default none: the peer address is the client). Without it,
   * behind an ingress every client shares the ingress's address and its
   * per-client rate limit. A number N believes the last N hops of
   * X-Forwarded-For, whoever the peer is: 1 behind one Ingress controller,
   * which appends the address it saw (so a client's own X-Forwarded-For
   * entries are ignored). Then the page must be reachable only through it.
   */
  trustProxy: string[] | number;
}

export interface KeycloakConfig {
  /** Keycloak's base URL, without /realms and without a trailing slash. */
  url: string;
  realm: string;
  /** A confidential client of that realm with a service account (client-credentials grant). */
  clientId: string;
  /** Read from clientSecretFile or clientSecretEnv. */
  clientSecret: string;
  /** PEM file of the CA that signed Keycloak's certificate, when it is not a public one. */
  caFile?: string;
}

/** Where accepted people get their account (usher.identity); absent for provider none. */
export interface IdentityConfig {
  provider: 'keycloak';
  keycloak: KeycloakConfig;
  /** What deleting a User does to the account Usher created for it (default Disable). */
  onUserDelete: 'Disable' | 'Delete';
}

/** What becomes of the access an invitation granted when the invitation goes (usher.access). */
export interface AccessConfig {
  /**
   * RemoveMembership (default): deleting an accepted invitation takes its
   * membership off the User, through the usher.dev/membership finalizer.
   * Keep: the membership stays (and invitations carry no finalizer).
   */
  onInvitationDelete: 'RemoveMembership' | 'Keep';
  /** Whether a User left without any membership is deleted, and with it its credentials Secret (default true). */
  deleteUserWithoutMemberships: boolean;
}

/**
 * Memberships projected into Kubernetes RBAC (usher.rbac; absent when off,
 * the default). README, "From invitation to kubectl"; docs/adr/0008.
 */
export interface RbacConfig {
  /** Platform role name → the ClusterRole its holders are bound to (developer: edit). */
  roleMap: Record<string, string>;
  /** Invited group name → the ClusterRole the group is bound to, as a `Group` subject (developers: view). */
  groupMap: Record<string, string>;
  /** How the API server names the person (its AuthenticationConfiguration's claimMappings.username). */
  username: {
    /**
     * IdentityUsername: the account's username at the identity provider
     * (status.identity.username; Keycloak's preferred_username claim), the
     * default with usher.identity. Email: the User's address (the email claim),
     * the default without it.
     */
    from: 'IdentityUsername' | 'Email';
    /** Prepended to the name, as claimMappings.username.prefix does (default ""). */
    prefix: string;
  };
  /** How the API server names groups (claimMappings.groups): the token's group paths, /tenants/<t>/<g>, with this prefix. */
  groups: { prefix: string };
}

export interface UsherConfig {
  /** Where the acceptance page is reachable from the invitee's browser, without a trailing slash. */
  baseUrl: string;
  /**
   * Usher's own namespace (usher.namespace, default usher-system): invitation
   * records live here, where tenants have no access (docs/adr/0001).
   */
  namespace: string;
  invitations: {
    /** Default lifetime of a link (usher.security.invitations.expireAfter, default P7D). */
    expireAfterMs: number;
    /** The ISO-8601 text it came from, for messages. */
    expireAfter: string;
    /** Upper bound for spec.expireAfter (usher.security.invitations.maxExpireAfter, default P90D). */
    maxExpireAfterMs: number;
    maxExpireAfter: string;
    /** Where the link is disclosed: status.link (default) or a Secret beside the invitation. */
    linkDisclosure: LinkDisclosure;
    /** Whether an invitation must grant at least one group or role (default true). */
    requireGroupOrRole: boolean;
  };
  tenancy: {
    /** Namespace label naming the tenant a namespace belongs to (default usher.dev/tenant). */
    namespaceLabel: string;
    /** Namespaces from which Instance-scope invitations are allowed (default none). */
    instanceNamespaces: string[];
  };
  /** Absent when no mail server is configured: links are then shared by hand. */
  mail?: MailConfig;
  accept: AcceptConfig;
  /** Absent for provider none: acceptance ends in the User resource and its password hash. */
  identity?: IdentityConfig;
  access: AccessConfig;
  /** Absent when off (the default): memberships end at the User (and its identity provider account). */
  rbac?: RbacConfig;
  controller: {
    workers: number;
    /** Full relist of every watched resource at this period, a safety net for missed events. */
    resyncPeriodMs: number;
  };
}
