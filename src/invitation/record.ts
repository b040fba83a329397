// The invitation record: one Secret per issued token, in Usher's own namespace
// (usher.namespace), holding what the acceptance page needs: the selector, the
// verifier's hash, the invitation it belongs to, the issuance number, the
// expiry, and whether it was used. Mail delivery state lives here too, so that
// "was this token mailed?" survives restarts together with the token itself.
//
// Why Usher's namespace and not beside the invitation: whoever may write
// Secrets in a tenant namespace (a namespace editor) could otherwise forge or
// edit a record and accept with a verifier of their own (docs/adr/0001). An
// ownerReference cannot cross namespaces, so the controller deletes the
// records of a deleted invitation itself.
import type { OwnerReference, UserInvitation } from '../api/types.ts';

export const RECORD_TYPE = 'usher.dev/invitation-record';
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'usher';
export const COMPONENT_LABEL = 'usher.dev/component';
export const RECORD_COMPONENT = 'invitation-record';
export const INVITATION_UID_LABEL = 'usher.dev/invitation-uid';
export const SELECTOR_LABEL = 'usher.dev/selector';
/** Label selector for every Secret Usher manages. */
export const MANAGED_SELECTOR = `${MANAGED_BY_LABEL}=${MANAGED_BY}`;
const DATA_KEY = 'record.json';

export interface MailState {
  /** Attempts made for this token. */
  attempts: number;
  /** Written just before a send, cleared by sentAt: a crash in between means "maybe sent". */
  attemptStartedAt?: string;
  sentAt?: string;
  lastError?: string;
  /** A permanent refusal (5xx): no more attempts for this token. */
  failedPermanently?: boolean;
  /** Earliest time for the next attempt after a transient failure. */
  nextAttemptAt?: string;
  /** When that transient failure happened (milliseconds): an attempt that failed during a mail server outage is retried once the server is back. */
  failedAt?: string;
}

export interface InvitationRecord {
  /** Secret name and namespace (Usher's own). */
  name: string;
  namespace: string;
  resourceVersion?: string;
  /** The invitation it was issued for: namespace, name and uid all have to match. */
  invitationNamespace: string;
  invitationName: string;
  invitationUid: string;
  selector: string;
  verifierHash: string;
  /** The lower-cased email the token was issued for; a changed spec.email needs a new token. */
  email: string;
  issuance: number;
  issuedAt: string;
  expiresAt: string;
  usedAt?: string;
  /** Name of the User the acceptance created or joined. */
  user?: string;
  mail?: MailState;
  /**
   * With usher.identity: an account with this address already exists at the
   * identity provider (made by anyone). The page then accepts only by signing
   * in to it (SSO), so it is never given a password by an invitation.
   */
  accountExists?: boolean;
}

/** The stored payload: everything but the Secret's own identity. */
type Payload = Omit<InvitationRecord, 'name' | 'namespace' | 'resourceVersion'>;

export interface SecretLike {
  apiVersion?: string;
  kind?: string;
  type?: string;
  metadata?: {
    name?: string;
    namespace?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    ownerReferences?: OwnerReference[];
  };
  data?: Record<string, string>;
}

export function isRecordSecret(secret: SecretLike): boolean {
  return secret.type === RECORD_TYPE && secret.metadata?.labels?.[COMPONENT_LABEL] === RECORD_COMPONENT;
}

export function recordFromSecret(secret: SecretLike): InvitationRecord | undefined {
  const raw = secret.data?.[DATA_KEY];
  if (!isRecordSecret(secret) || !raw || !secret.metadata?.name || !secret.metadata.namespace) return undefined;
  try {
    const payload = JSON.parse(Buffer.from(raw, 'base64').toString('utf8')) as Payload;
    // A record of Usher 0.1 (kept beside its invitation) has no invitationNamespace: not trusted, never read.
    if (typeof payload.invitationNamespace !== 'string' || typeof payload.verifierHash !== 'string') return undefined;
    return { ...payload, name: secret.metadata.name, namespace: secret.metadata.namespace, resourceVersion: secret.metadata.resourceVersion };
  } catch {
    return undefined;
  }
}

/** Label selector for the records, and nothing else of Usher's (credentials live in the same namespace). */
export const RECORD_SELECTOR = `${MANAGED_BY_LABEL}=${MANAGED_BY},${COMPONENT_LABEL}=${RECORD_COMPONENT}`;

export function ownerReferenceTo(invitation: UserInvitation): OwnerReference {
  return {
    apiVersion: invitation.apiVersion,
    kind: invitation.kind,
    name: invitation.metadata.name,
    uid: invitation.metadata.uid ?? '',
    controller: true,
  };
}

export function secretFromRecord(record: InvitationRecord): SecretLike {
  const { name, namespace, resourceVersion, ...payload } = record;
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: RECORD_TYPE,
    metadata: {
      name,
      namespace,
      ...(resourceVersion ? { resourceVersion } : {}),
      labels: {
        [MANAGED_BY_LABEL]: MANAGED_BY,
        [COMPONENT_LABEL]: RECORD_COMPONENT,
        [INVITATION_UID_LABEL]: record.invitationUid,
        [SELECTOR_LABEL]: record.selector,
      },
    },
    data: { [DATA_KEY]: Buffer.from(JSON.stringify(payload satisfies Payload), 'utf8').toString('base64') },
  };
}
