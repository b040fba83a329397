// An in-memory BindingStore: optimistic replaces (Conflict on a stale
// resourceVersion), AlreadyExists on a taken name, and the API server's
// escalation check (Forbidden for a ClusterRole the binder may not bind).
import type { BindingObject, BindingStore } from '../../src/controller/ports.ts';
import { apiError } from './fakes.ts';

export class FakeBindings implements BindingStore {
  readonly objects = new Map<string, BindingObject>();
  readonly writes: string[] = [];
  /** ClusterRoles the binder holds `bind` on; others are refused with 403, as the API server does. */
  bindable = new Set(['edit', 'view']);
  /** Names whose next write fails with a conflict (another writer got there first). */
  readonly conflictOnce = new Set<string>();
  /** Objects of those names without Usher's labels: outside its label-selected cache, but their names are taken. */
  readonly foreign = new Set<string>();
  /** Names whose writes fail as if the API server were away. */
  readonly unavailable = new Set<string>();
  private version = 0;

  binding(kind: BindingObject['kind'], namespace: string | undefined, name: string): BindingObject | undefined {
    const found = this.objects.get(key(kind, namespace, name));
    return found && structuredClone(found);
  }

  ownedBy(uid: string): BindingObject[] {
    return [...this.objects.values()].filter((b) => (b.object.metadata?.ownerReferences ?? []).some((o) => o.uid === uid)).map((b) => structuredClone(b));
  }

  create(binding: BindingObject): Promise<BindingObject> {
    const k = keyOfObject(binding);
    this.writes.push(`create ${k}`);
    if (!this.bindable.has(binding.object.roleRef.name))
      return Promise.reject(
        apiError(403, 'Forbidden', `${binding.kind} is forbidden: user "usher" is attempting to grant RBAC permissions not currently held`),
      );
    if (this.unavailable.has(binding.object.metadata?.name ?? '')) return Promise.reject(apiError(503, 'ServiceUnavailable'));
    if (this.objects.has(k) || this.foreign.has(k)) return Promise.reject(apiError(409, 'AlreadyExists'));
    return Promise.resolve(this.store(binding));
  }

  replace(binding: BindingObject): Promise<BindingObject> {
    const k = keyOfObject(binding);
    this.writes.push(`replace ${k}`);
    const stored = this.objects.get(k);
    if (!stored) return Promise.reject(apiError(404, 'NotFound'));
    if (this.conflictOnce.delete(binding.object.metadata?.name ?? '') || stored.object.metadata?.resourceVersion !== binding.object.metadata?.resourceVersion)
      return Promise.reject(apiError(409, 'Conflict'));
    return Promise.resolve(this.store(binding));
  }

  delete(binding: BindingObject): Promise<void> {
    const k = keyOfObject(binding);
    this.writes.push(`delete ${k}`);
    this.objects.delete(k);
    return Promise.resolve();
  }

  /** What the garbage collector does once a User is gone: drop its ownerReference, delete what no one owns any more. */
  collectGarbage(uid: string): void {
    for (const [k, b] of this.objects) {
      const owners = (b.object.metadata?.ownerReferences ?? []).filter((o) => o.uid !== uid);
      if (owners.length === (b.object.metadata?.ownerReferences ?? []).length) continue;
      if (owners.length === 0) this.objects.delete(k);
      else this.store({ kind: b.kind, object: { ...b.object, metadata: { ...b.object.metadata, ownerReferences: owners } } });
    }
  }

  private store(binding: BindingObject): BindingObject {
    const stored = structuredClone(binding);
    stored.object.metadata = { ...stored.object.metadata, resourceVersion: String(++this.version) };
    this.objects.set(keyOfObject(stored), stored);
    return structuredClone(stored);
  }
}

function key(kind: string, namespace: string | undefined, name: string): string {
  return `${kind}/${kind === 'RoleBinding' ? (namespace ?? '') : ''}/${name}`;
}

function keyOfObject(b: BindingObject): string {
  return key(b.kind, b.object.metadata?.namespace, b.object.metadata?.name ?? '');
}
