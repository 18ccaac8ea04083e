//! The command line, parsed into a [`Cli`] without touching the system.
//!
//! Hand-written, not clap or lexopt: a few commands and options, with the usage and error
//! texts (pinned by tests) and byte-string tokens under our control.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use jsonwebtoken::Algorithm;
use serde_json::Value;
use wcs_token_auth_core::directive;

use crate::jwks;
use crate::signed::{CheckOptions, Jti, Revocation, SignOptions, OWN_CLAIMS};

pub const DEFAULT_DIR: &str = "/var/lib/nginx/tokens";

pub const USAGE: &str = "\
usage: wcs-token [--dir DIR] COMMAND [OPTIONS]

Manages what nginx's wcs_token_auth module checks: token files (a token is a file named
like the token in the token directory) and signed tokens (JWTs verified against a JWK Set).

token files:
  issue [--owner USER[:GROUP]] [--json]
                      create a new 256-bit token (mode 0640) and print it
  revoke TOKEN        delete a token
  list [--max-age TIME] [--json] [--verbose]
                      print every token with its age (and expiry with --max-age)
  prune --max-age TIME [--verbose]
                      delete the tokens older than TIME and print them
  check TOKEN [--max-age TIME]
                      print valid, or why nginx would refuse the token

signed tokens:
  jwks new --alg ALG --kid KID --private FILE --public FILE
                      create a private key set (mode 0600) for the backend and the public
                      set for nginx's jwks= (mode 0644; for HS* 0600 too, since nginx
                      verifies with the secret itself); never overwrites a file
  jwks add --alg ALG --kid KID --private FILE --public FILE
                      add a new key to both sets (the public one first), for rotation
  jwks remove --kid KID --private FILE --public FILE
                      remove a key from both sets (the private one first); never the
                      last key of a set
  sign --private FILE [--kid KID] --sub SUB --ttl TIME [--aud AUD]... [--iss ISS]
       [--jti auto|JTI] [--claim NAME=VALUE]...
                      print a token signed with key KID (or the set's only key)
  revoke --revoked DIR --jti JTI | --sub SUB
                      revoke the token with that jti, or every token of SUB issued until
                      now, in nginx's wcs_token_auth_revoked DIR; print the file's path
  check --jwks FILE [--issuer ISS] [--audience AUD] [--leeway TIME] [--revoked DIR] TOKEN
                      print allowed, or the status nginx would refuse the token with

options:
  --dir DIR           token directory (default /var/lib/nginx/tokens)
  --max-age TIME      nginx time syntax, as wcs_token_auth_max_age: 30s, 12h, 1d, 1h30m
  --owner USER[:GROUP]
                      chown a new token (names or numeric ids)
  --json              machine-readable output
  --verbose           also report directory entries that are not tokens
  --alg ALG           HS256, HS384, HS512 (a random secret as long as the hash),
                      ES256 (P-256), EdDSA (Ed25519) or RS256 (RSA 2048 bits)
  --ttl TIME          the token expires TIME from now (exp; iat is now)
  --aud AUD           audience; given more than once, an array
  --jti auto|JTI      token id, auto: 128 random bits
  --claim NAME=VALUE  another claim, a string; NAME:=JSON for a number, boolean,
                      array or object
  --issuer, --audience, --leeway, --revoked
                      as wcs_token_auth_jwt_issuer, _jwt_audience, _jwt_leeway, _revoked
  --                  ends the options (for a token starting with '-')

exit status: 0 success (check: valid or allowed), 1 check: refused / revoke: no such
             token, 2 usage error, or a directory or key set that cannot be used";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cli {
    pub dir: PathBuf,
    pub verbose: bool,
    pub command: Command,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Issue {
        owner: Option<String>,
        json: bool,
    },
    Revoke {
        token: Vec<u8>,
    },
    List {
        max_age: Option<u64>,
        json: bool,
    },
    Prune {
        max_age: u64,
    },
    Check {
        token: Vec<u8>,
        max_age: Option<u64>,
    },
    JwksNew(KeyPair),
    JwksAdd(KeyPair),
    JwksRemove {
        kid: String,
        private: PathBuf,
        public: PathBuf,
    },
    Sign(SignOptions),
    RevokeSigned {
        revoked: PathBuf,
        what: Revocation,
    },
    CheckSigned {
        options: CheckOptions,
        token: Vec<u8>,
    },
    Help,
}

