import { hash } from '@node-rs/argon2';
import { describe, expect, it } from 'vitest';
import { hashPassword } from '../../src/accept/hash.ts';
import { argon2idCredential, UnsupportedHashError } from '../../src/identity/argon2-credential.ts';

interface CredentialData {
  hashIterations: number;
  algorithm: string;
  additionalParameters: Record<string, string[]>;
}
interface SecretData {
  value: string;
  salt: string;
  additionalParameters: Record<string, never>;
}

describe('argon2idCredential', () => {
  it("converts a real hash of Usher's into Keycloak's argon2 credential with the same parameters and bytes", async () => {
    const phc = await hashPassword('correct horse battery staple');
    const [, , , params, salt, digest] = phc.split('$');
    expect(params).toBe('m=19456,t=2,p=1');

    const credential = argon2idCredential(phc);
    expect(credential.type).toBe('password');
    expect(credential.temporary).toBe(false);
    const data = JSON.parse(credential.credentialData) as CredentialData;
    expect(data).toEqual({
      hashIterations: 2,
      algorithm: 'argon2',
      additionalParameters: { hashLength: ['32'], memory: ['19456'], type: ['id'], version: ['1.3'], parallelism: ['1'] },
    });
    const secret = JSON.parse(credential.secretData) as SecretData;
    expect(secret.additionalParameters).toEqual({});
    // The same bytes, in standard base64 with its padding back.
    expect(Buffer.from(secret.value, 'base64')).toEqual(Buffer.from(digest ?? '', 'base64'));
    expect(Buffer.from(secret.salt, 'base64')).toEqual(Buffer.from(salt ?? '', 'base64'));
    expect(secret.value).toMatch(/^[A-Za-z0-9+/]{43}=$/); // 32 bytes
    expect(secret.salt).toMatch(/^[A-Za-z0-9+/]{22}==$/); // 16 bytes
  });

  it('pads each part to a multiple of four and reports the decoded hash length', async () => {
    // Other parameters and a 20-byte hash (27 unpadded characters, one "=" back).
    const phc = await hash('another password', { memoryCost: 8192, timeCost: 3, parallelism: 2, outputLen: 20 });
    const credential = argon2idCredential(phc);
    const data = JSON.parse(credential.credentialData) as CredentialData;
    expect(data.hashIterations).toBe(3);
    expect(data.additionalParameters).toMatchObject({ hashLength: ['20'], memory: ['8192'], parallelism: ['2'] });
    const secret = JSON.parse(credential.secretData) as SecretData;
    expect(secret.value).toHaveLength(28);
    expect(secret.value.endsWith('=')).toBe(true);
    expect(secret.value.length % 4).toBe(0);
    expect(secret.salt.length % 4).toBe(0);

    // A hand-made one: a 9-byte salt (12 characters, no padding needed) and a 32-byte hash.
    const salt = Buffer.alloc(9, 7).toString('base64');
    const digest = Buffer.alloc(32, 1).toString('base64').replace(/=+$/, '');
    const handMade = JSON.parse(argon2idCredential(`$argon2id$v=19$t=2,m=19456,p=1$${salt}$${digest}`).secretData) as SecretData;
    expect(handMade.salt).toBe(salt);
    expect(handMade.value).toBe(`${digest}=`);
  });

  it('refuses bcrypt, argon2i, argon2d, other versions and malformed strings with a clear message', async () => {
    const argon2i = (await hashPassword('x')).replace('$argon2id$', '$argon2i$');
    const cases: [string, RegExp][] = [
      ['$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW', /bcrypt, not argon2id/],
      [argon2i, /argon2i, not argon2id/],
      ['$argon2d$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo', /argon2d, not argon2id/],
      ['$argon2id$v=16$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo', /version 16, not 19/],
      ['$argon2id$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo', /no version/],
      ['$argon2id$v=19$m=19456,t=2$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo', /lacks one of its parameters/],
      ['$argon2id$v=19$m=19456,t=2,p=1,keyid=abc$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo', /unexpected parameter "keyid=abc"/],
      ['$argon2id$v=19$m=19456,t=2,p=1$c2Fsd-HNhbHQ$aGFzaGhhc2hoYXNo', /not base64/],
      ['$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ', /not \$argon2id\$v=19/],
      ['plain text', /not a PHC string/],
      ['$pbkdf2-sha256$29000$c2FsdA$aGFzaA', /"pbkdf2-sha256", not argon2id/],
    ];
    for (const [phc, message] of cases) {
      expect(() => argon2idCredential(phc), phc).toThrow(UnsupportedHashError);
      expect(() => argon2idCredential(phc), phc).toThrow(message);
    }
  });
});
