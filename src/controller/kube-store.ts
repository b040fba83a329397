// The reconciler's view of the cluster: informer caches (invitations, the
// invitation records in Usher's namespace, the link Secrets beside invitations
// when linkDisclosure is Secret, namespaces, Users) for reading, and the API calls that
// change things, each of which also updates an overlay so the next reconcile
// reads its own writes even before the watch delivers them. What enqueues what
// is not here: see watches.ts.
//
// What the caches keep (the informers' transforms; managedFields go from all, and
// every short string is shared with the other cached objects, cachedStrings):
//   invitations, Users   whole: the reconcilers write them back (updateInvitation's
//                        finalizers, saveUser's memberships are PUTs of the cached
//                        object), so a field left out would be a field deleted
//   record Secrets       leanRecordSecret: type, name, namespace, uid, resourceVersion,
//                        labels and data; every record write is built from the decoded
//                        record (secretFromRecord), never from the cached Secret
//   link Secrets         leanLinkSecret: name, namespace, resourceVersion, ownerReferences
//                        and the link; writeLinkSecret builds the whole Secret
//   namespaces           leanNamespace: name, resourceVersion, labels, deletionTimestamp;
//                        never written
import { randomBytes } from 'node:crypto';
import type { KubeConfig, KubernetesObject, V1Namespace, V1Secret } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { GROUP, INVITATION_PLURAL, USER_PLURAL, VERSION, type User, type UserInvitation, type UserInvitationStatus, type UserStatus } from '../api/types.ts';
import type { UsherConfig } from '../config/types.ts';
import type { ClusterReader, ClusterWriter, UserStore } from './ports.ts';
import {
  COMPONENT_LABEL,
  INVITATION_UID_LABEL,
  MANAGED_BY,
  MANAGED_BY_LABEL,
  ownerReferenceTo,
  RECORD_SELECTOR,
  recordFromSecret,
  secretFromRecord,
  type InvitationRecord,
} from '../invitation/record.ts';
import { EventRecorder, restEventsApi } from '../runtime/events.ts';
import { Informer, objectKey, splitObjectKey, type ObjectLike } from '../runtime/informer.ts';
import { cachedStrings } from '../runtime/intern.ts';
import { Overlay } from '../runtime/overlay.ts';
import { RestClient } from '../runtime/rest-client.ts';
import { customObjectsClient, namespacesClient, secretsClient, type TypedClient } from '../runtime/typed-client.ts';
import { credentialsSecretName, linkSecretNameFor, PASSWORD_HASH_KEY } from '../invitation/naming.ts';

export const LINK_COMPONENT = 'invitation-link';
const LINK_KEY = 'link';
const LINK_SELECTOR = `${MANAGED_BY_LABEL}=${MANAGED_BY},${COMPONENT_LABEL}=${LINK_COMPONENT}`;
/** The index of the record informer: records by the uid of the invitation they are bound to. */
const BY_INVITATION_UID = 'invitationUid';

const keyOf = (obj: ObjectLike): string => objectKey(obj.metadata?.namespace, obj.metadata?.name ?? '');

/** A record Secret as the controller caches it: what recordFromSecret, the uid index and the watches read. */
export function leanRecordSecret(secret: V1Secret): V1Secret {
  const { name, namespace, uid, resourceVersion, labels } = secret.metadata ?? {};
  return cachedStrings.internAll({
    ...(secret.type !== undefined ? { type: secret.type } : {}),
    metadata: {
      name,
      namespace,
      ...(uid !== undefined ? { uid } : {}),
      resourceVersion,
      ...(labels ? { labels } : {}),
    },
    ...(secret.data ? { data: secret.data } : {}),
  });
}

/** A link Secret as the controller caches it: its owner (the watches) and the link (linkSecret()). */
export function leanLinkSecret(secret: V1Secret): V1Secret {
  const { name, namespace, resourceVersion, ownerReferences } = secret.metadata ?? {};
  const link = secret.data?.[LINK_KEY];
  return cachedStrings.internAll({
    metadata: { name, namespace, resourceVersion, ...(ownerReferences ? { ownerReferences } : {}) },
    ...(link !== undefined ? { data: { [LINK_KEY]: link } } : {}),
  });
}

/** A namespace as the controller caches it: its labels (the tenant) and whether it is being deleted (the RBAC watches). */
export function leanNamespace(namespace: V1Namespace): V1Namespace {
  const { name, resourceVersion, labels, deletionTimestamp } = namespace.metadata ?? {};
  return cachedStrings.internAll({
    metadata: { name, resourceVersion, ...(labels ? { labels } : {}), ...(deletionTimestamp ? { deletionTimestamp } : {}) },
  });
}

