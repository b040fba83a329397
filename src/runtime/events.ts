// Kubernetes Events (events.k8s.io/v1) about the objects a controller
// reconciles, as client-go's EventRecorder records them: one Event per call,
// named after the object, stamped with the reporting controller and this
// replica. Best effort: an Event that cannot be recorded is logged, never
// thrown, so recording one cannot fail a reconcile.
import { randomBytes } from 'node:crypto';
import { apiErrorOf } from './client.ts';
import { silentLogger, type Logger } from './log.ts';
import { microTime, type RestClient } from './rest-client.ts';
import { restResource } from './typed-client.ts';

/** An events.k8s.io/v1 Event as the recorder writes it (the fields it sets). */
export interface EventBody {
  apiVersion: 'events.k8s.io/v1';
  kind: 'Event';
  metadata: { name: string; namespace: string };
  /** A MicroTime: RFC 3339 with six fractional digits. */
  eventTime: string;
  reportingController: string;
  reportingInstance: string;
  action: string;
  reason: string;
  type: EventType;
  note: string;
  regarding: {
    apiVersion?: string | undefined;
    kind?: string | undefined;
    name: string;
    namespace: string;
    uid?: string | undefined;
    resourceVersion?: string | undefined;
  };
}

/** Where the recorder creates Events; tests pass a fake. */
export interface EventsApiLike {
  createNamespacedEvent(param: { namespace: string; body: EventBody }): Promise<unknown>;
}

/** Events created through `rest`. */
export function restEventsApi(rest: RestClient): EventsApiLike {
  const events = restResource<EventBody>(rest, 'Event', { apiPath: '/apis/events.k8s.io/v1', plural: 'events', namespaced: 'required' });
  return { createNamespacedEvent: ({ namespace, body }) => events.create(namespace, body) };
}

/** The object an Event is about. */
export interface EventSubject {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; uid?: string; resourceVersion?: string };
}

export type EventType = 'Normal' | 'Warning';

export interface EventRecorderOptions {
  api: EventsApiLike;
  /** Who reports, e.g. `usher.dev/usher` (the Event's reportingController). */
  reportingController: string;
  /** Which replica reports: the pod's name (reportingInstance). */
  reportingInstance: string;
  log?: Logger;
}

/** The API server refuses a longer note. */
const MAX_NOTE = 1024;

export class EventRecorder {
  readonly #opts: EventRecorderOptions;
  readonly #log: Logger;

  constructor(options: EventRecorderOptions) {
    this.#opts = options;
    this.#log = options.log ?? silentLogger;
  }

  /** Records an Event about `subject` in its namespace (`default` for a cluster-scoped one); `action` defaults to the reason. */
  record(subject: EventSubject, type: EventType, reason: string, message: string, action = reason): void {
    const { name, uid, resourceVersion } = subject.metadata;
    const namespace = subject.metadata.namespace ?? 'default';
    const body: EventBody = {
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      // Unique per call: several Events about one object within a millisecond still get names of their own.
      metadata: { name: `${name}.${Date.now().toString(16)}${randomBytes(2).toString('hex')}`, namespace },
      eventTime: microTime(),
      reportingController: this.#opts.reportingController,
      reportingInstance: this.#opts.reportingInstance,
      action,
      reason,
      type,
      note: message.slice(0, MAX_NOTE),
      regarding: { apiVersion: subject.apiVersion, kind: subject.kind, name, namespace, uid, resourceVersion },
    };
    void (async () => {
      try {
        await this.#opts.api.createNamespacedEvent({ namespace, body });
      } catch (err) {
        this.#log.warn({ err: apiErrorOf(err).message, reason }, 'could not record event');
      }
    })();
  }
}
