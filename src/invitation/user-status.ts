// A User's conditions come from more than one controller: the identity
// controller owns Provisioned (its account at the identity provider), the RBAC
// controller owns Bound (its RoleBindings). Each writes only its own condition
// and recomputes the summary that Flux and Argo CD read (Ready, Reconciling,
// Stalled) from every owned condition present, so neither overwrites the
// other's news and the summary is the same whoever wrote last.
import type { Condition } from '../api/types.ts';
import { mergeConditions, READY, readiness, RECONCILING, STALLED, type DesiredCondition } from './conditions.ts';

/** The owned condition types, in the order they are listed (and summarised). */
const OWNED_ORDER = ['Provisioned', 'Bound'];
const SUMMARY = new Set([READY, RECONCILING, STALLED]);

/** Reasons of a False owned condition that will clear by themselves (Reconciling); any other False needs someone (Stalled). */
const PROGRESSING_REASONS = new Set([
  'AcceptanceInProgress',
  'WaitingForPassword',
  'ProviderUnavailable',
  'WaitingForAccount',
  'Retrying',
  'WaitingForInvitation',
]);

/**
 * The User's conditions with `own` set (keeping its transition time when its
 * status is unchanged), the other controllers' conditions kept as they are, and
 * the summary recomputed from all of them.
 */
export function withOwnedCondition(existing: readonly Condition[] | undefined, own: DesiredCondition, generation: number | undefined, now: Date): Condition[] {
  const owned = new Map<string, DesiredCondition>();
  for (const c of existing ?? []) if (!SUMMARY.has(c.type)) owned.set(c.type, { type: c.type, status: c.status, reason: c.reason, message: c.message });
  owned.set(own.type, own);
  const ordered = [...owned.values()].sort((a, b) => rank(a.type) - rank(b.type));
  const merged = mergeConditions(existing, [...ordered, ...summaryOf(ordered)], generation, now);
  // Another controller's condition keeps its own observedGeneration: it says what that controller saw.
  return merged.map((c) => {
    const had = existing?.find((e) => e.type === c.type);
    return c.type !== own.type && !SUMMARY.has(c.type) && had ? had : c;
  });
}

function summaryOf(owned: readonly DesiredCondition[]): DesiredCondition[] {
  const notTrue = owned.filter((c) => c.status !== 'True');
  const waiting = notTrue.find((c) => PROGRESSING_REASONS.has(c.reason));
  const stuck = notTrue.find((c) => !PROGRESSING_REASONS.has(c.reason));
  if (stuck) return readiness('stalled', stuck.reason, stuck.message);
  if (waiting) return readiness('progressing', waiting.reason, waiting.message);
  const first = owned[0];
  return readiness('ready', first?.reason ?? 'Ready', owned.map((c) => c.message).join(' '));
}

function rank(type: string): number {
  const at = OWNED_ORDER.indexOf(type);
  return at < 0 ? OWNED_ORDER.length : at;
}