/// `jwks new` / `jwks add`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPair {
    pub alg: Algorithm,
    pub kid: String,
    pub private: PathBuf,
    pub public: PathBuf,
}

/// Every option's value as given, parsed where its meaning does not depend on the command.
#[derive(Default)]
struct Given {
    seen: Vec<&'static str>,
    owner: Option<String>,
    max_age: Option<u64>,
    alg: Option<Algorithm>,
    kid: Option<String>,
    private: Option<PathBuf>,
    public: Option<PathBuf>,
    sub: Option<String>,
    ttl: Option<u64>,
    aud: Vec<String>,
    iss: Option<String>,
    jti: Option<String>,
    claims: Vec<(String, Value)>,
    revoked: Option<PathBuf>,
    jwks: Option<PathBuf>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway: Option<u64>,
}

impl Given {
    fn has(&self, name: &str) -> bool {
        self.seen.contains(&name)
    }
}

/// Options that take a value, by name without the dashes.
const VALUED: [&str; 18] = [
    "dir", "owner", "max-age", "alg", "kid", "private", "public", "sub", "ttl", "aud", "iss",
    "jti", "claim", "revoked", "jwks", "issuer", "audience", "leeway",
];
/// Options that may be given more than once.
const REPEATED: [&str; 2] = ["aud", "claim"];

