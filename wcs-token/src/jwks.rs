//! JWK Sets (RFC 7517): a private set for the backend that signs tokens and a public set for
//! nginx (`wcs_token_auth jwks=FILE`), created and rotated together. Keys come from the
//! RustCrypto crates that jsonwebtoken signs with; the sets are written whole to a temporary
//! file that is then renamed over the old one, so `nginx -s reload` never reads half a file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::EncodePrivateKey;
use rand_core::OsRng;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::tokens::{random_bytes, random_token, Failure};

/// The algorithms `jwks new`/`add` generate keys for, as `--alg` spells them.
pub const ALGORITHMS: [&str; 6] = ["HS256", "HS384", "HS512", "ES256", "EdDSA", "RS256"];

/// The private set holds secrets; so does a public set with an HMAC key in it.
const SECRET_MODE: u32 = 0o600;
/// A public set of asymmetric keys only: anyone may read it.
const PUBLIC_MODE: u32 = 0o644;
const RSA_BITS: usize = 2048;

/// One JWK. Known members in RFC order; members this tool does not know are kept as they are.
/// Own type: jsonwebtoken's `Jwk` has no private members (`d`, `p`, `q`, ...) and drops
/// unknown ones, so a private set would not survive a read and a write.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// The HMAC secret: in both sets, since nginx needs it to verify.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dq: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qi: Option<String>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl Jwk {
    /// The same key without its private members (for an HMAC key: the same key).
    pub fn public(&self) -> Jwk {
        Jwk {
            d: None,
            p: None,
            q: None,
            dp: None,
            dq: None,
            qi: None,
            ..self.clone()
        }
    }

    fn is_private(&self) -> bool {
        self.d.is_some() || self.p.is_some() || self.q.is_some()
    }

    fn is_secret(&self) -> bool {
        self.kty == "oct" || self.is_private()
    }

    /// The algorithm the key signs with: its `alg`, which an HMAC key must name; an
    /// asymmetric key without one has the only algorithm this tool uses for its type.
    pub fn algorithm(&self) -> Result<Algorithm, String> {
        let alg = match (self.alg.as_deref(), self.kty.as_str(), self.crv.as_deref()) {
            (Some(a), _, _) => a,
            (None, "EC", Some("P-256")) => "ES256",
            (None, "OKP", Some("Ed25519")) => "EdDSA",
            (None, "RSA", _) => "RS256",
            (None, "oct", _) => return Err("an HMAC key must name its \"alg\"".into()),
            (None, kty, _) => return Err(format!("unsupported key type \"{kty}\"")),
        };
        let algorithm = parse_algorithm(alg)?;
        let fits = match algorithm {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => self.kty == "oct",
            Algorithm::ES256 => self.kty == "EC" && self.crv.as_deref() == Some("P-256"),
            Algorithm::EdDSA => self.kty == "OKP" && self.crv.as_deref() == Some("Ed25519"),
            _ => self.kty == "RSA",
        };
        if !fits {
            return Err(format!(
                "\"alg\" \"{alg}\" does not fit a \"{}\" key",
                self.kty
            ));
        }
        Ok(algorithm)
    }

    /// The key jsonwebtoken signs with.
    pub fn encoding_key(&self) -> Result<(Algorithm, EncodingKey), String> {
        let algorithm = self.algorithm()?;
        let need = |v: &Option<String>, name: &str| -> Result<Vec<u8>, String> {
            let v = v.as_deref().ok_or_else(|| {
                if name == "d" {
                    "a public key (no \"d\"): signing needs the private key set".to_string()
                } else {
                    format!("no \"{name}\"")
                }
            })?;
            URL_SAFE_NO_PAD
                .decode(v)
                .map_err(|_| format!("\"{name}\" is not base64url without padding"))
        };
        let key = match algorithm {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                let k = need(&self.k, "k")?;
                if k.len() < hash_len(algorithm) {
                    return Err(format!(
                        "an {alg:?} secret must have at least {} bytes, this one has {}",
                        hash_len(algorithm),
                        k.len(),
                        alg = algorithm
                    ));
                }
                EncodingKey::from_secret(&k)
            }
            Algorithm::ES256 => {
                let d = need(&self.d, "d")?;
                let secret = p256::SecretKey::from_slice(&d)
                    .map_err(|_| "\"d\" is not a P-256 private key".to_string())?;
                let der = secret
                    .to_pkcs8_der()
                    .map_err(|e| format!("cannot encode the P-256 key: {e}"))?;
                EncodingKey::from_ec_der(der.as_bytes())
            }
            Algorithm::EdDSA => {
                let d = need(&self.d, "d")?;
                let seed: [u8; 32] = d
                    .as_slice()
                    .try_into()
                    .map_err(|_| "\"d\" is not an Ed25519 private key".to_string())?;
                let der = ed25519_dalek::SigningKey::from_bytes(&seed)
                    .to_pkcs8_der()
                    .map_err(|e| format!("cannot encode the Ed25519 key: {e}"))?;
                EncodingKey::from_ed_der(der.as_bytes())
            }
            _ => {
                let d = need(&self.d, "d")?;
                let big = |v: &Option<String>, name: &str| {
                    need(v, name).map(|b| rsa::BigUint::from_bytes_be(&b))
                };
                let key = rsa::RsaPrivateKey::from_components(
                    big(&self.n, "n")?,
                    big(&self.e, "e")?,
                    rsa::BigUint::from_bytes_be(&d),
                    vec![big(&self.p, "p")?, big(&self.q, "q")?],
                )
                .map_err(|e| format!("not a usable RSA private key: {e}"))?;
                let der = key
                    .to_pkcs1_der()
                    .map_err(|e| format!("cannot encode the RSA key: {e}"))?;
                EncodingKey::from_rsa_der(der.as_bytes())
            }
        };
        Ok((algorithm, key))
    }
}

