#!/usr/bin/env node
// Mints a signed token (JWT) for ngx-wcs-token-auth with jose: npm install jose@5.
//
// The key is a private JWK Set (as `wcs-token jwks new --private` writes it; the key is chosen
// by --kid, or is the only one), a single private JWK, or a PEM (PKCS#8) private key (then
// --alg is needed). Every option can also come from the environment: --sub from JWT_SUB, etc.
//
//   node mint-token.mjs --key private.jwks --kid k1 --sub alice --ttl 3600 --aud wcs --iss backend
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { SignJWT, importJWK, importPKCS8 } from "jose";

const names = ["key", "kid", "alg", "sub", "ttl", "exp", "iat", "nbf", "jti", "iss"];
const { values: opt } = parseArgs({
  options: {
    ...Object.fromEntries(names.map((n) => [n, { type: "string" }])),
    aud: { type: "string", multiple: true }, // twice or more: an array
  },
});
for (const n of [...names, "aud"]) {
  const env = process.env[`JWT_${n.toUpperCase()}`];
  if (opt[n] === undefined && env) opt[n] = n === "aud" ? [env] : env;
}
if (!opt.key || !opt.sub) {
  console.error("usage: mint-token.mjs --key FILE [--kid KID] --sub SUB [--ttl SECS] ...");
  process.exit(2);
}

const algOfKty = { EC: "ES256", OKP: "EdDSA", RSA: "RS256" };
const text = readFileSync(opt.key, "utf8");
let { kid, alg } = opt;
let key;
if (text.trimStart().startsWith("-----BEGIN")) {
  if (!alg) throw new Error("--alg is required with a PEM key");
  key = await importPKCS8(text, alg);
} else {
  const doc = JSON.parse(text);
  const found = (doc.keys ?? [doc]).filter((k) => kid === undefined || k.kid === kid);
  if (found.length !== 1) throw new Error(`no single key with kid ${kid} in ${opt.key}`);
  const jwk = found[0];
  kid ??= jwk.kid;
  alg ??= jwk.alg ?? algOfKty[jwk.kty];
  key = await importJWK(jwk, alg);
}

const num = (v) => (v === undefined ? undefined : Number(v));
const iat = num(opt.iat) ?? Math.floor(Date.now() / 1000);
const claims = { sub: opt.sub, iat, exp: num(opt.exp) ?? iat + (num(opt.ttl) ?? 3600) };
if (opt.nbf !== undefined) claims.nbf = num(opt.nbf);
if (opt.jti !== "none") claims.jti = opt.jti ?? randomUUID();
if (opt.iss) claims.iss = opt.iss;
if (opt.aud) claims.aud = opt.aud.length === 1 ? opt.aud[0] : opt.aud;

const header = kid ? { alg, kid } : { alg };
console.log(await new SignJWT(claims).setProtectedHeader(header).sign(key));
