// Property-based fuzzing (fast-check) of UserInvitation specs through the real
// API server and the operator (its own process, on a control plane of its
// own). Each generated spec is created as an invitation; then either the API
// server refuses it, with a message that names the field, or it is stored and
// the operator takes it to a settled phase, a Failed one with a condition that
// says why. Throughout, the operator must not crash, fail reconciles or log
// errors, and a plain invitation must still reach Sent at the end.
import fc from 'fast-check';
import type { UserInvitation, UserInvitationSpec } from '../src/api/types.ts';
import { apiErrorOf } from '../src/runtime/client.ts';
import { createInvitation, invitationBody } from '../bench/support/invitations.ts';
import { startOperator, type LogLine } from '../bench/support/operator.ts';
import { watchPhases } from '../bench/support/phases.ts';
import { startPlane } from '../bench/support/plane.ts';
import { startSink } from '../bench/support/sink.ts';
import { sleep } from './support.ts';

export interface FuzzOptions {
  runs: number;
  seed?: number;
  log: (line: string) => void;
}

export interface FuzzResult {
  runs: number;
  seed: number;
  /** Refusals by the API server, by the field its message names first. */
  refused: Record<string, number>;
  /** Stored invitations by the phase they settled in (Failed split by reason). */
  settled: Record<string, number>;
  /** Messages that were not clear, with the spec that caused them. */
  unclear: string[];
  operatorAlive: boolean;
  /** Operator log lines at error level or above, and failed reconciles. */
  operatorErrors: string[];
  finalSent: boolean;
  failure?: string;
  ok: boolean;
}

const TENANT_NS = 'fuzz-acme';
const INSTANCE_NS = 'fuzz-platform';
const PLAIN_NS = 'fuzz-unlabelled';
const SETTLED = new Set(['Sent', 'Failed', 'Expired', 'UserCreated', 'Accepted']);

// Mostly valid specs with now and then a field that is not: an invalid field in
// every spec would only ever test the API server's first refusal.
const sometimes = <T>(arb: fc.Arbitrary<T>, otherwise: fc.Arbitrary<T>, oneIn: number): fc.Arbitrary<T> =>
  fc.oneof({ weight: oneIn - 1, arbitrary: otherwise }, { weight: 1, arbitrary: arb });
