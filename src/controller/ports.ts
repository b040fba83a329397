// The controller's ports: what the reconciler reads and changes, and the
// mailer it sends through. The Kubernetes store (kube-store.ts) and the mail
// adapter (src/mail) implement them; tests use in-memory fakes. Adapters
// import these interfaces from here, never the reconciler.
import type { User, UserInvitation, UserInvitationStatus, UserStatus } from '../api/types.ts';
import type { InvitationRecord } from '../invitation/record.ts';

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

export interface InvitationMailer {
  /** Renders and sends the invitation mail for this record's token. */
  sendInvitation(invitation: UserInvitation, link: string, expiresAt: Date): Promise<{ ok: true } | { ok: false; permanent: boolean; response: string }>;
}