/// `--alg`: one of [`ALGORITHMS`].
pub fn parse_algorithm(alg: &str) -> Result<Algorithm, String> {
    match alg {
        "HS256" => Ok(Algorithm::HS256),
        "HS384" => Ok(Algorithm::HS384),
        "HS512" => Ok(Algorithm::HS512),
        "ES256" => Ok(Algorithm::ES256),
        "EdDSA" => Ok(Algorithm::EdDSA),
        "RS256" => Ok(Algorithm::RS256),
        _ => Err(format!(
            "unsupported algorithm \"{alg}\" (one of {})",
            ALGORITHMS.join(", ")
        )),
    }
}

fn hash_len(alg: Algorithm) -> usize {
    match alg {
        Algorithm::HS384 => 48,
        Algorithm::HS512 => 64,
        _ => 32,
    }
}

fn b64(bytes: &[u8]) -> Option<String> {
    Some(URL_SAFE_NO_PAD.encode(bytes))
}

/// A fresh private key named `kid` for `alg` (its public half is [`Jwk::public`]).
pub fn generate(alg: Algorithm, kid: &str) -> Result<Jwk, Failure> {
    let mut jwk = Jwk {
        kid: Some(kid.to_string()),
        alg: Some(format!("{alg:?}")),
        ..Jwk::default()
    };
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            // As many bytes as the hash puts out: RFC 7518 section 3.2's minimum.
            let mut k = vec![0u8; hash_len(alg)];
            random_bytes(&mut k)?;
            jwk.kty = "oct".into();
            jwk.k = b64(&k);
        }
        Algorithm::ES256 => {
            let secret = p256::SecretKey::random(&mut OsRng);
            let point = secret.public_key().to_encoded_point(false);
            jwk.kty = "EC".into();
            jwk.crv = Some("P-256".into());
            jwk.x = point.x().and_then(|x| b64(x));
            jwk.y = point.y().and_then(|y| b64(y));
            jwk.d = b64(&secret.to_bytes());
        }
        Algorithm::EdDSA => {
            let mut seed = [0u8; 32];
            random_bytes(&mut seed)?;
            let key = ed25519_dalek::SigningKey::from_bytes(&seed);
            jwk.kty = "OKP".into();
            jwk.crv = Some("Ed25519".into());
            jwk.x = b64(key.verifying_key().as_bytes());
            jwk.d = b64(&seed);
        }
        _ => {
            let key = rsa::RsaPrivateKey::new(&mut OsRng, RSA_BITS)
                .map_err(|e| Failure(format!("cannot generate an RSA key: {e}")))?;
            let primes = key.primes();
            let (Some(p), Some(q), Some(dp), Some(dq), Some(qi)) = (
                primes.first(),
                primes.get(1),
                key.dp(),
                key.dq(),
                key.crt_coefficient(),
            ) else {
                return Err(Failure("cannot generate an RSA key: no CRT values".into()));
            };
            jwk.kty = "RSA".into();
            jwk.n = b64(&key.n().to_bytes_be());
            jwk.e = b64(&key.e().to_bytes_be());
            jwk.d = b64(&key.d().to_bytes_be());
            jwk.p = b64(&p.to_bytes_be());
            jwk.q = b64(&q.to_bytes_be());
            jwk.dp = b64(&dp.to_bytes_be());
            jwk.dq = b64(&dq.to_bytes_be());
            jwk.qi = b64(&qi.to_bytes_be());
        }
    }
    Ok(jwk)
}

