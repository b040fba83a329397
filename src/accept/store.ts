// The acceptance page's view of the cluster. Two kinds of reads:
//
//   - cached: watch-fed informers (records in Usher's namespace indexed by
//     selector, invitations, namespaces, Users). Opening a page costs the API
//     server nothing, and an unknown or malformed token is answered without a
//     single API request.
//   - fresh: before anything is written (a POST), the record, the invitation,
//     its namespace and the User are read again from the API server, since a
//     cache may lag a revocation by a moment and the page may run in several
//     replicas.
//
// The caches are lean (pageInvitation, pageRecord, pageNamespace; Users are few and kept whole): they keep
// only what a GET reads, because no write starts from a cached object here
// (every POST reads afresh first). A record is decoded once, when it arrives,
// not on every page view; its Secret is not kept.
//
// The page runs under its own ServiceAccount (charts/usher/templates/rbac.yaml):
// Secrets only in Usher's namespace, nothing on invitation status.
import type { KubeConfig, V1Namespace, V1Secret } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { GROUP, INVITATION_PLURAL, REISSUE_ANNOTATION, USER_PLURAL, VERSION, type User, type UserInvitation, type UserInvitationStatus } from '../api/types.ts';
import { Informer } from '../runtime/informer.ts';
import { cachedStrings } from '../runtime/intern.ts';
import { RestClient } from '../runtime/rest-client.ts';
import { customObjectsClient, namespacesClient, secretsClient, type TypedClient } from '../runtime/typed-client.ts';
import {
  MANAGED_BY,
  MANAGED_BY_LABEL,
  RECORD_SELECTOR,
  recordFromSecret,
  SELECTOR_LABEL,
  secretFromRecord,
  type InvitationRecord,
} from '../invitation/record.ts';
import { credentialsSecretName, PASSWORD_HASH_KEY } from '../invitation/naming.ts';

export const CREDENTIALS_TYPE = 'usher.dev/credentials';
export const CREDENTIALS_COMPONENT = 'credentials';
export { PASSWORD_HASH_KEY } from '../invitation/naming.ts';
export const USER_LABEL = 'usher.dev/user';
/** Tells the sign-in side how to prepare a typed password before verifying it against the hash. */
export const NORMALIZATION_ANNOTATION = 'usher.dev/password-normalization';
/** The acceptance claim that wrote a credentials Secret: later writes are fenced by it. */
export const CLAIM_ANNOTATION = 'usher.dev/acceptance-claim';

/** A password hash as stored, with what fences writes to it. */
export interface StoredCredentials {
  passwordHash: string;
  claim?: string;
  resourceVersion?: string;
}

/** Watch-fed reads: cost the API server nothing. */
export interface CachedReads {
  recordsBySelector(selector: string): InvitationRecord[];
  invitation(namespace: string, name: string): UserInvitation | undefined;
  namespaceLabels(name: string): Record<string, string> | undefined;
  user(name: string): User | undefined;
}

export interface AcceptStore {
  readonly cached: CachedReads;
  start(): Promise<void>;
  stop(): void;
  hasSynced(): boolean;
  /** Fresh reads. */
  record(name: string): Promise<InvitationRecord | undefined>;
  invitation(namespace: string, name: string): Promise<UserInvitation | undefined>;
  namespaceLabels(name: string): Promise<Record<string, string> | undefined>;
  user(name: string): Promise<User | undefined>;
  credentials(userName: string): Promise<StoredCredentials | undefined>;
  /** PUT with the record's resourceVersion: throws a 409 when someone else wrote it since it was read. */
  replaceRecord(record: InvitationRecord): Promise<InvitationRecord>;
  /** Create; throws a 409 (AlreadyExists) when a User of that name exists. */
  createUser(user: User): Promise<User>;
  /** Replace with the resourceVersion read: throws a 409 when it changed since. */
  replaceUser(user: User): Promise<User>;
  /** Deletes the User only if it still has this uid. */
  deleteUser(name: string, uid: string): Promise<void>;
  /**
   * Writes the password hash of a User, stamped with the claim that wrote it:
   * a create when `resourceVersion` is undefined (409 when it exists), else a
   * replace of exactly that version (409 when it changed).
   */
  writeCredentials(user: User, passwordHash: string, claim: string, resourceVersion: string | undefined): Promise<void>;
}

export interface KubeAcceptStoreOptions {
  kubeConfig: KubeConfig;
  /** Usher's namespace: the records. */
  namespace: string;
  /** Where password hashes live (usher.accept.credentialsNamespace). */
  credentialsNamespace: string;
  log: Logger;
  resyncPeriodMs?: number;
  /** The process's one API client (shared with the controller); a new one when absent. */
  rest?: RestClient;
}

/** The index of the record informer: records by their public selector, the page's whole lookup of a token. */
const BY_SELECTOR = 'selector';

