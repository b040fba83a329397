// The reconciler's view of the cluster: informer caches (invitations, the
// invitation records in Usher's namespace, the link Secrets beside invitations
// when linkDisclosure is Secret, namespaces, Users) for reading, and the API calls that
// change things, each of which also updates an overlay so the next reconcile
// reads its own writes even before the watch delivers them.
import { randomBytes } from 'node:crypto';
import { CoreV1Api, CustomObjectsApi, EventsV1Api, V1MicroTime, type KubeConfig, type KubernetesObject, type V1Namespace, type V1Secret } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { GROUP, INVITATION_PLURAL, USER_PLURAL, VERSION, type User, type UserInvitation, type UserInvitationStatus } from '../api/types.ts';
import type { UsherConfig } from '../config/types.ts';
import type { ClusterReader, ClusterWriter } from './ports.ts';
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
import { apiErrorOf } from '../runtime/client.ts';
import { Informer } from '../runtime/informer.ts';
import { Overlay } from '../runtime/overlay.ts';
import { makePooledApiClient, PooledAuthentication } from '../runtime/pooled-client.ts';
import { linkSecretNameFor } from '../invitation/naming.ts';

export const LINK_COMPONENT = 'invitation-link';
const LINK_KEY = 'link';
const LINK_SELECTOR = `${MANAGED_BY_LABEL}=${MANAGED_BY},${COMPONENT_LABEL}=${LINK_COMPONENT}`;

const keyOf = (namespace: string | undefined, name: string | undefined): string => `${namespace ?? ''}/${name ?? ''}`;

export interface ClusterEvents {
  /** An invitation needs a look (it changed, or something it depends on did). */
  onInvitation(namespace: string, name: string): void;
  /** An invitation is gone: its records must go too. */
  onInvitationDeleted?(uid: string): void;
}

export class KubeCluster implements ClusterReader, ClusterWriter {
  readonly invitations: Informer<UserInvitation>;
  /** Invitation records, in Usher's namespace only. */
  readonly secrets: Informer<V1Secret>;
  /** Link Secrets beside the invitations (linkDisclosure: Secret only; otherwise never started). */
  readonly linkSecrets: Informer<V1Secret> | undefined;
  readonly namespaces: Informer<V1Namespace>;
  readonly users: Informer<User>;
  private readonly core: CoreV1Api;
  private readonly custom: CustomObjectsApi;
  private readonly eventsApi: EventsV1Api;
  private readonly invitationOverlay: Overlay<UserInvitation>;
  private readonly secretOverlay: Overlay<V1Secret>;
  private readonly linkOverlay: Overlay<V1Secret>;
  private readonly userOverlay: Overlay<User>;
  /** invitation uid → keys of its record Secrets, kept from the Secret informer's events. */
  private readonly recordIndex = new Map<string, Set<string>>();
  private readonly config: UsherConfig;
  private readonly log: Logger;
  private readonly instance: string;