/// Reads a JWK Set file.
pub fn read(path: &Path) -> Result<JwkSet, Failure> {
    let bytes = fs::read(path)
        .map_err(|e| Failure(format!("cannot read key set \"{}\": {e}", path.display())))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Failure(format!("invalid key set \"{}\": {e}", path.display())))
}

fn kid_of(jwk: &Jwk) -> &str {
    jwk.kid.as_deref().unwrap_or("")
}

/// The key `kid` of a private set, or its only key.
pub fn choose<'a>(set: &'a JwkSet, kid: Option<&str>, path: &Path) -> Result<&'a Jwk, Failure> {
    match kid {
        Some(kid) => set
            .keys
            .iter()
            .find(|k| k.kid.as_deref() == Some(kid))
            .ok_or_else(|| Failure(format!("no key \"{kid}\" in \"{}\"", path.display()))),
        None => match set.keys.as_slice() {
            [only] => Ok(only),
            [] => Err(Failure(format!("no keys in \"{}\"", path.display()))),
            keys => Err(Failure(format!(
                "\"{}\" has {} keys: choose one with --kid ({})",
                path.display(),
                keys.len(),
                keys.iter().map(kid_of).collect::<Vec<_>>().join(", ")
            ))),
        },
    }
}

/// `jwks new`: both files, neither of which may exist yet.
pub fn create(alg: Algorithm, kid: &str, private: &Path, public: &Path) -> Result<(), Failure> {
    for path in [private, public] {
        if fs::symlink_metadata(path).is_ok() {
            return Err(Failure(format!(
                "\"{}\" already exists: not overwriting it (jwks add adds a key to a set)",
                path.display()
            )));
        }
    }
    if same_file(private, public) {
        return Err(Failure("--private and --public name the same file".into()));
    }
    let key = generate(alg, kid)?;
    let private_set = JwkSet {
        keys: vec![key.clone()],
        other: Map::new(),
    };
    let public_set = JwkSet {
        keys: vec![key.public()],
        other: Map::new(),
    };
    write(private, &private_set, SECRET_MODE, None)?;
    if let Err(e) = write(public, &public_set, public_mode(&public_set), None) {
        let _ = fs::remove_file(private);
        return Err(e);
    }
    Ok(())
}

/// `jwks add`: a new key in both sets. The public set is written first, so that nginx may
/// know a key before the backend signs with it.
pub fn add(alg: Algorithm, kid: &str, private: &Path, public: &Path) -> Result<(), Failure> {
    let (private, public) = (resolve(private)?, resolve(public)?);
    let (mut private_set, mut public_set) = read_pair(&private, &public)?;
    for (set, path) in [(&private_set, &private), (&public_set, &public)] {
        if set.keys.iter().any(|k| k.kid.as_deref() == Some(kid)) {
            return Err(Failure(format!(
                "\"{}\" already has a key \"{kid}\": a new key needs a new kid",
                path.display()
            )));
        }
        if let Some(k) = set.keys.iter().find(|k| k.kid.is_none()) {
            return Err(Failure(format!(
                "\"{}\" has a \"{}\" key without a \"kid\": nginx refuses several keys \
                 when any lacks one",
                path.display(),
                k.kty
            )));
        }
    }
    let key = generate(alg, kid)?;
    public_set.keys.push(key.public());
    private_set.keys.push(key);
    replace(&public, &public_set)?;
    replace(&private, &private_set)
}

