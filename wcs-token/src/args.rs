//! The command line, parsed into a [`Cli`] without touching the system.
//!
//! Hand-written, not clap or lexopt: five commands and six options, with the usage and error
//! texts (pinned by tests) and byte-string tokens under our control.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use wcs_token_auth_core::directive;

pub const DEFAULT_DIR: &str = "/var/lib/nginx/tokens";

pub const USAGE: &str = "\
usage: wcs-token [--dir DIR] COMMAND [OPTIONS]

Manages the token files that nginx's wcs_token_auth module checks (a token is a file
named like the token in the token directory).

commands:
  issue [--owner USER[:GROUP]] [--json]
                      create a new 256-bit token (mode 0640) and print it
  revoke TOKEN        delete a token
  list [--max-age TIME] [--json] [--verbose]
                      print every token with its age (and expiry with --max-age)
  prune --max-age TIME [--verbose]
                      delete the tokens older than TIME and print them
  check TOKEN [--max-age TIME]
                      print valid, or why nginx would refuse the token

options:
  --dir DIR           token directory (default /var/lib/nginx/tokens)
  --max-age TIME      nginx time syntax, as wcs_token_auth_max_age: 30s, 12h, 1d, 1h30m
  --owner USER[:GROUP]
                      chown a new token (names or numeric ids)
  --json              machine-readable output
  --verbose           also report directory entries that are not tokens
  --                  ends the options (for a token starting with '-')

exit status: 0 success (check: valid), 1 check: invalid / revoke: no such token,
             2 usage error or the directory cannot be used";

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
    Help,
}

/// Everything after the program name.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Cli, String> {
    let mut dir = None;
    let mut verbose = false;
    let mut json = false;
    let mut owner = None;
    let mut max_age = None;
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
        let mut value = |name: &[u8]| -> Result<Vec<u8>, String> {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{} needs a value", String::from_utf8_lossy(name)))
        };
        match name.as_slice() {
            b"--" => only_words = true,
            b"-h" | b"--help" => help = true,
            b"--verbose" | b"-v" => verbose = true,
            b"--json" => json = true,
            b"--dir" => dir = Some(PathBuf::from(OsString::from_vec(value(&name)?))),
            b"--owner" => owner = Some(utf8(value(&name)?, "--owner")?),
            b"--max-age" => {
                let v = value(&name)?;
                max_age = Some(parse_max_age(&v)?);
            }
            _ => {
                return Err(format!(
                    "unknown option \"{}\" (put -- before a token that starts with '-')",
                    arg.escape_ascii()
                ))
            }
        }
    }

    if help || words.first().map(Vec::as_slice) == Some(b"help") {
        return Ok(Cli {
            dir: PathBuf::from(DEFAULT_DIR),
            verbose,
            command: Command::Help,
        });
    }
    let mut words = words.into_iter();
    let command = match words.next().as_deref() {
        None => return Err("no command given".into()),
        Some(b"issue") => Command::Issue {
            owner: owner.clone(),
            json,
        },
        Some(b"revoke") => Command::Revoke {
            token: one_token(&mut words, "revoke")?,
        },
        Some(b"list") => Command::List { max_age, json },
        Some(b"prune") => Command::Prune {
            max_age: max_age.ok_or("prune needs --max-age TIME")?,
        },
        Some(b"check") => Command::Check {
            token: one_token(&mut words, "check")?,
            max_age,
        },
        Some(other) => return Err(format!("unknown command \"{}\"", other.escape_ascii())),
    };
    if let Some(extra) = words.next() {
        return Err(format!("unexpected argument \"{}\"", extra.escape_ascii()));
    }
    let allowed: &[&str] = match command {
        Command::Issue { .. } => &["owner", "json"],
        Command::List { .. } => &["max-age", "json"],
        Command::Prune { .. } => &["max-age"],
        Command::Check { .. } => &["max-age"],
        Command::Revoke { .. } | Command::Help => &[],
    };
    for (set, name) in [
        (owner.is_some(), "owner"),
        (json, "json"),
        (max_age.is_some(), "max-age"),
    ] {
        if set && !allowed.contains(&name) {
            return Err(format!("--{name} does not apply to this command"));
        }
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

/// `--max-age` takes what `wcs_token_auth_max_age` takes.
fn parse_max_age(v: &[u8]) -> Result<u64, String> {
    match directive::parse_time_secs(v) {
        Some(secs) if secs > 0 => Ok(secs),
        _ => Err(format!(
            "invalid --max-age \"{}\": a time of 1s or more, such as 30s, 12h, 1d, 1h30m",
            v.escape_ascii()
        )),
    }
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
}