export class KubeCluster implements ClusterReader, ClusterWriter, UserStore {
  readonly invitations: Informer<UserInvitation>;
  /** Invitation records, in Usher's namespace only. */
  readonly secrets: Informer<V1Secret>;
  /** Link Secrets beside the invitations (linkDisclosure: Secret only; otherwise never started). */
  readonly linkSecrets: Informer<V1Secret> | undefined;
  readonly namespaces: Informer<V1Namespace>;
  readonly users: Informer<User>;
  /** Secrets anywhere: the records in Usher's namespace, the link Secrets beside the invitations. */
  private readonly secretClient: TypedClient<V1Secret>;
  private readonly invitationClient: TypedClient<UserInvitation>;
  private readonly userClient: TypedClient<User>;
  private readonly recorder: EventRecorder;
  private readonly invitationOverlay: Overlay<UserInvitation>;
  private readonly secretOverlay: Overlay<V1Secret>;
  private readonly linkOverlay: Overlay<V1Secret>;
  private readonly userOverlay: Overlay<User>;
  private readonly config: UsherConfig;

  /**
   * `instance` names this replica in the Events it records (the pod's name in a
   * cluster); `rest` is the process's one API client (its pool of keep-alive
   * connections), shared with the page and leader election.
   */
  constructor(
    kubeConfig: KubeConfig,
    config: UsherConfig,
    log: Logger,
    instance = `usher-${randomBytes(3).toString('hex')}`,
    rest: RestClient = new RestClient(kubeConfig),
  ) {
    this.config = config;
    this.secretClient = secretsClient(rest);
    this.invitationClient = customObjectsClient<UserInvitation>(rest, 'UserInvitation', { group: GROUP, version: VERSION, plural: INVITATION_PLURAL });
    this.userClient = customObjectsClient<User>(rest, 'User', { group: GROUP, version: VERSION, plural: USER_PLURAL });
    const namespaceClient = namespacesClient(rest);
    this.recorder = new EventRecorder({
      api: restEventsApi(rest),
      reportingController: 'usher.dev/usher',
      reportingInstance: instance,
      log,
    });
    const resyncPeriodMs = config.controller.resyncPeriodMs;
    const informerLog = log.child({ component: 'informer' });

    this.invitations = new Informer<UserInvitation>({
      kubeConfig,
      path: `/apis/${GROUP}/${VERSION}/${INVITATION_PLURAL}`,
      list: (page) => this.invitationClient.list(page),
      // Whole (see above), its strings shared.
      transform: (invitation) => cachedStrings.internAll(invitation),
      resyncPeriodMs,
      log: informerLog,
    });
    this.secrets = new Informer<V1Secret>({
      kubeConfig,
      path: `/api/v1/namespaces/${config.namespace}/secrets`,
      labelSelector: RECORD_SELECTOR,
      list: (page) => this.secretClient.list({ namespace: config.namespace, labelSelector: RECORD_SELECTOR, ...page }),
      transform: leanRecordSecret,
      resyncPeriodMs,
      log: informerLog,
    });
    this.secrets.addIndex(BY_INVITATION_UID, (secret) => {
      const uid = secret.metadata?.labels?.[INVITATION_UID_LABEL];
      return uid ? [uid] : [];
    });
    // Only with linkDisclosure: Secret does the controller need Secrets outside its own namespace (and the chart grants them).
    this.linkSecrets =
      config.invitations.linkDisclosure === 'Secret'
        ? new Informer<V1Secret>({
            kubeConfig,
            path: '/api/v1/secrets',
            labelSelector: LINK_SELECTOR,
            list: (page) => this.secretClient.list({ labelSelector: LINK_SELECTOR, ...page }),
            transform: leanLinkSecret,
            resyncPeriodMs,
            log: informerLog,
          })
        : undefined;
    this.namespaces = new Informer<V1Namespace>({
      kubeConfig,
      path: '/api/v1/namespaces',
      list: (page) => namespaceClient.list(page),
      transform: leanNamespace,
      resyncPeriodMs,
      log: informerLog,
    });
    this.users = new Informer<User>({
      kubeConfig,
      path: `/apis/${GROUP}/${VERSION}/${USER_PLURAL}`,
      list: (page) => this.userClient.list(page),
      transform: (user) => cachedStrings.internAll(user),
      resyncPeriodMs,
      log: informerLog,
    });

    this.invitationOverlay = overlayFor(this.invitations);
    this.secretOverlay = overlayFor(this.secrets);
    this.linkOverlay = this.linkSecrets ? overlayFor(this.linkSecrets) : new Overlay(() => undefined);
    this.userOverlay = overlayFor(this.users);
  }

