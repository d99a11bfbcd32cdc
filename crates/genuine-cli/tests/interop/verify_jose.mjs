// Verifies Genuine tokens with the npm package `jose` against the published
// JWKS (or an HS256 secret). Reads a JSON file of cases (argv[2]) and prints one
// JSON list of results.
import { readFileSync } from 'node:fs';
import { createLocalJWKSet, jwtVerify } from 'jose';

const data = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const jwks = createLocalJWKSet(data.jwks);
const results = [];
for (const c of data.cases) {
  try {
    const key = c.key === 'jwks' ? jwks : new Uint8Array(Buffer.from(c.key.split(':')[1], 'base64url'));
    const { payload, protectedHeader } = await jwtVerify(c.token, key, {
      issuer: c.issuer,
      audience: c.audience,
      algorithms: ['ES256', 'EdDSA', 'HS256'],
      requiredClaims: ['exp', 'iat', 'sub'],
    });
    results.push({ ok: true, sub: payload.sub, alg: protectedHeader.alg });
  } catch (e) {
    results.push({ ok: false, error: e.code || e.name });
  }
}
console.log(JSON.stringify(results));
