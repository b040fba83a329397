// Usher's resource types (usher.dev/v1alpha1). The CRDs in crds/ are the schema
// the API server enforces; these types mirror them for the code.

export const GROUP = 'usher.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const INVITATION_KIND = 'UserInvitation';
export const INVITATION_PLURAL = 'userinvitations';
export const USER_KIND = 'User';
export const USER_PLURAL = 'users';

/** Set to a new value (a timestamp, say) to issue a fresh token: the Flux-style reissue request. */
export const REISSUE_ANNOTATION = 'usher.dev/reissue-requested-at';

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  finalizers?: string[];
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export type Scope = 'Tenant' | 'Instance';

export interface RoleGrant {
  name: string;
  /** Platform namespaces (like company.team) the role is limited to; all when absent or empty. */
  namespaces?: string[];
}

export interface UserInvitationSpec {
  email: string;
  scope?: Scope;
  tenant?: string;
  groups?: string[];
  roles?: RoleGrant[];
  createUserDirectly?: boolean;
  /** ISO-8601 duration overriding usher.security.invitations.expireAfter. */
  expireAfter?: string;
}

export type InvitationPhase = 'Pending' | 'Sent' | 'Accepted' | 'Expired' | 'Failed' | 'UserCreated';

export type ConditionStatus = 'True' | 'False' | 'Unknown';

/** metav1.Condition */
export interface Condition {
  type: string;
  status: ConditionStatus;
  observedGeneration?: number;
  lastTransitionTime: string;
  reason: string;
  message: string;
}

export interface UserInvitationStatus {
  phase?: InvitationPhase;
  /** The tenant, or `*` for instance scope (kubectl's TENANT column). */
  tenant?: string;
  link?: string;
  linkSecretName?: string;
  issuance?: number;
  issuedAt?: string;
  expiresAt?: string;
  sentAt?: string;
  acceptedAt?: string;
  user?: string;
  lastHandledReissueAt?: string;
  observedGeneration?: number;
  conditions?: Condition[];
}

export interface UserInvitation {
  apiVersion: typeof API_VERSION;
  kind: typeof INVITATION_KIND;
  metadata: ObjectMeta;
  spec: UserInvitationSpec;
  status?: UserInvitationStatus;
}

export interface Membership {
  scope: Scope;
  tenant?: string;
  groups?: string[];
  roles?: RoleGrant[];
  invitation?: { namespace: string; name: string; uid: string };
}

export interface UserSpec {
  /** Lower-cased. */
  email: string;
  firstName?: string;
  lastName?: string;
  authentication?: 'Password' | 'External';
  credentialsSecret?: { namespace: string; name: string };
  /**
   * Whether the person proved they receive mail at this address: an SSO
   * provider vouched for it (email_verified) when they accepted. False for a
   * password acceptance (the link is also readable by whoever reads the
   * invitation's status) and for createUserDirectly. Set once, at creation.
   */
  emailVerified?: boolean;
  memberships?: Membership[];
}

/** Where the User's account lives at the identity provider (usher.identity). */
export interface UserIdentityStatus {
  provider: string;
  /** The account's id there (Keycloak's user id). */
  id: string;
  username: string;
  /** Whether Usher created the account (it may disable or delete it) or joined one that existed. */
  managed: boolean;
}

export interface UserStatus {
  observedGeneration?: number;
  identity?: UserIdentityStatus;
  /** Provisioned (the account exists at the identity provider with this User's access), and Ready/Reconciling/Stalled for kstatus. */
  conditions?: Condition[];
}

export interface User {
  apiVersion: typeof API_VERSION;
  kind: typeof USER_KIND;
  metadata: ObjectMeta;
  spec: UserSpec;
  status?: UserStatus;
}