const absent = fc.constant(undefined);
const text = fc.string({ unit: 'binary', maxLength: 30 });
const nasty = fc.constantFrom('', ' ', '\n', '\t', '\u0000', '\u202e', 'a\r\nb', '../..', '*', 'null', '${x}', '<b>', 'é', '😀');
const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,12}[a-z0-9])?$/);
const validName = fc.stringMatching(/^[A-Za-z0-9]([A-Za-z0-9._-]{0,20}[A-Za-z0-9])?$/);
const grantName = sometimes(fc.oneof(text, nasty, fc.string({ minLength: 120, maxLength: 140 })), validName, 12);
const badEmail = fc.oneof(
  fc.tuple(fc.string({ maxLength: 12 }), fc.emailAddress()).map(([n, e]) => `"${n}" <${e}>`),
  fc.tuple(fc.emailAddress(), fc.emailAddress()).map(([a, b]) => `${a}, ${b}`),
  fc.emailAddress().map((e) => `${e}\r\nBcc: someone@example.com`),
  fc.string({ minLength: 240, maxLength: 300, unit: 'grapheme-ascii' }).map((s) => `${s.replace(/[\s@]/g, 'x')}@example.com`),
  fc.constantFrom(
    '',
    '@',
    'a@b',
    'jane@example',
    'jane@@example.com',
    'jané@exämple.com',
    'jane@example.com.',
    'jane@-example.com',
    'jane(comment)@example.com',
  ),
  text,
  nasty,
);
const email = sometimes(
  badEmail,
  fc.oneof(
    { weight: 6, arbitrary: fc.emailAddress() },
    fc.emailAddress().map((e) => e.toUpperCase()),
    fc.emailAddress().map((e) => ` ${e} `),
  ),
  5,
);
const validDuration = fc.oneof(
  fc.constantFrom('P7D', 'PT1H', 'P1D', 'P30D', 'PT12H', 'P1W', 'P90D', 'PT1.5S', 'P1DT2H'),
  fc.integer({ min: 1, max: 90 }).map((n) => `P${n}D`),
);
const badDuration = fc.oneof(
  fc.constantFrom('PT0S', 'P0D', 'P91D', 'P1Y', 'PT0,5S', 'P', 'PT', '1d', 'P-1D', 'p7d', 'P1DT', 'P99999999999999999999D', 'PT0.0001S'),
  fc.tuple(fc.nat(400), fc.constantFrom('D', 'W', 'M', 'Y')).map(([n, u]) => `P${n}${u}`),
  fc.tuple(fc.nat(200_000), fc.constantFrom('H', 'M', 'S')).map(([n, u]) => `PT${n}${u}`),
  text,
);
const spec = fc.record({
  email,
  scope: fc.oneof(
    { weight: 6, arbitrary: absent },
    { weight: 2, arbitrary: fc.constantFrom('Tenant', 'Instance') },
    { weight: 1, arbitrary: fc.constantFrom('tenant', 'Global', '') },
  ),
  tenant: fc.oneof(
    { weight: 6, arbitrary: fc.constant('acme') },
    { weight: 2, arbitrary: absent },
    { weight: 1, arbitrary: fc.constant('globex') },
    { weight: 1, arbitrary: label },
    { weight: 1, arbitrary: fc.oneof(text, nasty) },
  ),
  groups: fc.oneof(
    { weight: 2, arbitrary: absent },
    { weight: 6, arbitrary: fc.array(grantName, { maxLength: 5 }) },
    { weight: 1, arbitrary: fc.array(validName, { minLength: 60, maxLength: 70 }) },
  ),
  roles: fc.oneof(
    { weight: 3, arbitrary: absent },
    {
      weight: 4,
      arbitrary: fc.array(
        fc.record({
          name: grantName,
          namespaces: fc.oneof(absent, fc.array(sometimes(fc.oneof(text, nasty), fc.constantFrom('company.team', 'company.data'), 8), { maxLength: 3 })),
        }),
        { maxLength: 3 },
      ),
    },
  ),
  expireAfter: fc.oneof({ weight: 5, arbitrary: absent }, { weight: 3, arbitrary: validDuration }, { weight: 2, arbitrary: badDuration }),
  createUserDirectly: fc.oneof({ weight: 6, arbitrary: absent }, { weight: 1, arbitrary: fc.boolean() }),
  unknownField: fc.oneof({ weight: 8, arbitrary: absent }, { weight: 1, arbitrary: text }),
});
const namespace = fc.oneof(
  { weight: 6, arbitrary: fc.constant(TENANT_NS) },
  { weight: 2, arbitrary: fc.constant(INSTANCE_NS) },
  { weight: 1, arbitrary: fc.constant(PLAIN_NS) },
);

/** A refusal is clear when it names a field of the spec (or metadata) and reads as words. */
function clearRefusal(message: string): boolean {
  return /\bspec(\.|:|\b)/.test(message) && !/undefined|\[object Object\]|NaN/.test(message) && message.length < 20_000;
}

/** A settled status is clear when its Ready condition has a reason and a message of words, naming the problem for Failed. */
function clearStatus(inv: UserInvitation): string | undefined {
  const ready = inv.status?.conditions?.find((c) => c.type === 'Ready');
  if (!ready) return 'no Ready condition';
  if (!ready.reason || ready.message.length < 20 || /undefined|\[object Object\]|NaN/.test(ready.message))
    return `unclear Ready: ${ready.reason}: ${ready.message}`;
  if (inv.status?.phase === 'Failed' && !/spec\.|Namespace|Instance-scope|mail server/.test(ready.message))
    return `Failed without naming the problem: ${ready.message}`;
  return undefined;
}

