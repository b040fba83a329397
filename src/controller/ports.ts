// The controller's ports: what the reconciler reads and changes, and the
// mailer it sends through. The Kubernetes store (kube-store.ts) and the mail
// adapter (src/mail) implement them; tests use in-memory fakes. Adapters
// import these interfaces from here, never the reconciler.
import type { User, UserInvitation, UserInvitationStatus, UserStatus } from '../api/types.ts';
import type { InvitationRecord } from '../invitation/record.ts';
import type { MailOutage } from '../invitation/decide.ts';

/** What the reconciler reads: caches, never the API server. */
export interface ClusterReader {
  invitation(namespace: string, name: string): UserInvitation | undefined;
  /** Records issued for the invitation with this uid (in Usher's namespace). */
  records(invitationUid: string): InvitationRecord[];
  namespaceTenant(namespace: string): string | undefined;
  user(name: string): User | undefined;
  /** The link held in the invitation's link Secret (linkDisclosure: Secret). */
  linkSecret(namespace: string, invitationName: string): string | undefined;
}

/** What the reconciler changes. Each call is one API request and updates the caches it affects. */
export interface ClusterWriter {
  createRecord(record: InvitationRecord): Promise<InvitationRecord>;
  /** Optimistic: fails with a conflict when record.resourceVersion is stale. */
  updateRecord(record: InvitationRecord): Promise<InvitationRecord>;
  deleteRecord(name: string): Promise<void>;
  writeLinkSecret(owner: UserInvitation, link: string): Promise<void>;
  writeStatus(invitation: UserInvitation, status: UserInvitationStatus): Promise<UserInvitation>;
  /** A fresh read from the API server, for retrying after a conflict. */
  readInvitation(namespace: string, name: string): Promise<UserInvitation | undefined>;
  /** Create (no resourceVersion) or update (optimistic) a User. */
  saveUser(user: User): Promise<User>;
  /**
   * Deletes a User, only if it is still the object seen (uid and resourceVersion: a
   * membership added meanwhile is a conflict). Its credentials Secret is owned by
   * it, so the garbage collector removes that too. Gone already: done.
   */
  deleteUser(name: string, preconditions: { uid: string; resourceVersion: string }): Promise<void>;
  /** Optimistic update of the invitation's metadata (its finalizers); the spec is never changed. */
  updateInvitation(invitation: UserInvitation): Promise<UserInvitation>;
  event(invitation: UserInvitation, type: 'Normal' | 'Warning', reason: string, message: string): void;
  userEvent(user: User, type: 'Normal' | 'Warning', reason: string, message: string): void;
}

/** What the identity controller reads (caches) and changes about Users. */
export interface UserStore {
  user(name: string): User | undefined;
  /** An invitation record by its Secret's name (Usher's namespace), from the cache. */
  record(name: string): InvitationRecord | undefined;
  /** The User's argon2id hash from its credentials Secret (usher.accept.credentialsNamespace), read from the API server. */
  passwordHash(userName: string): Promise<string | undefined>;
  /** Create (no resourceVersion) or update (optimistic) a User. */
  saveUser(user: User): Promise<User>;
  /** Optimistic: fails with a conflict when user.metadata.resourceVersion is stale. */
  writeUserStatus(user: User, status: UserStatus): Promise<User>;
  userEvent(user: User, type: 'Normal' | 'Warning', reason: string, message: string): void;
}

/** A RoleBinding or a ClusterRoleBinding as plain JSON (the two have the same shape: metadata, roleRef, subjects). */
export interface BindingManifest {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    ownerReferences?: { apiVersion: string; kind: string; name: string; uid: string; controller?: boolean }[];
    deletionTimestamp?: Date;
  };
  roleRef: { apiGroup: string; kind: string; name: string };
  subjects?: { apiGroup?: string; kind: string; name: string; namespace?: string }[];
}

export interface BindingObject {
  kind: 'RoleBinding' | 'ClusterRoleBinding';
  object: BindingManifest;
}

/** What the RBAC controller reads (caches of Usher's own bindings) and changes. */
export interface BindingStore {
  binding(kind: BindingObject['kind'], namespace: string | undefined, name: string): BindingObject | undefined;
  /** Every binding of Usher's with an ownerReference to the User with this uid. */
  ownedBy(uid: string): BindingObject[];
  /** Fails with AlreadyExists when the name is taken, Forbidden when the API server will not let Usher bind that ClusterRole. */
  create(binding: BindingObject): Promise<BindingObject>;
  /** Optimistic: fails with a conflict when the object's resourceVersion is stale. */
  replace(binding: BindingObject): Promise<BindingObject>;
  /** Only if it is still the object seen (uid and resourceVersion); gone already: done. */
  delete(binding: BindingObject): Promise<void>;
}

export interface InvitationMailer {
  /** Renders and sends the invitation mail for this record's token. */
  sendInvitation(invitation: UserInvitation, link: string, expiresAt: Date): Promise<{ ok: true } | { ok: false; permanent: boolean; response: string }>;
  /** The mail server's last outage it has recovered from (see src/mail/outage.ts). */
  lastOutage?(): MailOutage | undefined;
  /** Called when the mail server answers again after an outage. */
  onRecovered?(listener: (outage: MailOutage) => void): void;
}