  async start(): Promise<void> {
    await Promise.all(this.informers().map((i) => i.start()));
  }

  stop(): void {
    for (const informer of this.informers()) informer.stop();
  }

  hasSynced(): boolean {
    return this.informers().every((i) => i.hasSynced());
  }

  private informers(): Informer<KubernetesObject>[] {
    return [this.namespaces, this.secrets, this.users, this.invitations, ...(this.linkSecrets ? [this.linkSecrets] : [])] as Informer<KubernetesObject>[];
  }

  /** Records whose invitation no longer exists (deleted while Usher was down, or just now). */
  orphanRecords(): InvitationRecord[] {
    const live = new Set(this.invitations.list().map((i) => i.metadata.uid));
    return this.secrets
      .list()
      .flatMap((s) => recordFromSecret(s) ?? [])
      .filter((r) => !live.has(r.invitationUid));
  }

  // ---- ClusterReader

  invitation(namespace: string, name: string): UserInvitation | undefined {
    return this.invitationOverlay.resolve(objectKey(namespace, name), this.invitations.get(namespace, name));
  }

  records(invitationUid: string): InvitationRecord[] {
    const keys = new Set(this.secrets.byIndex(BY_INVITATION_UID, invitationUid).map(keyOf));
    for (const [key, secret] of this.secretOverlay.pending()) {
      if (secret?.metadata?.labels?.[INVITATION_UID_LABEL] === invitationUid) keys.add(key);
    }
    const records: InvitationRecord[] = [];
    for (const key of keys) {
      const { namespace, name } = splitObjectKey(key);
      const secret = this.secretOverlay.resolve(key, this.secrets.get(namespace, name));
      const record = secret ? recordFromSecret(secret) : undefined;
      if (record) records.push(record);
    }
    return records.sort((a, b) => a.issuance - b.issuance);
  }

  namespaceTenant(namespace: string): string | undefined {
    return this.namespaces.get(undefined, namespace)?.metadata?.labels?.[this.config.tenancy.namespaceLabel];
  }

  user(name: string): User | undefined {
    return this.userOverlay.resolve(name, this.users.get(undefined, name));
  }

  linkSecret(namespace: string, invitationName: string): string | undefined {
    const name = linkSecretNameFor(invitationName);
    const secret = this.linkOverlay.resolve(objectKey(namespace, name), this.linkSecrets?.get(namespace, name));
    const raw = secret?.data?.[LINK_KEY];
    return raw ? Buffer.from(raw, 'base64').toString('utf8') : undefined;
  }

  // ---- ClusterWriter

  async createRecord(record: InvitationRecord): Promise<InvitationRecord> {
    const created = await this.secretClient.create(secretFromRecord(record));
    this.secretOverlay.wrote(objectKey(record.namespace, record.name), created, created.metadata?.resourceVersion);
    return { ...record, resourceVersion: created.metadata?.resourceVersion };
  }

  async updateRecord(record: InvitationRecord): Promise<InvitationRecord> {
    const replaced = await this.secretClient.replace(secretFromRecord(record));
    this.secretOverlay.wrote(objectKey(record.namespace, record.name), replaced, replaced.metadata?.resourceVersion);
    return { ...record, resourceVersion: replaced.metadata?.resourceVersion };
  }

  async deleteRecord(name: string): Promise<void> {
    const namespace = this.config.namespace;
    await this.secretClient.deleteIgnoringNotFound(namespace, name);
    this.secretOverlay.deleted(objectKey(namespace, name));
  }

