//! Signed tokens for the end-to-end tests: keys made with openssl (RSA-2048, P-256, Ed25519,
//! HMAC secrets) with their JWK members, and tokens signed over any header and payload bytes,
//! so a test can craft what no JWT library would produce.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use openssl::bn::BigNumContext;
use openssl::ec::{EcGroup, EcKey};
use openssl::ecdsa::EcdsaSig;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::sign::Signer;
use serde_json::{json, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alg {
    HS256,
    ES256,
    EdDSA,
    RS256,
}

pub const ALL: [Alg; 4] = [Alg::HS256, Alg::ES256, Alg::EdDSA, Alg::RS256];

impl Alg {
    pub fn name(self) -> &'static str {
        match self {
            Alg::HS256 => "HS256",
            Alg::ES256 => "ES256",
            Alg::EdDSA => "EdDSA",
            Alg::RS256 => "RS256",
        }
    }
}

enum Material {
    Secret(Vec<u8>),
    Pkey(PKey<Private>),
}

pub struct Key {
    pub alg: Alg,
    pub kid: String,
    material: Material,
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// HMAC-SHA256 of `input` under `secret` (any bytes, such as a public key's PEM).
pub fn hs256(secret: &[u8], input: &[u8]) -> Vec<u8> {
    let key = PKey::hmac(secret).expect("hmac key");
    let mut s = Signer::new(MessageDigest::sha256(), &key).expect("signer");
    s.sign_oneshot_to_vec(input).expect("hmac")
}

/// A compact JWS over the given header and payload texts, signed by `sign`.
pub fn token_with(header: &str, payload: &str, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let sig = sign(input.as_bytes());
    format!("{input}.{}", b64(&sig))
}

impl Key {
    pub fn generate(alg: Alg, kid: &str) -> Key {
        let material = match alg {
            Alg::HS256 => {
                let mut secret = vec![0u8; 32];
                openssl::rand::rand_bytes(&mut secret).expect("random");
                Material::Secret(secret)
            }
            Alg::ES256 => {
                let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("P-256");
                Material::Pkey(PKey::from_ec_key(EcKey::generate(&group).expect("ec")).unwrap())
            }
            Alg::EdDSA => Material::Pkey(PKey::generate_ed25519().expect("ed25519")),
            Alg::RS256 => {
                Material::Pkey(PKey::from_rsa(Rsa::generate(2048).expect("rsa")).unwrap())
            }
        };
        Key {
            alg,
            kid: kid.to_string(),
            material,
        }
    }

    fn pkey(&self) -> &PKey<Private> {
        match &self.material {
            Material::Pkey(p) => p,
            Material::Secret(_) => panic!("an HMAC key has no public key"),
        }
    }

    /// The JWK nginx is given: public members only (the secret itself for HMAC).
    pub fn public_jwk(&self) -> Value {
        let mut jwk = json!({"kid": self.kid, "alg": self.alg.name(), "use": "sig"});
        let m = jwk.as_object_mut().expect("object");
        match (&self.material, self.alg) {
            (Material::Secret(s), _) => {
                m.insert("kty".into(), "oct".into());
                m.insert("k".into(), b64(s).into());
            }
            (Material::Pkey(p), Alg::ES256) => {
                let ec = p.ec_key().expect("ec");
                let (x, y) = ec_xy(&ec);
                m.insert("kty".into(), "EC".into());
                m.insert("crv".into(), "P-256".into());
                m.insert("x".into(), b64(&x).into());
                m.insert("y".into(), b64(&y).into());
            }
            (Material::Pkey(p), Alg::EdDSA) => {
                m.insert("kty".into(), "OKP".into());
                m.insert("crv".into(), "Ed25519".into());
                m.insert("x".into(), b64(&p.raw_public_key().expect("raw")).into());
            }
            (Material::Pkey(p), _) => {
                let rsa = p.rsa().expect("rsa");
                m.insert("kty".into(), "RSA".into());
                m.insert("n".into(), b64(&rsa.n().to_vec()).into());
                m.insert("e".into(), b64(&rsa.e().to_vec()).into());
            }
        }
        jwk
    }

    /// The JWK a backend signs with: the public one plus the private members.
    pub fn private_jwk(&self) -> Value {
        let mut jwk = self.public_jwk();
        let m = jwk.as_object_mut().expect("object");
        match (&self.material, self.alg) {
            (Material::Secret(_), _) => {}
            (Material::Pkey(p), Alg::ES256) => {
                let d = p.ec_key().expect("ec").private_key().to_vec_padded(32);
                m.insert("d".into(), b64(&d.expect("d")).into());
            }
            (Material::Pkey(p), Alg::EdDSA) => {
                m.insert("d".into(), b64(&p.raw_private_key().expect("raw")).into());
            }
            (Material::Pkey(p), _) => {
                let rsa = p.rsa().expect("rsa");
                let parts = [
                    ("d", rsa.d()),
                    ("p", rsa.p().expect("p")),
                    ("q", rsa.q().expect("q")),
                    ("dp", rsa.dmp1().expect("dp")),
                    ("dq", rsa.dmq1().expect("dq")),
                    ("qi", rsa.iqmp().expect("qi")),
                ];
                for (name, v) in parts {
                    m.insert(name.into(), b64(&v.to_vec()).into());
                }
            }
        }
        jwk
    }

