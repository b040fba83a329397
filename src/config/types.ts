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

export interface UsherConfig {
  /** Where the acceptance page is reachable from the invitee's browser, without a trailing slash. */
  baseUrl: string;
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
  accept: {
    /** Port of the acceptance page's HTTP server. */
    port: number;
  };
  controller: {
    workers: number;
    /** Full relist of every watched resource at this period, a safety net for missed events. */
    resyncPeriodMs: number;
  };
}
