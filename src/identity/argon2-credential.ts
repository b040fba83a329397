// Usher's password hash as a Keycloak password credential, so an account can be
// created with the password the person chose on the acceptance page without
// Usher ever holding that password again.
//
// Usher hashes with argon2id (src/accept/hash.ts) and keeps the PHC string
//   $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>      (base64 without padding)
// Keycloak's argon2 password-hash provider stores the same parameters as JSON:
//   credentialData {"hashIterations":t,"algorithm":"argon2","additionalParameters":
//                   {"hashLength":[len],"memory":[m],"type":["id"],"version":["1.3"],"parallelism":[p]}}
//   secretData     {"value":<hash, base64 padded>,"salt":<salt, base64 padded>,"additionalParameters":{}}
// Version 19 (0x13) is argon2's "1.3", the only one Keycloak writes; argon2i, argon2d,
// version 16 and every other scheme (bcrypt, scrypt, PBKDF2) are refused rather than
// imported as something Keycloak would verify differently.

/** A `credentials` entry of Keycloak's UserRepresentation. */
export interface KeycloakPasswordCredential {
  type: 'password';
  credentialData: string;
  secretData: string;
  temporary: false;
}

export class UnsupportedHashError extends Error {
  override name = 'UnsupportedHashError';
}

const B64 = /^[A-Za-z0-9+/]+$/;

/** Converts Usher's argon2id PHC string; throws UnsupportedHashError for anything else. */
export function argon2idCredential(phc: string): KeycloakPasswordCredential {
  const parts = phc.split('$');
  // ['', 'argon2id', 'v=19', 'm=19456,t=2,p=1', salt, hash]
  const [empty, algorithm, version, params, salt, hash, ...rest] = parts;
  if (empty !== '' || algorithm === undefined) throw new UnsupportedHashError('the password hash is not a PHC string ($algorithm$...)');
  if (algorithm !== 'argon2id') {
    const known: Record<string, string> = { '2a': 'bcrypt', '2b': 'bcrypt', '2y': 'bcrypt', argon2i: 'argon2i', argon2d: 'argon2d', scrypt: 'scrypt' };
    throw new UnsupportedHashError(
      `the password hash is ${known[algorithm] ?? `"${algorithm}"`}, not argon2id: only Usher's argon2id hashes can be imported into Keycloak`,
    );
  }
  if (!version?.startsWith('v='))
    throw new UnsupportedHashError('the argon2id hash has no version (v=19): only version 19 (1.3) can be imported into Keycloak');
  if (version !== 'v=19')
    throw new UnsupportedHashError(`the argon2id hash has version ${version.slice(2)}, not 19 (1.3): only version 19 can be imported into Keycloak`);
  if (params === undefined || salt === undefined || hash === undefined || rest.length > 0) {
    throw new UnsupportedHashError('the argon2id hash is not $argon2id$v=19$m=…,t=…,p=…$<salt>$<hash>');
  }
  const values = new Map<string, number>();
  for (const pair of params.split(',')) {
    const [key, value] = pair.split('=');
    if (key === undefined || value === undefined || !/^\d+$/.test(value) || !['m', 't', 'p'].includes(key) || values.has(key)) {
      throw new UnsupportedHashError(`the argon2id hash has an unexpected parameter "${pair}" (only m, t and p)`);
    }
    values.set(key, Number(value));
  }
  const m = values.get('m');
  const t = values.get('t');
  const p = values.get('p');
  if (m === undefined || t === undefined || p === undefined) throw new UnsupportedHashError('the argon2id hash lacks one of its parameters m, t and p');
  if (!B64.test(salt) || !B64.test(hash)) throw new UnsupportedHashError('the argon2id hash has a salt or hash that is not base64');
  const hashBytes = Buffer.from(hash, 'base64');
  const saltBytes = Buffer.from(salt, 'base64');
  if (hashBytes.length < 4 || saltBytes.length < 8) throw new UnsupportedHashError('the argon2id hash has a salt or hash too short to be real');
  return {
    type: 'password',
    temporary: false,
    credentialData: JSON.stringify({
      hashIterations: t,
      algorithm: 'argon2',
      additionalParameters: {
        hashLength: [String(hashBytes.length)],
        memory: [String(m)],
        type: ['id'],
        version: ['1.3'],
        parallelism: [String(p)],
      },
    }),
    secretData: JSON.stringify({ value: hashBytes.toString('base64'), salt: saltBytes.toString('base64'), additionalParameters: {} }),
  };
}
