// The invitation controller's own writes come back as watch events; those that
// show exactly what it wrote queue nothing, everything else queues as before.
import { describe, expect, it } from 'vitest';
import type { UserInvitation } from '../../src/api/types.ts';
import { EchoFilter, notingOwnWrites, OwnWrites } from '../../src/controller/own-writes.ts';
import type { ClusterWriter } from '../../src/controller/ports.ts';
import { setUpWatches, type WatchedInformers } from '../../src/controller/watches.ts';
import { secretFromRecord, type InvitationRecord } from '../../src/invitation/record.ts';
import type { Informer } from '../../src/runtime/informer.ts';

const invitation = (resourceVersion: string): UserInvitation => ({
  apiVersion: 'usher.dev/v1alpha1',
  kind: 'UserInvitation',
  metadata: { name: 'jane', namespace: 'acme', uid: 'uid-1', resourceVersion },
  spec: { email: 'jane@example.com', tenant: 'acme' },
});

const record = (resourceVersion: string): InvitationRecord => ({
  name: 'usher-invitation-uid-1-1',
  namespace: 'usher-system',
  resourceVersion,
  invitationNamespace: 'acme',
  invitationName: 'jane',
  invitationUid: 'uid-1',
  selector: 'a'.repeat(32),
  verifierHash: 'b'.repeat(64),
  email: 'jane@example.com',
  issuance: 1,
  issuedAt: '2026-01-01T00:00:00Z',
  expiresAt: '2026-01-08T00:00:00Z',
});

/** Informers reduced to what setUpWatches uses: on() and list(); emit() plays an event. */
function fakeInformer() {
  const handlers: Record<string, ((obj: unknown, old?: unknown) => void)[]> = { add: [], update: [], delete: [] };
  return {
    on(type: string, handler: (obj: unknown, old?: unknown) => void) {
      handlers[type]?.push(handler);
      return this;
    },
    list: () => [],
    emit(type: 'add' | 'update' | 'delete', obj: unknown) {
      for (const handler of handlers[type] ?? []) handler(structuredClone(obj), structuredClone(obj));
    },
  };
}

function harness() {
  const fakes = { invitations: fakeInformer(), secrets: fakeInformer(), namespaces: fakeInformer(), users: fakeInformer() };
  const own = new OwnWrites();
  const enqueued: string[] = [];
  const echoes = new EchoFilter(own, (key) => enqueued.push(key));
  setUpWatches(fakes as unknown as WatchedInformers & Record<string, Informer<never>>, {
    enqueue: (namespace, name) => enqueued.push(`${namespace}/${name}`),
    invitationDeleted: () => undefined,
    changed: (kind, key, resourceVersion, ref) => {
      echoes.event(kind, key, resourceVersion, `${ref.namespace}/${ref.name}`);
    },
  });
  return { fakes, own, echoes, enqueued };
}