export async function fuzzSpecs(options: FuzzOptions): Promise<FuzzResult> {
  const { runs, log } = options;
  const seed = options.seed ?? Date.now() % 2 ** 31;
  const plane = await startPlane();
  const sink = await startSink();
  const result: FuzzResult = { runs, seed, refused: {}, settled: {}, unclear: [], operatorAlive: false, operatorErrors: [], finalSent: false, ok: false };
  try {
    await plane.namespace(TENANT_NS, 'acme');
    await plane.namespace(INSTANCE_NS);
    await plane.namespace(PLAIN_NS);
    const op = await startOperator({
      kubeconfig: plane.kubeconfig,
      smtpPort: sink.port,
      extraConfig: ['  tenancy:', `    instanceNamespaces: [${INSTANCE_NS}]`],
    });
    const errors: LogLine[] = [];
    op.onLine = (line) => {
      if (line.level >= 50 || line.msg === 'reconcile failed, retrying with backoff') errors.push(line);
    };
    await op.running;
    const watches = await Promise.all(
      [TENANT_NS, INSTANCE_NS, PLAIN_NS].map(async (ns) => [ns, await watchPhases(plane.kubeConfig, plane.custom, ns)] as const),
    );
    const watchOf = new Map(watches);
    let counter = 0;
    const property = fc.asyncProperty(spec, namespace, async (generated, ns) => {
      const name = `fz-${counter++}`;
      // JSON drops the keys left undefined.
      const body: UserInvitation = { ...invitationBody(ns, name), spec: JSON.parse(JSON.stringify(generated)) as UserInvitationSpec };
      let created: UserInvitation;
      try {
        created = await createInvitation(plane.custom, body);
      } catch (err) {
        const { code, message } = apiErrorOf(err);
        if (code === undefined || code >= 500) throw new Error(`the API server failed (${code ?? 'no answer'}): ${message}`, { cause: err });
        if (!clearRefusal(message)) result.unclear.push(`refusal "${message}" for ${JSON.stringify(generated)}`);
        const field = /\b(spec(?:\.[A-Za-z]+)?)/.exec(message)?.[1] ?? `HTTP ${code}`;
        result.refused[field] = (result.refused[field] ?? 0) + 1;
        return;
      }
      // Stored: wait until the operator has settled it.
      const watch = watchOf.get(ns);
      const deadline = performance.now() + 20_000;
      let inv = watch?.informer.get(ns, name);
      while (!SETTLED.has(inv?.status?.phase ?? '') && performance.now() < deadline) {
        if (op.child.exitCode !== null || op.child.signalCode !== null) throw new Error(`the operator exited: ${op.stderr()}`);
        await sleep(25);
        inv = watch?.informer.get(ns, name);
      }
      if (!inv || !SETTLED.has(inv.status?.phase ?? '')) {
        throw new Error(`not settled in 20 s: ${JSON.stringify(created.spec)} → ${JSON.stringify(inv?.status ?? {})}`);
      }
      const phase = inv.status?.phase ?? '';
      const reason = inv.status?.conditions?.find((c) => c.type === 'Ready')?.reason ?? '';
      const key = phase === 'Failed' ? `Failed/${reason}` : phase;
      result.settled[key] = (result.settled[key] ?? 0) + 1;
      const unclear = clearStatus(inv);
      if (unclear) result.unclear.push(`${unclear} for ${JSON.stringify(created.spec)}`);
      if (errors.length > 0)
        throw new Error(
          `the operator logged: ${errors
            .map((e) => `${e.msg} ${JSON.stringify(e)}`)
            .join('; ')
            .slice(0, 2000)}`,
        );
    });
    try {
      await fc.assert(property, { numRuns: runs, seed, endOnFailure: true });
    } catch (err) {
      result.failure = (err as Error).message.slice(0, 4000);
    }
    // Still alive, and still doing its job.
    result.operatorAlive = op.child.exitCode === null && op.child.signalCode === null;
    const watch = watchOf.get(TENANT_NS);
    if (result.operatorAlive && watch) {
      await createInvitation(plane.custom, invitationBody(TENANT_NS, 'after-fuzz', { tenant: 'acme' }));
      result.finalSent = await watch.waitFor('Sent', ['after-fuzz'], 30_000).then(
        () => true,
        () => false,
      );
    }
    for (const [, w] of watches) w.stop();
    result.operatorErrors = errors.map((e) => `${e.msg}: ${JSON.stringify(e).slice(0, 300)}`);
    await op.stop();
    result.ok = !result.failure && result.unclear.length === 0 && result.operatorAlive && result.operatorErrors.length === 0 && result.finalSent;
    log(
      `    ${runs} specs (seed ${seed}): refused by the API server ${Object.values(result.refused).reduce((a, b) => a + b, 0)} (${Object.entries(result.refused)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}); settled by the operator ${Object.values(result.settled).reduce((a, b) => a + b, 0)} (${Object.entries(result.settled)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')})`,
    );
    log(
      `    unclear messages: ${result.unclear.length}; operator alive: ${result.operatorAlive}, errors logged: ${result.operatorErrors.length}, a plain invitation afterwards reached Sent: ${result.finalSent}${result.failure ? `\n    failure: ${result.failure}` : ''}`,
    );
    for (const u of result.unclear.slice(0, 5)) log(`      ${u.slice(0, 500)}`);
    return result;
  } finally {
    await sink.close();
    await plane.stop();
  }
}