/// `jwks remove`: the key leaves both sets, the private one first (the backend stops signing
/// with it before nginx stops accepting it). The last key of a set is never removed: nginx
/// refuses an empty key set.
pub fn remove(kid: &str, private: &Path, public: &Path) -> Result<(), Failure> {
    let (private, public) = (resolve(private)?, resolve(public)?);
    let (mut private_set, mut public_set) = read_pair(&private, &public)?;
    let mut found = false;
    for (set, path) in [(&private_set, &private), (&public_set, &public)] {
        if set.keys.iter().any(|k| k.kid.as_deref() == Some(kid)) {
            found = true;
            if set.keys.len() == 1 {
                return Err(Failure(format!(
                    "\"{kid}\" is the last key in \"{}\": add its successor first \
                     (an empty key set signs nothing and nginx refuses it)",
                    path.display()
                )));
            }
        }
    }
    if !found {
        return Err(Failure(format!(
            "no key \"{kid}\" in \"{}\" or \"{}\"",
            private.display(),
            public.display()
        )));
    }
    for (set, path) in [(&mut private_set, &private), (&mut public_set, &public)] {
        let before = set.keys.len();
        set.keys.retain(|k| k.kid.as_deref() != Some(kid));
        if set.keys.len() != before {
            replace(path, set)?;
        }
    }
    Ok(())
}

fn read_pair(private: &Path, public: &Path) -> Result<(JwkSet, JwkSet), Failure> {
    if same_file(private, public) {
        return Err(Failure("--private and --public name the same file".into()));
    }
    let private_set = read(private)?;
    let public_set = read(public)?;
    if let Some(k) = private_set.keys.iter().find(|k| !k.is_secret()) {
        return Err(Failure(format!(
            "key \"{}\" in \"{}\" is a public key: are --private and --public swapped?",
            kid_of(k),
            private.display()
        )));
    }
    if let Some(k) = public_set.keys.iter().find(|k| k.is_private()) {
        return Err(Failure(format!(
            "key \"{}\" in \"{}\" has private members: are --private and --public swapped?",
            kid_of(k),
            public.display()
        )));
    }
    Ok((private_set, public_set))
}