/// Everything after the program name.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Cli, String> {
    let mut dir = None;
    let mut verbose = false;
    let mut json = false;
    let mut g = Given::default();
    let mut words: Vec<Vec<u8>> = Vec::new();
    let mut only_words = false;
    let mut help = false;
    let mut it = args.into_iter().map(OsString::into_vec);
    while let Some(arg) = it.next() {
        if only_words || !arg.starts_with(b"-") || arg == b"-" {
            words.push(arg);
            continue;
        }
        let (name, inline) = match arg.iter().position(|&b| b == b'=') {
            Some(i) if arg.starts_with(b"--") => (arg[..i].to_vec(), Some(arg[i + 1..].to_vec())),
            _ => (arg.clone(), None),
        };
        match name.as_slice() {
            b"--" => only_words = true,
            b"-h" | b"--help" => help = true,
            b"--verbose" | b"-v" => verbose = true,
            b"--json" => json = true,
            _ => {
                let Some(&option) = VALUED
                    .iter()
                    .find(|o| name.strip_prefix(b"--") == Some(o.as_bytes()))
                else {
                    return Err(format!(
                        "unknown option \"{}\" (put -- before a token that starts with '-')",
                        arg.escape_ascii()
                    ));
                };
                let v = inline
                    .or_else(|| it.next())
                    .ok_or_else(|| format!("--{option} needs a value"))?;
                if g.has(option) && !REPEATED.contains(&option) {
                    return Err(format!("--{option} given twice"));
                }
                g.seen.push(option);
                let path = || PathBuf::from(OsString::from_vec(v.clone()));
                match option {
                    "dir" => dir = Some(path()),
                    "owner" => g.owner = Some(utf8(v, "--owner")?),
                    "max-age" => g.max_age = Some(parse_time(&v, "--max-age", 1)?),
                    "alg" => g.alg = Some(jwks::parse_algorithm(&utf8(v, "--alg")?)?),
                    "kid" => g.kid = Some(non_empty(v, "--kid")?),
                    "private" => g.private = Some(path()),
                    "public" => g.public = Some(path()),
                    "sub" => g.sub = Some(non_empty(v, "--sub")?),
                    "ttl" => g.ttl = Some(parse_time(&v, "--ttl", 1)?),
                    "aud" => g.aud.push(non_empty(v, "--aud")?),
                    "iss" => g.iss = Some(non_empty(v, "--iss")?),
                    "jti" => g.jti = Some(non_empty(v, "--jti")?),
                    "claim" => {
                        let (name, value) = parse_claim(v)?;
                        if g.claims.iter().any(|(n, _)| *n == name) {
                            return Err(format!("--claim {name} given twice"));
                        }
                        g.claims.push((name, value));
                    }
                    "revoked" => g.revoked = Some(path()),
                    "jwks" => g.jwks = Some(path()),
                    "issuer" => g.issuer = Some(non_empty(v, "--issuer")?),
                    "audience" => g.audience = Some(non_empty(v, "--audience")?),
                    _ => g.leeway = Some(parse_time(&v, "--leeway", 0)?),
                }
            }
        }
    }
    if json {
        g.seen.push("json");
    }

    if help || words.first().map(Vec::as_slice) == Some(b"help") {
        return Ok(Cli {
            dir: PathBuf::from(DEFAULT_DIR),
            verbose,
            command: Command::Help,
        });
    }
    let mut words = words.into_iter();
    let (command, allowed): (Command, &[&str]) = match words.next().as_deref() {
        None => return Err("no command given".into()),
        Some(b"issue") => (
            Command::Issue {
                owner: g.owner.clone(),
                json,
            },
            &["owner", "json"],
        ),
        Some(b"revoke") if g.has("revoked") => {
            let what = match (g.jti.clone(), g.sub.clone()) {
                (Some(jti), None) => Revocation::Jti(jti),
                (None, Some(sub)) => Revocation::Sub(sub),
                _ => return Err("revoke --revoked DIR needs --jti JTI or --sub SUB".into()),
            };
            (
                Command::RevokeSigned {
                    revoked: g.revoked.clone().unwrap_or_default(),
                    what,
                },
                &["revoked", "jti", "sub"],
            )
        }
        Some(b"revoke") => (
            Command::Revoke {
                token: one_token(&mut words, "revoke")?,
            },
            &[],
        ),
        Some(b"list") => (
            Command::List {
                max_age: g.max_age,
                json,
            },
            &["max-age", "json"],
        ),
        Some(b"prune") => (
            Command::Prune {
                max_age: g.max_age.ok_or("prune needs --max-age TIME")?,
            },
            &["max-age"],
        ),
        Some(b"check") if g.has("jwks") => (
            Command::CheckSigned {
                options: CheckOptions {
                    jwks: g.jwks.clone().unwrap_or_default(),
                    issuer: g.issuer.clone(),
                    audience: g.audience.clone(),
                    leeway_secs: g.leeway.unwrap_or(0),
                    revoked: g.revoked.clone(),
                },
                token: one_token(&mut words, "check")?,
            },
            &["jwks", "issuer", "audience", "leeway", "revoked"],
        ),
        Some(b"check") => (
            Command::Check {
                token: one_token(&mut words, "check")?,
                max_age: g.max_age,
            },
            &["max-age"],
        ),
        Some(b"jwks") => {
            let sub = words.next();
            let need = |v: &Option<PathBuf>, what: &str| {
                v.clone().ok_or_else(|| format!("jwks needs {what} FILE"))
            };
            let kid = || g.kid.clone().ok_or("jwks needs --kid KID");
            match sub.as_deref() {
                Some(b"new") | Some(b"add") => {
                    let pair = KeyPair {
                        alg: g.alg.ok_or("jwks needs --alg ALG")?,
                        kid: kid()?,
                        private: need(&g.private, "--private")?,
                        public: need(&g.public, "--public")?,
                    };
                    let command = if sub.as_deref() == Some(b"new") {
                        Command::JwksNew(pair)
                    } else {
                        Command::JwksAdd(pair)
                    };
                    (command, &["alg", "kid", "private", "public"])
                }
                Some(b"remove") => (
                    Command::JwksRemove {
                        kid: kid()?,
                        private: need(&g.private, "--private")?,
                        public: need(&g.public, "--public")?,
                    },
                    &["kid", "private", "public"],
                ),
                Some(other) => {
                    return Err(format!(
                        "unknown jwks command \"{}\" (new, add or remove)",
                        other.escape_ascii()
                    ))
                }
                None => return Err("jwks needs new, add or remove".into()),
            }
        }
        Some(b"sign") => {
            let jti = g.jti.clone().map(|j| match j.as_str() {
                "auto" => Jti::Auto,
                _ => Jti::Value(j),
            });
            (
                Command::Sign(SignOptions {
                    private: g.private.clone().ok_or("sign needs --private FILE")?,
                    kid: g.kid.clone(),
                    sub: g.sub.clone().ok_or("sign needs --sub SUB")?,
                    ttl_secs: g.ttl.ok_or("sign needs --ttl TIME")?,
                    audiences: g.aud.clone(),
                    issuer: g.iss.clone(),
                    jti,
                    claims: g.claims.clone(),
                }),
                &["private", "kid", "sub", "ttl", "aud", "iss", "jti", "claim"],
            )
        }
        Some(other) => return Err(format!("unknown command \"{}\"", other.escape_ascii())),
    };
    if let Some(extra) = words.next() {
        return Err(format!("unexpected argument \"{}\"", extra.escape_ascii()));
    }
    if let Some(name) = g
        .seen
        .iter()
        .find(|&&o| o != "dir" && !allowed.contains(&o))
    {
        return Err(format!("--{name} does not apply to this command"));
    }
    Ok(Cli {
        dir: dir.unwrap_or_else(|| PathBuf::from(DEFAULT_DIR)),
        verbose,
        command,
    })
}

