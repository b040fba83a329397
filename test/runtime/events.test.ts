// The Event recorder against a fake events API: the Event it sends, field by
// field, and that recording is best effort (a failure is logged, never thrown).
import { ApiException } from '@kubernetes/client-node';
import { describe, expect, it, vi } from 'vitest';
import { EventRecorder, type EventBody, type EventsApiLike } from '../../src/runtime/events.ts';
import type { Logger } from '../../src/runtime/log.ts';

interface Sent {
  namespace: string;
  body: EventBody;
}

function fakeApi(answer: () => Promise<unknown> = () => Promise.resolve({})): EventsApiLike & { sent: Sent[] } {
  const sent: Sent[] = [];
  return {
    sent,
    createNamespacedEvent: (param) => {
      sent.push(param);
      return answer();
    },
  };
}

function recordingLog(): Logger & { warnings: [object, string | undefined][] } {
  const warnings: [object, string | undefined][] = [];
  const nothing = (): void => undefined;
  return { warnings, debug: nothing, info: nothing, error: nothing, warn: (obj, msg) => warnings.push([obj, msg]) };
}

const invitation = {
  apiVersion: 'usher.dev/v1alpha1',
  kind: 'UserInvitation',
  metadata: { name: 'jane-doe', namespace: 'acme', uid: 'u-1', resourceVersion: '42', generation: 3 },
};

/** Lets the recorder's promise chain run. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('EventRecorder', () => {
  it('sends one events.k8s.io/v1 Event in the object’s namespace, regarding it, stamped with the reporting controller and instance', () => {
    const api = fakeApi();
    new EventRecorder({ api, reportingController: 'usher.dev/usher', reportingInstance: 'usher-0' }).record(
      invitation,
      'Normal',
      'Issued',
      'Issued invitation link #1.',
    );
    expect(api.sent).toHaveLength(1);
    const { namespace, body } = api.sent[0] ?? { namespace: '', body: {} as EventBody };
    expect(namespace).toBe('acme');
    expect(body).toMatchObject({
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      metadata: { namespace: 'acme' },
      reportingController: 'usher.dev/usher',
      reportingInstance: 'usher-0',
      action: 'Issued',
      reason: 'Issued',
      type: 'Normal',
      note: 'Issued invitation link #1.',
    });
    expect(body.regarding).toEqual({
      apiVersion: 'usher.dev/v1alpha1',
      kind: 'UserInvitation',
      name: 'jane-doe',
      namespace: 'acme',
      uid: 'u-1',
      resourceVersion: '42',
    });
    // A MicroTime, as the API server requires: six fractional digits.
    expect(body.eventTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    // Named after the object, unique per call: hex milliseconds and 4 random hex digits.
    expect(body.metadata.name).toMatch(/^jane-doe\.[0-9a-f]+[0-9a-f]{4}$/);
  });

  it('gives every Event a name of its own, even within one millisecond', () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      const api = fakeApi();
      const recorder = new EventRecorder({ api, reportingController: 'c', reportingInstance: 'i' });
      for (let i = 0; i < 20; i++) recorder.record(invitation, 'Normal', 'R', 'm');
      expect(new Set(api.sent.map((s) => s.body.metadata.name)).size).toBeGreaterThan(15);
      expect(new Set(api.sent.map((s) => s.body.metadata.name.slice(0, -4))).size).toBe(1);
    } finally {
      vi.useRealTimers();
    }
  });

  it('cuts the note to the 1024 characters the API server allows, and takes an action other than the reason', () => {
    const api = fakeApi();
    new EventRecorder({ api, reportingController: 'c', reportingInstance: 'i' }).record(invitation, 'Warning', 'MailRetrying', 'x'.repeat(5000), 'SendMail');
    expect(api.sent[0]?.body.note).toHaveLength(1024);
    expect(api.sent[0]?.body).toMatchObject({ type: 'Warning', reason: 'MailRetrying', action: 'SendMail' });
  });

  it('records an Event about a cluster-scoped object in the default namespace', () => {
    const api = fakeApi();
    new EventRecorder({ api, reportingController: 'c', reportingInstance: 'i' }).record(
      { apiVersion: 'usher.dev/v1alpha1', kind: 'User', metadata: { name: 'sam' } },
      'Normal',
      'R',
      'm',
    );
    expect(api.sent[0]?.namespace).toBe('default');
    expect(api.sent[0]?.body.regarding).toMatchObject({ kind: 'User', name: 'sam', namespace: 'default' });
  });

  it('is best effort: a refused Event is logged with its reason, never thrown', async () => {
    const log = recordingLog();
    const api = fakeApi(() =>
      Promise.reject(new ApiException(403, 'Forbidden', { kind: 'Status', code: 403, reason: 'Forbidden', message: 'events.events.k8s.io is forbidden' }, {})),
    );
    const recorder = new EventRecorder({ api, reportingController: 'c', reportingInstance: 'i', log });
    expect(() => {
      recorder.record(invitation, 'Normal', 'Accepted', 'm');
    }).not.toThrow();
    await settle();
    expect(log.warnings).toEqual([[{ err: 'events.events.k8s.io is forbidden', reason: 'Accepted' }, 'could not record event']]);
  });

  it('survives an API client that throws instead of rejecting', async () => {
    const log = recordingLog();
    const api: EventsApiLike = {
      createNamespacedEvent: () => {
        throw new Error('no cluster');
      },
    };
    expect(() => {
      new EventRecorder({ api, reportingController: 'c', reportingInstance: 'i', log }).record(invitation, 'Normal', 'R', 'm');
    }).not.toThrow();
    await settle();
    expect(log.warnings).toEqual([[{ err: 'no cluster', reason: 'R' }, 'could not record event']]);
  });
});