  /** `instance` names this replica in the Events it records (the pod's name in a cluster). */
  constructor(kubeConfig: KubeConfig, config: UsherConfig, log: Logger, events: ClusterEvents, instance = `usher-${randomBytes(3).toString('hex')}`) {
    this.config = config;
    this.log = log;
    this.instance = instance;
    // One pool of keep-alive connections for every request (see PooledAuthentication).
    const auth = new PooledAuthentication(kubeConfig);
    this.core = makePooledApiClient(kubeConfig, CoreV1Api, auth);
    this.custom = makePooledApiClient(kubeConfig, CustomObjectsApi, auth);
    this.eventsApi = makePooledApiClient(kubeConfig, EventsV1Api, auth);
    const resyncPeriodMs = config.controller.resyncPeriodMs;
    const informerLog = log.child({ component: 'informer' });

    this.invitations = new Informer<UserInvitation>({
      kubeConfig,
      path: `/apis/${GROUP}/${VERSION}/${INVITATION_PLURAL}`,
      list: async () => (await this.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: INVITATION_PLURAL })) as ListOf<UserInvitation>,
      resyncPeriodMs,
      log: informerLog,
    });
    this.secrets = new Informer<V1Secret>({
      kubeConfig,
      path: `/api/v1/namespaces/${config.namespace}/secrets`,
      labelSelector: RECORD_SELECTOR,
      list: () => this.core.listNamespacedSecret({ namespace: config.namespace, labelSelector: RECORD_SELECTOR }),
      resyncPeriodMs,
      log: informerLog,
    });
    // Only with linkDisclosure: Secret does the controller need Secrets outside its own namespace (and the chart grants them).
    this.linkSecrets =
      config.invitations.linkDisclosure === 'Secret'
        ? new Informer<V1Secret>({
            kubeConfig,
            path: '/api/v1/secrets',
            labelSelector: LINK_SELECTOR,
            list: () => this.core.listSecretForAllNamespaces({ labelSelector: LINK_SELECTOR }),
            resyncPeriodMs,
            log: informerLog,
          })
        : undefined;
    this.namespaces = new Informer<V1Namespace>({
      kubeConfig,
      path: '/api/v1/namespaces',
      list: () => this.core.listNamespace(),
      resyncPeriodMs,
      log: informerLog,
    });
    this.users = new Informer<User>({
      kubeConfig,
      path: `/apis/${GROUP}/${VERSION}/${USER_PLURAL}`,
      list: async () => (await this.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: USER_PLURAL })) as ListOf<User>,
      resyncPeriodMs,
      log: informerLog,
    });

    const cachedVersion =
      (informer: Informer<UserInvitation> | Informer<V1Secret> | Informer<User>) =>
      (key: string): string | undefined => {
        const slash = key.indexOf('/');
        const object = slash < 0 ? informer.get(undefined, key) : informer.get(key.slice(0, slash), key.slice(slash + 1));
        return object?.metadata?.resourceVersion;
      };
    this.invitationOverlay = new Overlay(cachedVersion(this.invitations));
    this.secretOverlay = new Overlay(cachedVersion(this.secrets));
    const linkSecrets = this.linkSecrets;
    this.linkOverlay = new Overlay(linkSecrets ? cachedVersion(linkSecrets) : () => undefined);
    this.userOverlay = new Overlay(cachedVersion(this.users));

    const enqueue = (inv: UserInvitation): void => {
      events.onInvitation(inv.metadata.namespace ?? '', inv.metadata.name);
    };
    for (const type of ['add', 'update'] as const) {
      this.invitations.on(type, (inv) => {
        this.invitationOverlay.observed(keyOf(inv.metadata.namespace, inv.metadata.name), inv.metadata.resourceVersion);
        enqueue(inv);
      });
      this.secrets.on(type, (secret) => {
        this.secretOverlay.observed(keyOf(secret.metadata?.namespace, secret.metadata?.name), secret.metadata?.resourceVersion);
        this.indexRecord(secret, true);
        this.enqueueRecordOwner(secret, events);
      });
      this.linkSecrets?.on(type, (secret) => {
        this.linkOverlay.observed(keyOf(secret.metadata?.namespace, secret.metadata?.name), secret.metadata?.resourceVersion);
        this.enqueueOwner(secret, events);
      });
      this.users.on(type, (user) => {
        this.userOverlay.observed(user.metadata.name, user.metadata.resourceVersion);
      });
      // A namespace's tenant label decides what its invitations may do.
      this.namespaces.on(type, (ns) => {
        for (const inv of this.invitations.list(ns.metadata?.name)) enqueue(inv);
      });
    }
    this.invitations.on('delete', (inv) => {
      this.invitationOverlay.observed(keyOf(inv.metadata.namespace, inv.metadata.name), undefined);
      // Its records cannot be owned by it (another namespace): the controller removes them.
      events.onInvitationDeleted?.(inv.metadata.uid ?? '');
    });
    this.secrets.on('delete', (secret) => {
      this.secretOverlay.observed(keyOf(secret.metadata?.namespace, secret.metadata?.name), undefined);
      this.indexRecord(secret, false);
      this.enqueueRecordOwner(secret, events);
    });
    this.linkSecrets?.on('delete', (secret) => {
      this.linkOverlay.observed(keyOf(secret.metadata?.namespace, secret.metadata?.name), undefined);
      this.enqueueOwner(secret, events);
    });
    this.users.on('delete', (user) => {
      this.userOverlay.observed(user.metadata.name, undefined);
    });
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
    return this.secrets.list().flatMap((s) => recordFromSecret(s) ?? []).filter((r) => !live.has(r.invitationUid));
  }

  private indexRecord(secret: V1Secret, present: boolean): void {
    const uid = secret.metadata?.labels?.[INVITATION_UID_LABEL];
    if (!uid) return;
    const key = keyOf(secret.metadata?.namespace, secret.metadata?.name);
    const keys = this.recordIndex.get(uid) ?? new Set<string>();
    if (present) keys.add(key);
    else keys.delete(key);
    if (keys.size) this.recordIndex.set(uid, keys);
    else this.recordIndex.delete(uid);
  }

  private enqueueRecordOwner(secret: V1Secret, events: ClusterEvents): void {
    const record = recordFromSecret(secret);
    if (record) events.onInvitation(record.invitationNamespace, record.invitationName);
  }

  private enqueueOwner(secret: V1Secret, events: ClusterEvents): void {
    const owner = secret.metadata?.ownerReferences?.find((o) => o.kind === 'UserInvitation');
    if (owner && secret.metadata?.namespace) events.onInvitation(secret.metadata.namespace, owner.name);
  }

  // ---- ClusterReader

  invitation(namespace: string, name: string): UserInvitation | undefined {
    const key = keyOf(namespace, name);
    return this.invitationOverlay.resolve(key, this.invitations.get(namespace, name));
  }

  records(invitationUid: string): InvitationRecord[] {
    const keys = new Set(this.recordIndex.get(invitationUid));
    for (const [key, secret] of this.secretOverlay.pending()) {
      if (secret?.metadata?.labels?.[INVITATION_UID_LABEL] === invitationUid) keys.add(key);
    }
    const records: InvitationRecord[] = [];
    for (const key of keys) {
      const [ns = '', name = ''] = key.split('/');
      const secret = this.secretOverlay.resolve(key, this.secrets.get(ns, name));
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
    const secret = this.linkOverlay.resolve(keyOf(namespace, name), this.linkSecrets?.get(namespace, name));
    const raw = secret?.data?.[LINK_KEY];
    return raw ? Buffer.from(raw, 'base64').toString('utf8') : undefined;
  }

  // ---- ClusterWriter

  async createRecord(record: InvitationRecord): Promise<InvitationRecord> {
    const body = secretFromRecord(record) as V1Secret;
    const created = await this.core.createNamespacedSecret({ namespace: record.namespace, body });
    this.secretOverlay.wrote(keyOf(record.namespace, record.name), created, created.metadata?.resourceVersion);
    return { ...record, resourceVersion: created.metadata?.resourceVersion };
  }

  async updateRecord(record: InvitationRecord): Promise<InvitationRecord> {
    const body = secretFromRecord(record) as V1Secret;
    const replaced = await this.core.replaceNamespacedSecret({ name: record.name, namespace: record.namespace, body });
    this.secretOverlay.wrote(keyOf(record.namespace, record.name), replaced, replaced.metadata?.resourceVersion);
    return { ...record, resourceVersion: replaced.metadata?.resourceVersion };
  }

  async deleteRecord(name: string): Promise<void> {
    const namespace = this.config.namespace;
    try {
      await this.core.deleteNamespacedSecret({ name, namespace });
    } catch (err) {
      if (apiErrorOf(err).code !== 404) throw err;
    }
    this.secretOverlay.deleted(keyOf(namespace, name));
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
    let written: V1Secret;
    try {
      written = await this.core.createNamespacedSecret({ namespace, body });
    } catch (err) {
      if (apiErrorOf(err).code !== 409) throw err;
      written = await this.core.replaceNamespacedSecret({ name, namespace, body });
    }
    this.linkOverlay.wrote(keyOf(namespace, name), written, written.metadata?.resourceVersion);
  }

  async writeStatus(invitation: UserInvitation, status: UserInvitationStatus): Promise<UserInvitation> {
    const { namespace = '', name } = invitation.metadata;
    // PUT with the resourceVersion we read: optimistic concurrency, and the exact status (a merge patch could not drop keys).
    const body: UserInvitation = { ...invitation, status };
    const written = (await this.custom.replaceNamespacedCustomObjectStatus({ group: GROUP, version: VERSION, namespace, plural: INVITATION_PLURAL, name, body })) as UserInvitation;
    this.invitationOverlay.wrote(keyOf(namespace, name), written, written.metadata.resourceVersion);
    return written;
  }

  async readInvitation(namespace: string, name: string): Promise<UserInvitation | undefined> {
    try {
      return (await this.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: INVITATION_PLURAL, name })) as UserInvitation;
    } catch (err) {
      if (apiErrorOf(err).code === 404) return undefined;
      throw err;
    }
  }

  async saveUser(user: User): Promise<User> {
    const saved = (
      user.metadata.resourceVersion
        ? await this.custom.replaceClusterCustomObject({ group: GROUP, version: VERSION, plural: USER_PLURAL, name: user.metadata.name, body: user })
        : await this.custom.createClusterCustomObject({ group: GROUP, version: VERSION, plural: USER_PLURAL, body: user })
    ) as User;
    this.userOverlay.wrote(saved.metadata.name, saved, saved.metadata.resourceVersion);
    return saved;
  }

  event(invitation: UserInvitation, type: 'Normal' | 'Warning', reason: string, message: string): void {
    const namespace = invitation.metadata.namespace ?? 'default';
    const body = {
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      metadata: { name: `${invitation.metadata.name}.${Date.now().toString(16)}${randomBytes(2).toString('hex')}`, namespace },
      eventTime: new V1MicroTime(),
      reportingController: 'usher.dev/usher',
      reportingInstance: this.instance,
      action: reason,
      reason,
      type,
      note: message.slice(0, 1024),
      regarding: { apiVersion: invitation.apiVersion, kind: invitation.kind, name: invitation.metadata.name, namespace, uid: invitation.metadata.uid, resourceVersion: invitation.metadata.resourceVersion },
    };
    // Events are best effort: a failure to record one must not fail the reconcile.
    this.eventsApi.createNamespacedEvent({ namespace, body }).catch((err: unknown) => {
      this.log.warn({ err: apiErrorOf(err).message, reason }, 'could not record event');
    });
  }
}

interface ListOf<T> {
  items: T[];
  metadata?: { resourceVersion?: string };
}
