// Signing in as an existing User to accept an invitation into that account.
// The password is checked against the stored argon2id hash (argon2's verify
// compares in constant time); a User without a hash, a missing Secret, a
// wrong password and a locked account all take one argon2 verification and
// give the same answer, so the page tells nothing about which it was.
// Failed attempts are limited per account (and the per-link and per-client
// limits still apply): five failures in fifteen minutes lock the account's
// sign-in on this page for the rest of the window, per replica.
import { hash, verify } from '@node-rs/argon2';
import type { User } from '../api/types.ts';
import { ARGON2ID_OPTIONS } from './hash.ts';
import { normalizePassword } from './password.ts';
import type { AcceptStore } from './store.ts';

export const MAX_FAILURES = 5;
export const FAILURE_WINDOW_MS = 15 * 60_000;

export class SignInLimiter {
  private readonly failures = new Map<string, number[]>();
  private readonly now: () => Date;

  constructor(now: () => Date) {
    this.now = now;
  }

  locked(account: string): boolean {
    return this.recent(account).length >= MAX_FAILURES;
  }

  failed(account: string): void {
    const recent = this.recent(account);
    recent.push(this.now().getTime());
    this.failures.set(account, recent);
  }

  succeeded(account: string): void {
    this.failures.delete(account);
  }

  private recent(account: string): number[] {
    const since = this.now().getTime() - FAILURE_WINDOW_MS;
    const recent = (this.failures.get(account) ?? []).filter((t) => t > since);
    if (recent.length === 0) this.failures.delete(account);
    return recent;
  }
}

/** A hash of a random password, verified against when there is nothing real to verify: same cost, same answer. */
let dummy: Promise<string> | undefined;
function dummyHash(): Promise<string> {
  dummy ??= hash(`no account ${Math.random()}`, ARGON2ID_OPTIONS);
  return dummy;
}

/** Whether `password` is this User's, read fresh from its credentials Secret. */
export async function passwordMatches(store: AcceptStore, user: User, password: string, limiter: SignInLimiter): Promise<boolean> {
  const account = user.metadata.name;
  const stored = user.spec.authentication === 'Password' ? await store.credentials(account) : undefined;
  const locked = limiter.locked(account);
  const target = stored && !locked ? stored.passwordHash : await dummyHash();
  // A malformed stored hash fails like a wrong password.
  const ok = await verify(target, normalizePassword(password)).catch(() => false);
  const accepted = ok && stored !== undefined && !locked;
  if (accepted) limiter.succeeded(account);
  else limiter.failed(account);
  return accepted;
}