/** A record as the page caches it: decoded once; no record when the Secret holds no valid one. */
export interface CachedRecord {
  metadata: { name: string; namespace?: string; resourceVersion?: string };
  /** The Secret's usher.dev/selector label, which the index files it under. */
  selectorLabel?: string;
  record?: InvitationRecord;
}

/** The page's cached record: the decoded payload and the selector label, nothing else of the Secret. */
export function pageRecord(secret: V1Secret): CachedRecord {
  const { name = '', namespace, resourceVersion } = secret.metadata ?? {};
  const selectorLabel = secret.metadata?.labels?.[SELECTOR_LABEL];
  const record = recordFromSecret(secret);
  return cachedStrings.internAll({
    metadata: { name, ...(namespace !== undefined ? { namespace } : {}), ...(resourceVersion !== undefined ? { resourceVersion } : {}) },
    ...(selectorLabel !== undefined ? { selectorLabel } : {}),
    ...(record ? { record } : {}),
  });
}

/** The page's cached namespace: its labels (the tenant label), nothing else. */
export function pageNamespace(namespace: V1Namespace): V1Namespace {
  const { name, resourceVersion, labels } = namespace.metadata ?? {};
  return cachedStrings.internAll({ metadata: { name, resourceVersion, ...(labels ? { labels } : {}) } });
}

/**
 * The page's cached invitation: what a GET reads (the binding, the address,
 * the scope and grants it shows, the issuance its status discloses, a pending
 * reissue request), not the link, the conditions or other annotations. Never
 * written back: a POST reads the invitation afresh.
 */
export function pageInvitation(invitation: UserInvitation): UserInvitation {
  const { name, namespace, uid, resourceVersion, deletionTimestamp, annotations } = invitation.metadata;
  const reissue = annotations?.[REISSUE_ANNOTATION];
  const status: UserInvitationStatus | undefined = invitation.status && {
    ...(invitation.status.issuance !== undefined ? { issuance: invitation.status.issuance } : {}),
    ...(invitation.status.lastHandledReissueAt !== undefined ? { lastHandledReissueAt: invitation.status.lastHandledReissueAt } : {}),
  };
  return cachedStrings.internAll({
    apiVersion: invitation.apiVersion,
    kind: invitation.kind,
    metadata: {
      name,
      ...(namespace !== undefined ? { namespace } : {}),
      ...(uid !== undefined ? { uid } : {}),
      ...(resourceVersion !== undefined ? { resourceVersion } : {}),
      ...(deletionTimestamp !== undefined ? { deletionTimestamp } : {}),
      ...(reissue !== undefined ? { annotations: { [REISSUE_ANNOTATION]: reissue } } : {}),
    },
    spec: invitation.spec,
    ...(status ? { status } : {}),
  });
}

export class KubeAcceptStore implements AcceptStore {
  readonly cached: CachedReads;
  private readonly options: KubeAcceptStoreOptions;
  private readonly secretClient: TypedClient<V1Secret>;
  private readonly namespaceClient: TypedClient<V1Namespace>;
  private readonly invitationClient: TypedClient<UserInvitation>;
  private readonly userClient: TypedClient<User>;
  private readonly records: Informer<CachedRecord, V1Secret>;
  private readonly invitations: Informer<UserInvitation>;
  private readonly namespaces: Informer<V1Namespace>;
  private readonly users: Informer<User>;

  constructor(options: KubeAcceptStoreOptions) {
    this.options = options;
    const { kubeConfig, namespace } = options;
    const rest = options.rest ?? new RestClient(kubeConfig);
    this.secretClient = secretsClient(rest);
    this.namespaceClient = namespacesClient(rest);
    this.invitationClient = customObjectsClient<UserInvitation>(rest, 'UserInvitation', { group: GROUP, version: VERSION, plural: INVITATION_PLURAL });
    this.userClient = customObjectsClient<User>(rest, 'User', { group: GROUP, version: VERSION, plural: USER_PLURAL });
    const log = options.log.child({ component: 'informer' });
    const resyncPeriodMs = options.resyncPeriodMs ?? 0;
    this.records = new Informer<CachedRecord, V1Secret>({
      kubeConfig,
      path: `/api/v1/namespaces/${namespace}/secrets`,
      labelSelector: RECORD_SELECTOR,
      list: (page) => this.secretClient.list({ namespace, labelSelector: RECORD_SELECTOR, ...page }),
      transform: pageRecord,
      resyncPeriodMs,
      log,
    });
    this.records.addIndex(BY_SELECTOR, (cached) => (cached.selectorLabel ? [cached.selectorLabel] : []));
    this.invitations = new Informer<UserInvitation>({
      kubeConfig,
      path: `/apis/${GROUP}/${VERSION}/${INVITATION_PLURAL}`,
      list: (page) => this.invitationClient.list(page),
      transform: pageInvitation,
      resyncPeriodMs,
      log,
    });
    this.namespaces = new Informer<V1Namespace>({
      kubeConfig,
      path: '/api/v1/namespaces',
      list: (page) => this.namespaceClient.list(page),
      transform: pageNamespace,
      resyncPeriodMs,
      log,
    });
    this.users = new Informer<User>({
      kubeConfig,
      path: `/apis/${GROUP}/${VERSION}/${USER_PLURAL}`,
      list: (page) => this.userClient.list(page),
      resyncPeriodMs,
      log,
    });

    this.cached = {
      // Copies: a caller may build on the record it gets, never on the cache's.
      recordsBySelector: (selector) => this.records.byIndex(BY_SELECTOR, selector).flatMap((cached) => (cached.record ? [structuredClone(cached.record)] : [])),
      invitation: (ns, name) => this.invitations.get(ns, name),
      namespaceLabels: (name) => {
        const ns = this.namespaces.get(undefined, name);
        return ns ? (ns.metadata?.labels ?? {}) : undefined;
      },
      user: (name) => this.users.get(undefined, name),
    };
  }