    /// The public key as PEM (SubjectPublicKeyInfo), the bytes an HS256 confusion attack uses.
    pub fn public_pem(&self) -> Vec<u8> {
        self.pkey().public_key_to_pem().expect("pem")
    }

    /// The private key as PKCS#8 PEM, as a backend may keep it.
    pub fn private_pem(&self) -> Vec<u8> {
        self.pkey().private_key_to_pem_pkcs8().expect("pem")
    }

    /// The signature `alg` makes over `input`, in JWS form (ES256: r || s).
    pub fn sign(&self, input: &[u8]) -> Vec<u8> {
        match &self.material {
            Material::Secret(s) => hs256(s, input),
            Material::Pkey(p) => match self.alg {
                Alg::EdDSA => {
                    let mut s = Signer::new_without_digest(p).expect("signer");
                    s.sign_oneshot_to_vec(input).expect("sign")
                }
                Alg::ES256 => {
                    let mut s = Signer::new(MessageDigest::sha256(), p).expect("signer");
                    let der = s.sign_oneshot_to_vec(input).expect("sign");
                    let sig = EcdsaSig::from_der(&der).expect("ecdsa sig");
                    let mut out = sig.r().to_vec_padded(32).expect("r");
                    out.extend(sig.s().to_vec_padded(32).expect("s"));
                    out
                }
                _ => {
                    let mut s = Signer::new(MessageDigest::sha256(), p).expect("signer");
                    s.sign_oneshot_to_vec(input).expect("sign")
                }
            },
        }
    }

    /// The usual header: `{"alg":..,"kid":..,"typ":"JWT"}`.
    pub fn header(&self) -> String {
        json!({"alg": self.alg.name(), "kid": self.kid, "typ": "JWT"}).to_string()
    }

    /// A token with the usual header over `claims`.
    pub fn mint(&self, claims: &Value) -> String {
        self.mint_raw(&self.header(), &claims.to_string())
    }

    /// A token over exactly these header and payload texts, signed by this key.
    pub fn mint_raw(&self, header: &str, payload: &str) -> String {
        token_with(header, payload, |input| self.sign(input))
    }
}

fn ec_xy(ec: &EcKey<Private>) -> (Vec<u8>, Vec<u8>) {
    let mut ctx = BigNumContext::new().expect("ctx");
    let mut x = openssl::bn::BigNum::new().expect("bn");
    let mut y = openssl::bn::BigNum::new().expect("bn");
    ec.public_key()
        .affine_coordinates(ec.group(), &mut x, &mut y, &mut ctx)
        .expect("coordinates");
    (
        x.to_vec_padded(32).expect("x"),
        y.to_vec_padded(32).expect("y"),
    )
}

/// A JWK Set document of the keys' public (or private) JWKs.
pub fn jwks(keys: &[&Key], private: bool) -> String {
    let list: Vec<Value> = keys
        .iter()
        .map(|k| {
            if private {
                k.private_jwk()
            } else {
                k.public_jwk()
            }
        })
        .collect();
    serde_json::to_string_pretty(&json!({ "keys": list })).expect("json")
}

/// Claims valid for `ttl` seconds from now: sub, iat, exp, jti.
pub fn claims(sub: &str, ttl: i64) -> Value {
    let now = now();
    json!({"sub": sub, "iat": now, "exp": now + ttl, "jti": format!("{sub}-{now}-{ttl}")})
}

/// The interoperability tools scripts/test.sh installs: PyJWT's Python and jose's
/// node_modules. `None` (and a note) when neither variable is set; a test asked to use them
/// fails when a path they name is missing.
pub struct Interop {
    pub python: PathBuf,
    pub node_modules: PathBuf,
}

impl Interop {
    pub fn from_env() -> Option<Interop> {
        let python = std::env::var_os("WCS_INTEROP_PYTHON");
        let node = std::env::var_os("WCS_INTEROP_NODE_MODULES");
        if python.is_none() && node.is_none() {
            super::traffic::report(
                "signed-token interoperability: NOT RUN: WCS_INTEROP_PYTHON and \
                 WCS_INTEROP_NODE_MODULES unset (scripts/test.sh installs PyJWT and jose)",
            );
            return None;
        }
        let python = PathBuf::from(python.expect("WCS_INTEROP_PYTHON must be set as well"));
        let node_modules = PathBuf::from(node.expect("WCS_INTEROP_NODE_MODULES must be set too"));
        assert!(python.is_file(), "{} is missing", python.display());
        assert!(
            node_modules.join("jose/package.json").is_file(),
            "jose is missing from {}",
            node_modules.display()
        );
        Some(Interop {
            python,
            node_modules,
        })
    }
}

/// The repository's docs/examples directory (the backend snippets the docs show).
pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples")
}

/// Runs a minting program and returns the token it printed.
pub fn run_minter(mut cmd: Command) -> String {
    let out = cmd.output().expect("run minter");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string();
    assert_eq!(token.matches('.').count(), 2, "not a JWS: {token}");
    token
}