describe('own writes', () => {
  it('an event at the version the controller wrote queues nothing; any other version queues the invitation', () => {
    const { fakes, own, enqueued } = harness();
    own.wrote('invitation', 'acme/jane', '7');
    fakes.invitations.emit('update', invitation('7'));
    expect(enqueued).toEqual([]);
    // Once only: the same version again (a relist's replay) queues as before.
    fakes.invitations.emit('update', invitation('7'));
    expect(enqueued).toEqual(['acme/jane']);
    // Someone else's write.
    fakes.invitations.emit('update', invitation('8'));
    expect(enqueued).toEqual(['acme/jane', 'acme/jane']);
  });

  it('a record the controller created or updated is skipped at that version; its deletion is not', () => {
    const { fakes, own, enqueued } = harness();
    own.wrote('record', 'usher-system/usher-invitation-uid-1-1', '11');
    fakes.secrets.emit('add', secretFromRecord(record('11')));
    expect(enqueued).toEqual([]);
    // The page marks it used: a version the controller did not write.
    fakes.secrets.emit('update', secretFromRecord(record('12')));
    expect(enqueued).toEqual(['acme/jane']);
    own.wrote('record', 'usher-system/usher-invitation-uid-1-1', '13');
    fakes.secrets.emit('delete', secretFromRecord(record('13')));
    expect(enqueued).toEqual(['acme/jane', 'acme/jane']);
  });

  it('several writes before their events (finalizer, then status): each of them is skipped, a version in between that is not ours queues', () => {
    const { fakes, own, enqueued } = harness();
    own.wrote('invitation', 'acme/jane', '20');
    own.wrote('invitation', 'acme/jane', '22');
    fakes.invitations.emit('update', invitation('20'));
    fakes.invitations.emit('update', invitation('21'));
    fakes.invitations.emit('update', invitation('22'));
    expect(enqueued).toEqual(['acme/jane']);
  });

  it('an event that beats its write’s response, while the reconcile runs, is held and dropped once the write is noted', () => {
    const { fakes, own, echoes, enqueued } = harness();
    echoes.started('acme/jane');
    // The watch is faster than the response: the event comes before wrote().
    fakes.invitations.emit('update', invitation('40'));
    fakes.secrets.emit('add', secretFromRecord(record('41')));
    own.wrote('invitation', 'acme/jane', '40');
    own.wrote('record', 'usher-system/usher-invitation-uid-1-1', '41');
    expect(enqueued).toEqual([]);
    echoes.finished('acme/jane');
    expect(enqueued).toEqual([]);
  });

  it('a foreign write while the reconcile runs queues the invitation once it ends', () => {
    const { fakes, own, echoes, enqueued } = harness();
    echoes.started('acme/jane');
    fakes.invitations.emit('update', invitation('50'));
    own.wrote('invitation', 'acme/jane', '51');
    fakes.invitations.emit('update', invitation('51'));
    expect(enqueued).toEqual([]);
    echoes.finished('acme/jane');
    expect(enqueued).toEqual(['acme/jane']);
    // At rest again: events are judged at once.
    fakes.invitations.emit('update', invitation('52'));
    expect(enqueued).toEqual(['acme/jane', 'acme/jane']);
  });

  it('forgets writes whose events never came, after the ttl', () => {
    let now = 0;
    const own = new OwnWrites({ ttlMs: 1000, clock: () => now });
    own.wrote('invitation', 'a/old', '1');
    now = 2000;
    own.wrote('invitation', 'a/new', '2');
    expect(own.size).toBe(1);
    expect(own.isEcho('invitation', 'a/old', '1')).toBe(false);
    expect(own.isEcho('invitation', 'a/new', '2')).toBe(true);
  });

  it('notingOwnWrites notes the versions the API server returned for invitation and record writes, and nothing for others', async () => {
    const calls: string[] = [];
    const inner = {
      createRecord: (r: InvitationRecord) => Promise.resolve({ ...r, resourceVersion: '31' }),
      updateRecord: (r: InvitationRecord) => Promise.resolve({ ...r, resourceVersion: '32' }),
      writeStatus: (i: UserInvitation) => Promise.resolve(invitation(i.metadata.resourceVersion === '1' ? '33' : '34')),
      updateInvitation: () => Promise.resolve(invitation('35')),
      deleteRecord: (name: string) => {
        calls.push(`deleteRecord ${name}`);
        return Promise.resolve();
      },
      event: (_i: UserInvitation, _t: string, reason: string) => calls.push(`event ${reason}`),
    } as unknown as ClusterWriter;
    const own = new OwnWrites();
    const writer = notingOwnWrites(inner, own);
    await writer.createRecord(record(''));
    expect(own.isEcho('record', 'usher-system/usher-invitation-uid-1-1', '31')).toBe(true);
    await writer.updateRecord(record('31'));
    expect(own.isEcho('record', 'usher-system/usher-invitation-uid-1-1', '32')).toBe(true);
    await writer.writeStatus(invitation('1'), {});
    expect(own.isEcho('invitation', 'acme/jane', '33')).toBe(true);
    await writer.updateInvitation(invitation('33'));
    expect(own.isEcho('invitation', 'acme/jane', '35')).toBe(true);
    await writer.deleteRecord('x');
    writer.event(invitation('35'), 'Normal', 'Sent', 'm');
    expect(calls).toEqual(['deleteRecord x', 'event Sent']);
    expect(own.size).toBe(0);
  });
});