  async start(): Promise<void> {
    await Promise.all([this.records.start(), this.invitations.start(), this.namespaces.start(), this.users.start()]);
  }

  stop(): void {
    this.records.stop();
    this.invitations.stop();
    this.namespaces.stop();
    this.users.stop();
  }

  hasSynced(): boolean {
    return this.records.hasSynced() && this.invitations.hasSynced() && this.namespaces.hasSynced() && this.users.hasSynced();
  }

  async record(name: string): Promise<InvitationRecord | undefined> {
    const secret = await this.secretClient.getOrUndefined(this.options.namespace, name);
    return secret ? recordFromSecret(secret) : undefined;
  }

  async replaceRecord(record: InvitationRecord): Promise<InvitationRecord> {
    const replaced = await this.secretClient.replace(secretFromRecord(record));
    return recordFromSecret(replaced) ?? { ...record, resourceVersion: replaced.metadata?.resourceVersion };
  }

  async invitation(namespace: string, name: string): Promise<UserInvitation | undefined> {
    return this.invitationClient.getOrUndefined(namespace, name);
  }

  async namespaceLabels(name: string): Promise<Record<string, string> | undefined> {
    const namespace = await this.namespaceClient.getOrUndefined(undefined, name);
    return namespace ? (namespace.metadata?.labels ?? {}) : undefined;
  }

  async user(name: string): Promise<User | undefined> {
    return this.userClient.getOrUndefined(undefined, name);
  }

  async createUser(user: User): Promise<User> {
    return this.userClient.create(user);
  }

  async replaceUser(user: User): Promise<User> {
    return this.userClient.replace(user);
  }

  async deleteUser(name: string, uid: string): Promise<void> {
    await this.userClient.deleteIgnoringNotFound(undefined, name, { uid });
  }

  async credentials(userName: string): Promise<StoredCredentials | undefined> {
    const secret = await this.secretClient.getOrUndefined(this.options.credentialsNamespace, credentialsSecretName(userName));
    const raw = secret?.data?.[PASSWORD_HASH_KEY];
    if (!secret || secret.type !== CREDENTIALS_TYPE || !raw) return undefined;
    const claim = secret.metadata?.annotations?.[CLAIM_ANNOTATION];
    return {
      passwordHash: Buffer.from(raw, 'base64').toString('utf8'),
      ...(claim ? { claim } : {}),
      ...(secret.metadata?.resourceVersion ? { resourceVersion: secret.metadata.resourceVersion } : {}),
    };
  }

  async writeCredentials(user: User, passwordHash: string, claim: string, resourceVersion: string | undefined): Promise<void> {
    const namespace = this.options.credentialsNamespace;
    const name = credentialsSecretName(user.metadata.name);
    const body: V1Secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      type: CREDENTIALS_TYPE,
      metadata: {
        name,
        namespace,
        ...(resourceVersion ? { resourceVersion } : {}),
        labels: { [MANAGED_BY_LABEL]: MANAGED_BY, 'usher.dev/component': CREDENTIALS_COMPONENT, [USER_LABEL]: user.metadata.name },
        annotations: { [NORMALIZATION_ANNOTATION]: 'NFKC', [CLAIM_ANNOTATION]: claim },
        // Owned by the User: deleting the User deletes its password hash.
        ownerReferences: [{ apiVersion: user.apiVersion, kind: user.kind, name: user.metadata.name, uid: user.metadata.uid ?? '' }],
      },
      data: { [PASSWORD_HASH_KEY]: Buffer.from(passwordHash, 'utf8').toString('base64') },
    };
    if (resourceVersion === undefined) await this.secretClient.create(body);
    else await this.secretClient.replace(body);
  }
}
