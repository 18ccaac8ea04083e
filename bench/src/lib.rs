//! Fixtures shared by the load tools: the signed-token keys and tokens of `bench/bench.sh`'s
//! signed cells and of `verify-cost`.

pub mod signed_fixtures {
    //! One key per supported algorithm in one public JWK Set, a valid token per key, and
    //! forged tokens per key: the valid token's header (so a real `kid` and `alg`) and a
    //! well-formed unexpired claims object with random `sub` and `jti`, signed by nobody:
    //! - `forged`: with the valid token's signature, a genuine one over other claims (what
    //!   an attacker who has seen one token can send), which no verifier can turn down before
    //!   the whole signature check: the worst case;
    //! - `forged_random`: with random signature bytes of the algorithm's length, which a
    //!   verifier may turn down early (an Ed25519 `s` not below the group order, an RSA
    //!   signature not below the modulus).
    //!
    //! Each is refused as `bad_signature`.
    //!
    //! Everything derives from fixed seeds: the same keys and tokens on every run.

    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use ed25519_dalek::pkcs8::EncodePrivateKey as _;
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    use p256::elliptic_curve::sec1::ToEncodedPoint as _;
    use rand_chacha::rand_core::{RngCore as _, SeedableRng as _};
    use rand_chacha::ChaCha20Rng;
    use rsa::pkcs1::EncodeRsaPrivateKey as _;
    use rsa::traits::PublicKeyParts as _;
    use serde_json::json;
    use sha2::{Digest as _, Sha256};

    /// Valid tokens expire on 1 January 2100.
    pub const EXP: i64 = 4_102_444_800;
    /// ... and were issued on 1 December 2026.
    pub const IAT: i64 = 1_796_083_200;

    /// The algorithms measured, as named in `alg`, with their `kid`.
    pub const ALGS: [(&str, &str); 4] = [
        ("HS256", "hs256"),
        ("ES256", "es256"),
        ("EdDSA", "eddsa"),
        ("RS256", "rs256"),
    ];

    /// One key's fixtures.
    pub struct AlgFixture {
        pub alg: &'static str,
        pub kid: &'static str,
        pub token: String,
        pub forged: Vec<String>,
        pub forged_random: Vec<String>,
    }

    pub struct Fixtures {
        /// The public JWK Set (what nginx's `jwks=` file holds).
        pub jwks: String,
        pub algs: Vec<AlgFixture>,
    }

    fn seed(label: &str) -> [u8; 32] {
        Sha256::digest(format!("wcs-bench {label}")).into()
    }

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The signing key and public JWK of `alg`.
    fn key(alg: &str, kid: &str) -> Result<(Algorithm, EncodingKey, serde_json::Value), String> {
        let s = seed(alg);
        Ok(match alg {
            "HS256" => (
                Algorithm::HS256,
                EncodingKey::from_secret(&s),
                json!({"kty": "oct", "kid": kid, "alg": alg, "k": b64(&s)}),
            ),
            "ES256" => {
                let sk = p256::SecretKey::from_slice(&s).map_err(|e| e.to_string())?;
                let der = sk.to_pkcs8_der().map_err(|e| e.to_string())?;
                let point = sk.public_key().to_encoded_point(false);
                let (Some(x), Some(y)) = (point.x(), point.y()) else {
                    return Err("P-256 public key without coordinates".into());
                };
                (
                    Algorithm::ES256,
                    EncodingKey::from_ec_der(der.as_bytes()),
                    json!({"kty": "EC", "crv": "P-256", "kid": kid, "alg": alg,
                           "x": b64(x), "y": b64(y)}),
                )
            }
            "EdDSA" => {
                let sk = ed25519_dalek::SigningKey::from_bytes(&s);
                let der = sk.to_pkcs8_der().map_err(|e| e.to_string())?;
                (
                    Algorithm::EdDSA,
                    EncodingKey::from_ed_der(der.as_bytes()),
                    json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "alg": alg,
                           "x": b64(sk.verifying_key().as_bytes())}),
                )
            }
            "RS256" => {
                let sk = rsa::RsaPrivateKey::new(&mut ChaCha20Rng::from_seed(s), 2048)
                    .map_err(|e| e.to_string())?;
                let der = sk.to_pkcs1_der().map_err(|e| e.to_string())?;
                (
                    Algorithm::RS256,
                    EncodingKey::from_rsa_der(der.as_bytes()),
                    json!({"kty": "RSA", "kid": kid, "alg": alg,
                           "n": b64(&sk.n().to_bytes_be()), "e": b64(&sk.e().to_bytes_be())}),
                )
            }
            other => return Err(format!("unsupported algorithm {other}")),
        })
    }

    /// Signature length in bytes of `alg`.
    fn signature_len(alg: Algorithm) -> usize {
        match alg {
            Algorithm::RS256 => 256,
            Algorithm::HS256 => 32,
            _ => 64,
        }
    }

    /// The fixtures with `forged` forged tokens per key.
    pub fn make(forged: usize) -> Result<Fixtures, String> {
        let mut keys = Vec::new();
        let mut algs = Vec::new();
        for (alg, kid) in ALGS {
            let (algorithm, key, jwk) = key(alg, kid)?;
            keys.push(jwk);
            let mut header = Header::new(algorithm);
            header.kid = Some(kid.to_string());
            let claims = json!({"sub": "bench-user", "iat": IAT, "exp": EXP,
                                "jti": format!("bench-{kid}")});
            let token = encode(&header, &claims, &key).map_err(|e| format!("{alg}: {e}"))?;
            let mut parts = token.split('.');
            let head = parts.next().unwrap_or_default();
            let genuine = parts.nth(1).unwrap_or_default();
            let mut rng = ChaCha20Rng::from_seed(seed(&format!("{alg} forged")));
            let mut claims = |i: usize| {
                let c = json!({"sub": format!("forged-{:08x}", rng.next_u32()),
                               "iat": IAT, "exp": EXP,
                               "jti": format!("{i}-{:016x}", rng.next_u64())});
                b64(c.to_string().as_bytes())
            };
            let replayed: Vec<String> = (0..forged)
                .map(|i| format!("{head}.{}.{genuine}", claims(i)))
                .collect();
            let mut sig_rng = ChaCha20Rng::from_seed(seed(&format!("{alg} forged signature")));
            let mut sig = vec![0u8; signature_len(algorithm)];
            let random: Vec<String> = (0..forged)
                .map(|i| {
                    sig_rng.fill_bytes(&mut sig);
                    format!("{head}.{}.{}", claims(i), b64(&sig))
                })
                .collect();
            algs.push(AlgFixture {
                alg,
                kid,
                forged: replayed,
                forged_random: random,
                token,
            });
        }
        Ok(Fixtures {
            jwks: json!({ "keys": keys }).to_string(),
            algs,
        })
    }
}
