// The acceptance page's Kubernetes calls. Every read goes to the API server,
// never to a cache: the page may run in several replicas, and whether a link
// is still open must be answered from the current state, not from whatever a
// watch delivered to this replica so far.
import { CoreV1Api, CustomObjectsApi, V1ObjectMeta, V1OwnerReference, V1Secret, type KubeConfig } from '@kubernetes/client-node';
import { GROUP, INVITATION_PLURAL, USER_PLURAL, VERSION, type User, type UserInvitation } from '../api/types.ts';
import { apiErrorOf, isNotFound } from '../kube/client.ts';
import { makePooledApiClient, PooledAuthentication } from '../kube/pooled-client.ts';
import { MANAGED_BY, MANAGED_BY_LABEL, SELECTOR_LABEL, ownerReferenceTo, recordFromSecret, secretFromRecord, type InvitationRecord, type SecretLike } from '../records/record.ts';

export const CREDENTIALS_TYPE = 'usher.dev/credentials';
export const CREDENTIALS_COMPONENT = 'credentials';
export const PASSWORD_HASH_KEY = 'password-hash';
export const USER_LABEL = 'usher.dev/user';
/** Tells the sign-in side how to prepare a typed password before verifying it against the hash. */
export const NORMALIZATION_ANNOTATION = 'usher.dev/password-normalization';

export function credentialsSecretName(userName: string): string {
  return `usher-credentials-${userName}`;
}

export class AcceptStore {
  private readonly core: CoreV1Api;
  private readonly custom: CustomObjectsApi;

  constructor(kubeConfig: KubeConfig) {
    const auth = new PooledAuthentication(kubeConfig);
    this.core = makePooledApiClient(kubeConfig, CoreV1Api, auth);
    this.custom = makePooledApiClient(kubeConfig, CustomObjectsApi, auth);
  }

  /** The records labelled with this selector, in any namespace (normally none or one). */
  async recordsBySelector(selector: string): Promise<InvitationRecord[]> {
    const list = await this.core.listSecretForAllNamespaces({ labelSelector: `${SELECTOR_LABEL}=${selector},${MANAGED_BY_LABEL}=${MANAGED_BY}` });
    return list.items.flatMap((secret) => recordFromSecret(secret) ?? []);
  }

  async record(namespace: string, name: string): Promise<InvitationRecord | undefined> {
    return orUndefined(async () => recordFromSecret(await this.core.readNamespacedSecret({ namespace, name })));
  }

  /** PUT with the record's resourceVersion: throws a 409 when someone else wrote it since it was read. */
  async replaceRecord(record: InvitationRecord, owner: UserInvitation): Promise<InvitationRecord> {
    const body = v1Secret(secretFromRecord(record, ownerReferenceTo(owner)));
    const replaced = await this.core.replaceNamespacedSecret({ namespace: record.namespace, name: record.name, body });
    return recordFromSecret(replaced) ?? { ...record, resourceVersion: replaced.metadata?.resourceVersion };
  }

  async invitation(namespace: string, name: string): Promise<UserInvitation | undefined> {
    return orUndefined(async () => (await this.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, plural: INVITATION_PLURAL, namespace, name })) as UserInvitation);
  }

  async namespaceLabels(name: string): Promise<Record<string, string> | undefined> {
    return orUndefined(async () => (await this.core.readNamespace({ name })).metadata?.labels ?? {});
  }

  async user(name: string): Promise<User | undefined> {
    return orUndefined(async () => (await this.custom.getClusterCustomObject({ group: GROUP, version: VERSION, plural: USER_PLURAL, name })) as User);
  }

  /** Creates the User, or replaces it when it carries the resourceVersion it was read with. */
  async saveUser(user: User): Promise<User> {
    const params = { group: GROUP, version: VERSION, plural: USER_PLURAL };
    return (user.metadata.resourceVersion
      ? await this.custom.replaceClusterCustomObject({ ...params, name: user.metadata.name, body: user })
      : await this.custom.createClusterCustomObject({ ...params, body: user })) as User;
  }

  /**
   * The Secret holding a User's password hash, and nothing else. Owned by the
   * User, so deleting the User deletes it.
   */
  async saveCredentials(namespace: string, user: User, passwordHash: string): Promise<void> {
    const name = credentialsSecretName(user.metadata.name);
    const body = v1Secret({
      apiVersion: 'v1',
      kind: 'Secret',
      type: CREDENTIALS_TYPE,
      metadata: {
        name,
        namespace,
        labels: { [MANAGED_BY_LABEL]: MANAGED_BY, 'usher.dev/component': CREDENTIALS_COMPONENT, [USER_LABEL]: user.metadata.name },
        annotations: { [NORMALIZATION_ANNOTATION]: 'NFKC' },
        ownerReferences: [{ apiVersion: user.apiVersion, kind: user.kind, name: user.metadata.name, uid: user.metadata.uid ?? '' }],
      },
      data: { [PASSWORD_HASH_KEY]: Buffer.from(passwordHash, 'utf8').toString('base64') },
    });
    try {
      await this.core.createNamespacedSecret({ namespace, body });
    } catch (err) {
      if (apiErrorOf(err).reason !== 'AlreadyExists') throw err;
      // A PUT without resourceVersion: the new hash wins whatever was there (an earlier acceptance's).
      await this.core.replaceNamespacedSecret({ namespace, name, body });
    }
  }

  async deleteSecret(namespace: string, name: string): Promise<void> {
    try {
      await this.core.deleteNamespacedSecret({ namespace, name });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
}

/** The client's typed API wants class instances; ours are plain objects of the same shape. */
function v1Secret(like: SecretLike & { metadata?: { annotations?: Record<string, string> } }): V1Secret {
  const { metadata, ...rest } = like;
  const meta = Object.assign(new V1ObjectMeta(), { ...metadata, ownerReferences: metadata?.ownerReferences?.map((o) => Object.assign(new V1OwnerReference(), o)) });
  return Object.assign(new V1Secret(), { ...rest, metadata: meta });
}

async function orUndefined<T>(read: () => Promise<T>): Promise<T | undefined> {
  try {
    return await read();
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}
