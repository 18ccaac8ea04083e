//! `wcs-token`: issue, revoke, list, prune and check the token files that nginx's
//! `wcs_token_auth` module looks up; create and rotate JWK Sets, sign, revoke and check signed
//! tokens. Exit status: 0 success (`check`: valid or allowed), 1 `check`: refused or
//! `revoke`: no such token, 2 usage error or an unusable directory or key set.
#![forbid(unsafe_code)]

mod args;
mod duration;
mod jwks;
mod owner;
mod signed;
mod tokens;

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use args::{Cli, Command};
use serde::Serialize;
use tokens::{Entry, Failure, TokenDir};
use wcs_token_auth_core::expiry;
use wcs_token_auth_core::store::Lookup;
use wcs_token_auth_core::token::{self, TokenError};

const INVALID: u8 = 1;
const TROUBLE: u8 = 2;

fn main() -> ExitCode {
    let cli = match args::parse(std::env::args_os().skip(1)) {
        Ok(cli) => cli,
        Err(msg) => {
            eprintln!("wcs-token: {msg}\n\n{}", args::USAGE);
            return ExitCode::from(TROUBLE);
        }
    };
    match run(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(Failure(msg)) => {
            eprintln!("wcs-token: {msg}");
            ExitCode::from(TROUBLE)
        }
    }
}

fn run(cli: &Cli) -> Result<u8, Failure> {
    match &cli.command {
        Command::Help => {
            println!("{}", args::USAGE);
            Ok(0)
        }
        Command::Issue { owner, json } => {
            // Resolve the owner first: a typo must not leave a token behind.
            let owner = owner
                .as_deref()
                .map(owner::resolve)
                .transpose()
                .map_err(Failure)?;
            let dir = TokenDir::open(&cli.dir)?;
            let token = dir.issue(owner)?;
            if *json {
                let path = dir.path().join(&token);
                let path = path.to_string_lossy();
                println!(
                    "{}",
                    to_json(&Issued {
                        token: &token,
                        path: &path
                    })?
                );
            } else {
                println!("{token}");
            }
            Ok(0)
        }
        Command::Revoke { token } => {
            let token = well_formed(token)?;
            let dir = TokenDir::open(&cli.dir)?;
            if dir.remove(token)? {
                Ok(0)
            } else {
                eprintln!("wcs-token: no such token in \"{}\"", dir.path().display());
                Ok(INVALID)
            }
        }
        Command::Check { token, max_age } => {
            let token = match token::parse(token) {
                Ok(t) => t,
                Err(TokenError::Empty) => return verdict("no_token"),
                Err(TokenError::Malformed) => return verdict("malformed_token"),
            };
            let dir = TokenDir::open(&cli.dir)?;
            match dir.lookup(token)? {
                Lookup::NotFound => verdict("unknown_token"),
                Lookup::Found { mtime } if !expiry::is_fresh(mtime, now(), *max_age) => {
                    verdict("expired_token")
                }
                Lookup::Found { .. } => {
                    println!("valid");
                    Ok(0)
                }
            }
        }
        Command::JwksNew(k) => {
            jwks::create(k.alg, &k.kid, &k.private, &k.public)?;
            Ok(0)
        }
        Command::JwksAdd(k) => {
            jwks::add(k.alg, &k.kid, &k.private, &k.public)?;
            Ok(0)
        }
        Command::JwksRemove {
            kid,
            private,
            public,
        } => {
            jwks::remove(kid, private, public)?;
            Ok(0)
        }
        Command::Sign(options) => {
            println!("{}", signed::sign(options, now())?);
            Ok(0)
        }
        Command::RevokeSigned { revoked, what } => {
            println!("{}", signed::revoke(revoked, what)?.display());
            Ok(0)
        }
        Command::CheckSigned { options, token } => {
            let status = signed::check(options, token, now())?;
            println!("{status}");
            Ok(if status == "allowed" { 0 } else { INVALID })
        }
        Command::List { max_age, json } => {
            let dir = TokenDir::open_for_listing(&cli.dir)?;
            let entries = dir.entries()?;
            let now = now();
            let mut rows = Vec::new();
            for entry in &entries {
                let Entry::Token { name, mtime } = entry else {
                    report_skipped(cli.verbose, entry);
                    continue;
                };
                let age = now.saturating_sub(*mtime).max(0) as u64;
                let left = max_age.map(|m| expiry::remaining_secs(*mtime, now, m));
                rows.push(Listed {
                    token: name,
                    mtime: *mtime,
                    age_secs: age,
                    expires_in_secs: left,
                    expired: left.map(|l| l < 0),
                });
            }
            if *json {
                println!("{}", to_json(&rows)?);
                return Ok(0);
            }
            for row in &rows {
                let expiry = match row.expires_in_secs {
                    Some(l) if l >= 0 => format!("  expires in {}", duration::human(l as u64)),
                    Some(l) => format!("  expired {} ago", duration::human(l.unsigned_abs())),
                    None => String::new(),
                };
                let age = duration::human(row.age_secs);
                println!("{}  age {age}{expiry}", row.token);
            }
            Ok(0)
        }
        Command::Prune { max_age } => {
            let dir = TokenDir::open_for_listing(&cli.dir)?;
            let mut removed = 0;
            for entry in dir.entries()? {
                let Entry::Token { name, .. } = &entry else {
                    report_skipped(cli.verbose, &entry);
                    continue;
                };
                let Ok(token) = token::parse(name.as_bytes()) else {
                    continue;
                };
                // Look again right before removing: it may have been renewed meanwhile.
                let Lookup::Found { mtime } = dir.lookup(token)? else {
                    continue;
                };
                if expiry::is_fresh(mtime, now(), Some(*max_age)) {
                    continue;
                }
                if dir.remove(token)? {
                    let age = now().saturating_sub(mtime).max(0) as u64;
                    println!("removed {name} (age {})", duration::human(age));
                    removed += 1;
                }
            }
            if cli.verbose {
                eprintln!("wcs-token: removed {removed} expired token(s)");
            }
            Ok(0)
        }
    }
}

/// `issue --json`.
#[derive(Serialize)]
struct Issued<'a> {
    token: &'a str,
    path: &'a str,
}

/// One token of `list --json`; the expiry fields only with `--max-age`.
#[derive(Serialize)]
struct Listed<'a> {
    token: &'a str,
    mtime: i64,
    age_secs: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_in_secs: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expired: Option<bool>,
}

fn to_json(value: &impl Serialize) -> Result<String, Failure> {
    serde_json::to_string(value).map_err(|e| Failure(format!("cannot write JSON: {e}")))
}

fn verdict(status: &str) -> Result<u8, Failure> {
    println!("{status}");
    Ok(INVALID)
}

fn well_formed(value: &[u8]) -> Result<token::Token<'_>, Failure> {
    token::parse(value).map_err(|_| {
        Failure(format!(
            "malformed token \"{}\": a token is 1 to 255 characters of A-Z a-z 0-9 - _ . \
             and does not start with '.'",
            value.escape_ascii()
        ))
    })
}

fn report_skipped(verbose: bool, entry: &Entry) {
    if !verbose {
        return;
    }
    match entry {
        Entry::NotAToken(name) => eprintln!(
            "wcs-token: skipping \"{}\": not a token name",
            name.escape_ascii()
        ),
        Entry::NotRegular(name) => {
            eprintln!("wcs-token: skipping \"{name}\": not a regular file")
        }
        Entry::Token { .. } => {}
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