fn same_file(a: &Path, b: &Path) -> bool {
    if a == b {
        return true;
    }
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// A set is replaced where it really lives: a symbolic link keeps pointing at it.
fn resolve(path: &Path) -> Result<PathBuf, Failure> {
    fs::canonicalize(path)
        .map_err(|e| Failure(format!("cannot read key set \"{}\": {e}", path.display())))
}

fn public_mode(set: &JwkSet) -> u32 {
    if set.keys.iter().any(Jwk::is_secret) {
        SECRET_MODE
    } else {
        PUBLIC_MODE
    }
}

/// Rewrites an existing set, keeping its mode (narrowed to 0600 once it holds a secret) and
/// owner.
fn replace(path: &Path, set: &JwkSet) -> Result<(), Failure> {
    let meta = fs::metadata(path)
        .map_err(|e| Failure(format!("cannot read key set \"{}\": {e}", path.display())))?;
    let mut mode = meta.permissions().mode() & 0o7777;
    if set.keys.iter().any(Jwk::is_secret) {
        mode &= !0o077;
    }
    write(path, set, mode, Some(&meta))
}

/// Writes `set` to a temporary file beside `path` and renames it into place (or, for a new
/// set, links it there, which fails rather than overwrite a file that appeared meanwhile).
fn write(path: &Path, set: &JwkSet, mode: u32, old: Option<&fs::Metadata>) -> Result<(), Failure> {
    let failure = |e: io::Error| Failure(format!("cannot write \"{}\": {e}", path.display()));
    let mut json = serde_json::to_string_pretty(set)
        .map_err(|e| Failure(format!("cannot write JSON: {e}")))?;
    json.push('\n');
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| Failure(format!("\"{}\" is not a file name", path.display())))?;
    let random = random_token()?;
    let temp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        random.get(..12).unwrap_or(&random)
    ));
    let result = (|| {
        // O_CREAT|O_EXCL: never through a symbolic link, never someone else's file.
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temp)?;
        // The umask may have narrowed the mode: set it exactly.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        if let Some(old) = old {
            let me = fs::metadata(&temp)?;
            if (me.uid(), me.gid()) != (old.uid(), old.gid()) {
                std::os::unix::fs::fchown(&file, Some(old.uid()), Some(old.gid()))?;
            }
        }
        file.write_all(json.as_bytes())?;
        file.sync_all()?;
        if old.is_some() {
            fs::rename(&temp, path)?;
        } else {
            fs::hard_link(&temp, path)?;
            fs::remove_file(&temp)?;
        }
        // The rename itself is durable once the directory is.
        File::open(dir)?.sync_all()
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&temp);
        return Err(failure(e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Header, Validation};

    fn sign_and_verify(alg: Algorithm) {
        let private = generate(alg, "k1").unwrap();
        let public = private.public();
        let (algorithm, key) = private.encoding_key().unwrap();
        assert_eq!(algorithm, alg);
        let mut header = Header::new(alg);
        header.kid = Some("k1".into());
        let claims = serde_json::json!({"sub": "alice", "exp": 4_000_000_000u64});
        let token = jsonwebtoken::encode(&header, &claims, &key).unwrap();
        // The public half, read back by jsonwebtoken's own JWK type, verifies it.
        let jwk: jsonwebtoken::jwk::Jwk =
            serde_json::from_value(serde_json::to_value(&public).unwrap()).unwrap();
        let decoding = DecodingKey::from_jwk(&jwk).unwrap();
        let data = jsonwebtoken::decode::<Value>(&token, &decoding, &Validation::new(alg)).unwrap();
        assert_eq!(data.claims["sub"], "alice");
        assert_eq!(data.header.kid.as_deref(), Some("k1"));
    }

    #[test]
    fn every_algorithm_signs_what_its_public_key_verifies() {
        for alg in ALGORITHMS {
            sign_and_verify(parse_algorithm(alg).unwrap());
        }
    }

    #[test]
    fn public_keys_have_no_private_members() {
        for alg in ["ES256", "EdDSA", "RS256"] {
            let jwk = generate(parse_algorithm(alg).unwrap(), "a").unwrap();
            assert!(jwk.d.is_some());
            let text = serde_json::to_string(&jwk.public()).unwrap();
            for member in [
                "\"d\"", "\"p\"", "\"q\"", "\"dp\"", "\"dq\"", "\"qi\"", "\"k\"",
            ] {
                assert!(!text.contains(member), "{alg}: {text}");
            }
            assert_eq!(jwk.public().algorithm().unwrap(), jwk.algorithm().unwrap());
        }
        let hmac = generate(Algorithm::HS384, "h").unwrap();
        assert_eq!(hmac.public(), hmac);
        assert_eq!(URL_SAFE_NO_PAD.decode(hmac.k.unwrap()).unwrap().len(), 48);
    }

    #[test]
    fn rsa_keys_have_2048_bits() {
        let jwk = generate(Algorithm::RS256, "r").unwrap();
        let n = URL_SAFE_NO_PAD.decode(jwk.n.unwrap()).unwrap();
        assert_eq!(n.len(), 256);
        assert!(n[0] & 0x80 != 0);
    }

    #[test]
    fn the_key_decides_the_algorithm() {
        let mut jwk = generate(Algorithm::ES256, "e").unwrap();
        jwk.alg = Some("RS256".into());
        assert!(jwk.algorithm().is_err());
        jwk.alg = None;
        assert_eq!(jwk.algorithm().unwrap(), Algorithm::ES256);
        let mut hmac = generate(Algorithm::HS256, "h").unwrap();
        hmac.alg = None;
        assert!(hmac.algorithm().unwrap_err().contains("must name"));
        hmac.alg = Some("HS256".into());
        hmac.k = Some(URL_SAFE_NO_PAD.encode([1u8; 31]));
        assert!(hmac
            .encoding_key()
            .unwrap_err()
            .contains("at least 32 bytes"));
        let public = generate(Algorithm::EdDSA, "p").unwrap().public();
        assert!(public.encoding_key().unwrap_err().contains("public key"));
        assert!(parse_algorithm("none").is_err());
        assert!(parse_algorithm("hs256").is_err());
    }

    #[test]
    fn unknown_members_survive_a_rewrite() {
        let text = r#"{"keys":[{"kty":"oct","kid":"a","alg":"HS256","k":"AAAA","use":"sig","x5t":"z"}],"note":"kept"}"#;
        let set: JwkSet = serde_json::from_str(text).unwrap();
        assert_eq!(set.keys[0].other["use"], "sig");
        let back: Value = serde_json::to_value(&set).unwrap();
        assert_eq!(back, serde_json::from_str::<Value>(text).unwrap());
    }

    fn modes(d: &Path) -> (u32, u32) {
        let m = |n: &str| fs::metadata(d.join(n)).unwrap().permissions().mode() & 0o7777;
        (m("private.json"), m("public.json"))
    }

    #[test]
    fn new_add_remove_rotate_both_sets() {
        let d = tempfile::tempdir().unwrap();
        let (private, public) = (d.path().join("private.json"), d.path().join("public.json"));
        create(Algorithm::ES256, "a", &private, &public).unwrap();
        assert_eq!(modes(d.path()), (0o600, 0o644));
        let again = create(Algorithm::ES256, "a", &private, &public).unwrap_err();
        assert!(again.0.contains("already exists"), "{}", again.0);

        add(Algorithm::EdDSA, "b", &private, &public).unwrap();
        assert!(add(Algorithm::EdDSA, "b", &private, &public)
            .unwrap_err()
            .0
            .contains("already has a key \"b\""));
        let kids = |p: &Path| {
            read(p)
                .unwrap()
                .keys
                .iter()
                .map(|k| kid_of(k).to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(kids(&private), ["a", "b"]);
        assert_eq!(kids(&public), ["a", "b"]);
        assert_eq!(modes(d.path()), (0o600, 0o644));
        // A secret makes the public set private too.
        add(Algorithm::HS256, "h", &private, &public).unwrap();
        assert_eq!(modes(d.path()), (0o600, 0o600));

        remove("a", &private, &public).unwrap();
        remove("h", &private, &public).unwrap();
        assert_eq!(kids(&private), ["b"]);
        assert_eq!(kids(&public), ["b"]);
        assert!(remove("b", &private, &public)
            .unwrap_err()
            .0
            .contains("last key"));
        assert!(remove("zz", &private, &public)
            .unwrap_err()
            .0
            .contains("no key \"zz\""));
        assert!(add(Algorithm::EdDSA, "c", &public, &private)
            .unwrap_err()
            .0
            .contains("swapped"));
        // No temporary file is left behind.
        let mut names: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["private.json", "public.json"]);
    }

    #[test]
    fn new_hmac_sets_are_both_0600_and_the_same_key() {
        let d = tempfile::tempdir().unwrap();
        let (private, public) = (d.path().join("private.json"), d.path().join("public.json"));
        create(Algorithm::HS512, "s", &private, &public).unwrap();
        assert_eq!(modes(d.path()), (0o600, 0o600));
        assert_eq!(read(&private).unwrap(), read(&public).unwrap());
    }

    #[test]
    fn new_refuses_an_existing_public_file_and_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let (private, public) = (d.path().join("private.json"), d.path().join("public.json"));
        fs::write(&public, "keep").unwrap();
        assert!(create(Algorithm::HS256, "a", &private, &public).is_err());
        assert!(!private.exists());
        assert_eq!(fs::read(&public).unwrap(), b"keep");
    }

    #[test]
    fn choose_needs_kid_with_several_keys() {
        let set = JwkSet {
            keys: vec![
                generate(Algorithm::HS256, "a").unwrap(),
                generate(Algorithm::HS256, "b").unwrap(),
            ],
            other: Map::new(),
        };
        let p = Path::new("k.json");
        assert!(choose(&set, None, p)
            .unwrap_err()
            .0
            .contains("--kid (a, b)"));
        assert_eq!(
            choose(&set, Some("b"), p).unwrap().kid.as_deref(),
            Some("b")
        );
        assert!(choose(&set, Some("c"), p).is_err());
    }

    #[test]
    fn a_linked_set_is_replaced_where_it_lives() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("real");
        fs::create_dir(&real).unwrap();
        let (private, public) = (real.join("private.json"), real.join("public.json"));
        create(Algorithm::EdDSA, "a", &private, &public).unwrap();
        let link = d.path().join("nginx-keys.json");
        std::os::unix::fs::symlink(&public, &link).unwrap();
        add(Algorithm::EdDSA, "b", &private, &link).unwrap();
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(read(&public).unwrap().keys.len(), 2);
    }
}
