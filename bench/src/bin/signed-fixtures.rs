//! `signed-fixtures DIR [FORGED]`
//!
//! Writes the signed-token fixtures of `bench/bench.sh` into DIR: `public.json` (the public
//! JWK Set: HS256, ES256, EdDSA and RS256 keys, `kid` hs256, es256, eddsa, rs256), and per
//! algorithm `ALG.token` (a valid token, expiring in 2100), `ALG.forged` (FORGED forged
//! tokens, 1,000 by default, one a line: a real header, random claims, the valid token's
//! signature) and `ALG.forged-random` (the same with random signature bytes). The same files
//! on every run (fixed seeds).

use std::fs;
use std::path::Path;
use std::process::ExitCode;

use wcs_bench::signed_fixtures;

fn write(dir: &Path, name: &str, text: &str) -> Result<(), String> {
    let path = dir.join(name);
    fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn run(dir: &Path, forged: usize) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let f = signed_fixtures::make(forged)?;
    write(dir, "public.json", &f.jwks)?;
    for a in &f.algs {
        write(dir, &format!("{}.token", a.alg), &a.token)?;
        let mut lines = a.forged.join("\n");
        lines.push('\n');
        write(dir, &format!("{}.forged", a.alg), &lines)?;
        let mut lines = a.forged_random.join("\n");
        lines.push('\n');
        write(dir, &format!("{}.forged-random", a.alg), &lines)?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        eprintln!("usage: signed-fixtures DIR [FORGED]");
        return ExitCode::from(2);
    };
    let forged = args.next().and_then(|n| n.parse().ok()).unwrap_or(1000);
    match run(Path::new(&dir), forged) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("signed-fixtures: {e}");
            ExitCode::FAILURE
        }
    }
}
