// Password hashing: argon2id with OWASP's Password Storage Cheat Sheet
// parameters (m=19 MiB, t=2, p=1). The PHC string records them, so whoever
// verifies reads the parameters from the hash and they can be raised later
// without breaking existing hashes. Hashing runs on libuv's thread pool (four
// threads by default), which also caps the memory in use at once.
import { hash } from '@node-rs/argon2';

export const ARGON2ID_OPTIONS = {
  // No `algorithm`: the library's default is Argon2id, and its Algorithm is an
  // ambient const enum that isolated modules cannot read. The tests check the
  // PHC string says argon2id.
  memoryCost: 19_456,
  timeCost: 2,
  parallelism: 1,
} as const;

/** A PHC string such as `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`, with a random 16-byte salt. */
export function hashPassword(password: string): Promise<string> {
  return hash(password, ARGON2ID_OPTIONS);
}