  async writeLinkSecret(owner: UserInvitation, link: string): Promise<void> {
    const namespace = owner.metadata.namespace ?? '';
    const name = linkSecretNameFor(owner.metadata.name);
    const body: V1Secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'Opaque',
      metadata: { name, namespace, labels: { [MANAGED_BY_LABEL]: MANAGED_BY, [COMPONENT_LABEL]: LINK_COMPONENT }, ownerReferences: [ownerReferenceTo(owner)] },
      data: { [LINK_KEY]: Buffer.from(link, 'utf8').toString('base64') },
    };
    // Ours wins: whatever someone else wrote into it is replaced.
    const written = await this.secretClient.createOrReplace(body);
    this.linkOverlay.wrote(objectKey(namespace, name), written, written.metadata?.resourceVersion);
  }

  async writeStatus(invitation: UserInvitation, status: UserInvitationStatus): Promise<UserInvitation> {
    const { namespace = '', name } = invitation.metadata;
    // PUT with the resourceVersion we read: optimistic concurrency, and the exact status (a merge patch could not drop keys).
    const written = await this.invitationClient.replaceStatus({ ...invitation, status });
    this.invitationOverlay.wrote(objectKey(namespace, name), written, written.metadata.resourceVersion);
    return written;
  }

  async readInvitation(namespace: string, name: string): Promise<UserInvitation | undefined> {
    return this.invitationClient.getOrUndefined(namespace, name);
  }

  async saveUser(user: User): Promise<User> {
    const saved = user.metadata.resourceVersion ? await this.userClient.replace(user) : await this.userClient.create(user);
    this.userOverlay.wrote(saved.metadata.name, saved, saved.metadata.resourceVersion);
    return saved;
  }

  async deleteUser(name: string, preconditions: { uid: string; resourceVersion: string }): Promise<void> {
    await this.userClient.deleteIgnoringNotFound(undefined, name, {
      ...(preconditions.uid ? { uid: preconditions.uid } : {}),
      ...(preconditions.resourceVersion ? { resourceVersion: preconditions.resourceVersion } : {}),
    });
    // Not marked deleted in the overlay: a User with a finalizer of its own (usher.dev/identity-account)
    // stays, terminating, until the identity controller, reading this same cache, has released its
    // account. The informer shows that, and the deletion after it; a stale read meanwhile ends in a
    // conflict or a NotFound, never in a second deletion.
  }

  async updateInvitation(invitation: UserInvitation): Promise<UserInvitation> {
    const { namespace = '', name } = invitation.metadata;
    // PUT with the resourceVersion read: a spec edited meanwhile is a conflict, never overwritten.
    const written = await this.invitationClient.replace(invitation);
    // The last finalizer off a deleted invitation: the API server removes it (the reply may carry the
    // resourceVersion the cache still holds, with the finalizer).
    if (written.metadata.deletionTimestamp && !written.metadata.finalizers?.length) this.invitationOverlay.deleted(objectKey(namespace, name));
    else this.invitationOverlay.wrote(objectKey(namespace, name), written, written.metadata.resourceVersion);
    return written;
  }

  // ---- UserStore (the identity controller)

  record(name: string): InvitationRecord | undefined {
    const key = objectKey(this.config.namespace, name);
    const secret = this.secretOverlay.resolve(key, this.secrets.get(this.config.namespace, name));
    return secret ? recordFromSecret(secret) : undefined;
  }

  async passwordHash(userName: string): Promise<string | undefined> {
    // Read when an account is created, once per person: not worth a cache of every password hash.
    const secret = await this.secretClient.getOrUndefined(this.config.accept.credentialsNamespace, credentialsSecretName(userName));
    const raw = secret?.data?.[PASSWORD_HASH_KEY];
    return raw ? Buffer.from(raw, 'base64').toString('utf8') : undefined;
  }

  async writeUserStatus(user: User, status: UserStatus): Promise<User> {
    const written = await this.userClient.replaceStatus({ ...user, status });
    this.userOverlay.wrote(written.metadata.name, written, written.metadata.resourceVersion);
    return written;
  }

  userEvent(user: User, type: 'Normal' | 'Warning', reason: string, message: string): void {
    this.recorder.record(user, type, reason, message);
  }

  event(invitation: UserInvitation, type: 'Normal' | 'Warning', reason: string, message: string): void {
    // Best effort: a failure to record one is logged and must not fail the reconcile.
    this.recorder.record(invitation, type, reason, message);
  }
}

/**
 * Read-your-writes over the informer: the overlay forgets a write once the
 * informer shows it, and everything written before a relist's list request
 * once that relist has replaced the cache.
 */
export function overlayFor<T extends ObjectLike>(informer: Informer<T>): Overlay<T> {
  const overlay = new Overlay<T>(
    (key) => {
      const { namespace, name } = splitObjectKey(key);
      return informer.get(namespace, name)?.metadata?.resourceVersion;
    },
    // The informer's clock, so that clear() can compare with the moment a list was requested.
    { clock: () => performance.now() },
  );
  for (const type of ['add', 'update'] as const) {
    informer.on(type, (obj) => {
      overlay.observed(keyOf(obj), obj.metadata?.resourceVersion);
    });
  }
  informer.on('delete', (obj) => {
    overlay.observed(keyOf(obj), undefined);
  });
  informer.onRelisted(({ requestedAt }) => {
    overlay.clear(requestedAt);
  });
  // No relist clears it now and then any more: drop, once a resync period, what has lapsed anyway (the overlay's 60 s).
  informer.onResynced(() => {
    overlay.clear(performance.now() - 60_000);
  });
  return overlay;
}
