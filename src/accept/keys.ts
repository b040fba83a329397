// The page's two secrets, derived from one key so that an operator manages a
// single file (usher.accept.csrfKeyFile): an HMAC key for CSRF tokens and an
// AES-256-GCM key for the SSO state cookie. HKDF with distinct labels keeps a
// value made for one use from being accepted for the other.
import { hkdfSync, randomBytes } from 'node:crypto';

export interface PageKeys {
  csrf: Buffer;
  oidcState: Buffer;
}

export function deriveKeys(master: string | undefined): PageKeys {
  // No configured key: a random one, valid for this process only (see AcceptConfig.csrfKey).
  const ikm = master === undefined ? randomBytes(32) : Buffer.from(master, 'utf8');
  const derive = (label: string): Buffer => Buffer.from(hkdfSync('sha256', ikm, 'usher.dev/accept', label, 32));
  return { csrf: derive('csrf v1'), oidcState: derive('oidc-state v1') };
}