fn one_token(words: &mut impl Iterator<Item = Vec<u8>>, command: &str) -> Result<Vec<u8>, String> {
    words
        .next()
        .ok_or_else(|| format!("{command} needs a TOKEN"))
}

fn utf8(v: Vec<u8>, what: &str) -> Result<String, String> {
    String::from_utf8(v).map_err(|_| format!("{what} must be UTF-8"))
}

fn non_empty(v: Vec<u8>, what: &str) -> Result<String, String> {
    match utf8(v, what)? {
        s if s.is_empty() => Err(format!("{what} must not be empty")),
        s => Ok(s),
    }
}

/// `--max-age`, `--ttl` and `--leeway` take what the directives take: whole seconds in
/// nginx's time syntax.
fn parse_time(v: &[u8], what: &str, min: u64) -> Result<u64, String> {
    match directive::parse_time_secs(v) {
        Some(secs) if secs >= min => Ok(secs),
        _ => Err(format!(
            "invalid {what} \"{}\": a time of {min}s or more, such as 30s, 12h, 1d, 1h30m",
            v.escape_ascii()
        )),
    }
}

/// `NAME=VALUE` (a string) or `NAME:=JSON`.
fn parse_claim(v: Vec<u8>) -> Result<(String, Value), String> {
    let text = utf8(v, "--claim")?;
    let Some((name, value)) = text.split_once('=') else {
        return Err(format!(
            "invalid --claim \"{text}\": NAME=VALUE or NAME:=JSON"
        ));
    };
    let (name, value) = match name.strip_suffix(':') {
        Some(name) => (
            name,
            serde_json::from_str(value).map_err(|e| format!("invalid --claim \"{text}\": {e}"))?,
        ),
        None => (name, Value::String(value.to_string())),
    };
    if name.is_empty() {
        return Err(format!("invalid --claim \"{text}\": no NAME"));
    }
    if OWN_CLAIMS.contains(&name) {
        return Err(format!(
            "--claim cannot set \"{name}\": use --sub, --ttl, --aud, --iss or --jti"
        ));
    }
    Ok((name.to_string(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Cli, String> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn defaults_and_global_dir_anywhere() {
        let c = p(&["issue"]).unwrap();
        assert_eq!(c.dir, PathBuf::from(DEFAULT_DIR));
        assert_eq!(
            c.command,
            Command::Issue {
                owner: None,
                json: false
            }
        );
        let c = p(&[
            "--dir",
            "/t",
            "issue",
            "--owner=www-data:www-data",
            "--json",
        ])
        .unwrap();
        assert_eq!(c.dir, PathBuf::from("/t"));
        assert_eq!(
            c.command,
            Command::Issue {
                owner: Some("www-data:www-data".into()),
                json: true
            }
        );
        assert_eq!(p(&["list", "--dir=/x"]).unwrap().dir, PathBuf::from("/x"));
    }

    #[test]
    fn max_age_uses_nginx_time_syntax() {
        let c = p(&["prune", "--max-age", "1h30m"]).unwrap();
        assert_eq!(c.command, Command::Prune { max_age: 5400 });
        let c = p(&["check", "abc", "--max-age=90"]).unwrap();
        assert_eq!(
            c.command,
            Command::Check {
                token: b"abc".to_vec(),
                max_age: Some(90)
            }
        );
        assert!(p(&["prune"]).unwrap_err().contains("--max-age"));
        assert!(p(&["prune", "--max-age", "500ms"]).is_err());
        assert!(p(&["prune", "--max-age", "0"]).is_err());
        assert!(p(&["prune", "--max-age", "1x"]).is_err());
    }

    #[test]
    fn tokens_starting_with_a_dash_need_the_separator() {
        assert!(p(&["revoke", "-abc"])
            .unwrap_err()
            .contains("put -- before"));
        assert_eq!(
            p(&["revoke", "--", "-abc"]).unwrap().command,
            Command::Revoke {
                token: b"-abc".to_vec()
            }
        );
    }

    #[test]
    fn mistakes_are_usage_errors() {
        assert!(p(&[]).is_err());
        assert!(p(&["frobnicate"]).is_err());
        assert!(p(&["revoke"]).is_err());
        assert!(p(&["revoke", "a", "b"]).is_err());
        assert!(p(&["revoke", "a", "--json"]).is_err());
        assert!(p(&["issue", "--max-age", "1h"]).is_err());
        assert!(p(&["issue", "--dir"]).is_err());
        assert_eq!(p(&["--help"]).unwrap().command, Command::Help);
        assert_eq!(p(&["issue", "-h"]).unwrap().command, Command::Help);
    }

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn jwks_commands() {
        let c = p(&[
            "jwks",
            "new",
            "--alg",
            "ES256",
            "--kid",
            "2026-12",
            "--private",
            "priv.json",
            "--public=pub.json",
        ])
        .unwrap();
        assert_eq!(
            c.command,
            Command::JwksNew(KeyPair {
                alg: Algorithm::ES256,
                kid: "2026-12".into(),
                private: "priv.json".into(),
                public: "pub.json".into(),
            })
        );
        let c = p(&[
            "jwks",
            "remove",
            "--kid",
            "a",
            "--private",
            "x",
            "--public",
            "y",
        ])
        .unwrap();
        assert_eq!(
            c.command,
            Command::JwksRemove {
                kid: "a".into(),
                private: "x".into(),
                public: "y".into()
            }
        );
        assert!(p(&[
            "jwks",
            "add",
            "--alg",
            "HS256",
            "--kid",
            "a",
            "--private",
            "x"
        ])
        .unwrap_err()
        .contains("--public"));
        assert!(p(&["jwks", "new", "--alg", "none", "--kid", "a"])
            .unwrap_err()
            .contains("unsupported algorithm \"none\""));
        assert!(p(&[
            "jwks",
            "remove",
            "--alg",
            "HS256",
            "--kid",
            "a",
            "--private",
            "x",
            "--public",
            "y"
        ])
        .unwrap_err()
        .contains("--alg does not apply"));
        assert!(p(&["jwks"]).is_err());
        assert!(p(&["jwks", "rotate"])
            .unwrap_err()
            .contains("unknown jwks command"));
    }

    #[test]
    fn sign_options() {
        let c = parse(os(&[
            "sign",
            "--private",
            "k.json",
            "--sub",
            "alice",
            "--ttl",
            "1h",
            "--aud",
            "a",
            "--aud",
            "b",
            "--iss",
            "me",
            "--jti",
            "auto",
            "--claim",
            "room=r1",
            "--claim",
            "n:=3",
            "--claim",
            "s:=\"q\"",
        ]))
        .unwrap();
        assert_eq!(
            c.command,
            Command::Sign(SignOptions {
                private: "k.json".into(),
                kid: None,
                sub: "alice".into(),
                ttl_secs: 3600,
                audiences: vec!["a".into(), "b".into()],
                issuer: Some("me".into()),
                jti: Some(Jti::Auto),
                claims: vec![
                    ("room".into(), Value::from("r1")),
                    ("n".into(), Value::from(3)),
                    ("s".into(), Value::from("q")),
                ],
            })
        );
        let base = ["sign", "--private", "k", "--sub", "s", "--ttl", "60"];
        let with = |extra: &[&str]| p(&[&base[..], extra].concat());
        assert!(with(&[]).is_ok());
        assert!(with(&["--claim", "exp:=1"])
            .unwrap_err()
            .contains("cannot set \"exp\""));
        assert!(with(&["--claim", "sub=x"]).is_err());
        assert!(with(&["--claim", "novalue"]).is_err());
        assert!(with(&["--claim", "=v"]).is_err());
        assert!(with(&["--claim", "j:={"]).is_err());
        assert!(with(&["--claim", "a=1", "--claim", "a=2"])
            .unwrap_err()
            .contains("twice"));
        assert!(with(&["--sub", "t"])
            .unwrap_err()
            .contains("--sub given twice"));
        assert!(with(&["--max-age", "1h"]).is_err());
        assert!(p(&["sign", "--private", "k", "--sub", "s"])
            .unwrap_err()
            .contains("--ttl"));
        assert!(p(&["sign", "--private", "k", "--sub", "s", "--ttl", "0s"]).is_err());
        assert!(p(&["sign", "--private", "k", "--sub", "", "--ttl", "1"]).is_err());
    }

    #[test]
    fn signed_revoke_and_check_are_told_apart_by_their_options() {
        assert_eq!(
            p(&["revoke", "--revoked", "/r", "--sub", "alice"])
                .unwrap()
                .command,
            Command::RevokeSigned {
                revoked: "/r".into(),
                what: Revocation::Sub("alice".into())
            }
        );
        assert!(p(&["revoke", "--revoked", "/r"]).is_err());
        assert!(p(&["revoke", "--revoked", "/r", "--sub", "a", "--jti", "b"]).is_err());
        assert!(p(&["revoke", "--revoked", "/r", "--jti", "b", "TOKEN"]).is_err());
        assert_eq!(
            p(&["revoke", "tok"]).unwrap().command,
            Command::Revoke {
                token: b"tok".to_vec()
            }
        );
        assert_eq!(
            p(&[
                "check",
                "--jwks",
                "pub.json",
                "--issuer",
                "i",
                "--audience",
                "a",
                "--leeway",
                "30s",
                "--revoked",
                "/r",
                "--",
                "-tok",
            ])
            .unwrap()
            .command,
            Command::CheckSigned {
                options: CheckOptions {
                    jwks: "pub.json".into(),
                    issuer: Some("i".into()),
                    audience: Some("a".into()),
                    leeway_secs: 30,
                    revoked: Some("/r".into()),
                },
                token: b"-tok".to_vec(),
            }
        );
        assert!(p(&["check", "--jwks", "j", "--leeway", "0", "t"]).is_ok());
        assert!(p(&["check", "--jwks", "j", "--max-age", "1h", "t"]).is_err());
        assert!(p(&["check", "--issuer", "i", "t"])
            .unwrap_err()
            .contains("does not apply"));
    }
}
