//! Drives the real `wcs-token` binary through the signed-token commands: key sets on disk
//! with their modes, tokens on stdout, status words and exit codes. (nginx's verdict on the
//! same tokens is tested in the root package's `tests/e2e/token_cli_signed.rs`.)

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_wcs-token");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run wcs-token")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn new_sign_check_revoke_round_trip_under_a_tight_umask() {
    let d = tempfile::tempdir().unwrap();
    let (private, public) = (d.path().join("private.json"), d.path().join("public.json"));
    let revoked = d.path().join("revoked");
    fs::create_dir(&revoked).unwrap();
    // A umask that would hide the public set from nginx's user: the modes are set exactly.
    let o = Command::new("sh")
        .arg("-c")
        .arg("umask 0077; exec \"$0\" jwks new --alg RS256 --kid r1 --private \"$1\" --public \"$2\"")
        .arg(BIN)
        .arg(&private)
        .arg(&public)
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    assert_eq!((mode(&private), mode(&public)), (0o600, 0o644));

    let o = run(&[
        "sign",
        "--private",
        s(&private),
        "--sub",
        "alice",
        "--ttl",
        "10m",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let token = stdout(&o);
    assert_eq!(token.matches('.').count(), 2, "{token}");

    let check = |extra: &[&str]| {
        let mut args = vec!["check", "--jwks", s(&public)];
        args.extend_from_slice(extra);
        args.push(&token);
        run(&args)
    };
    let o = check(&["--revoked", s(&revoked)]);
    assert_eq!(
        (code(&o), stdout(&o)),
        (0, "allowed".into()),
        "{}",
        stderr(&o)
    );
    let o = check(&["--audience", "wcs"]);
    assert_eq!((code(&o), stdout(&o)), (1, "bad_claims".into()));

    let o = run(&["revoke", "--revoked", s(&revoked), "--sub", "alice"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), s(&revoked.join("sub.alice")));
    let o = check(&["--revoked", s(&revoked)]);
    assert_eq!((code(&o), stdout(&o)), (1, "revoked_token".into()));

    // The private set is no key set for nginx, and check says so as nginx -t would.
    let o = run(&["check", "--jwks", s(&private), &token]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("private member \"d\""),
        "{}",
        stderr(&o)
    );
    // And it never overwrites.
    let o = run(&[
        "jwks",
        "new",
        "--alg",
        "HS256",
        "--kid",
        "h",
        "--private",
        s(&private),
        "--public",
        s(&d.path().join("other.json")),
    ]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    assert!(!d.path().join("other.json").exists());
}

#[test]
fn rotation_through_the_binary() {
    let d = tempfile::tempdir().unwrap();
    let (private, public) = (d.path().join("k.json"), d.path().join("pub.json"));
    let jwks = |args: &[&str]| {
        let mut all = vec!["jwks"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--private", s(&private), "--public", s(&public)]);
        run(&all)
    };
    assert_eq!(code(&jwks(&["new", "--alg", "EdDSA", "--kid", "a"])), 0);
    let old = stdout(&run(&[
        "sign",
        "--private",
        s(&private),
        "--sub",
        "u",
        "--ttl",
        "1h",
    ]));
    assert_eq!(code(&jwks(&["add", "--alg", "ES256", "--kid", "b"])), 0);
    let o = jwks(&["add", "--alg", "ES256", "--kid", "b"]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("already has a key \"b\""),
        "{}",
        stderr(&o)
    );
    let o = run(&[
        "sign",
        "--private",
        s(&private),
        "--sub",
        "u",
        "--ttl",
        "1h",
    ]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("choose one with --kid (a, b)"),
        "{}",
        stderr(&o)
    );
    let new = stdout(&run(&[
        "sign",
        "--private",
        s(&private),
        "--kid",
        "b",
        "--sub",
        "u",
        "--ttl",
        "1h",
    ]));
    let check = |t: &str| stdout(&run(&["check", "--jwks", s(&public), t]));
    assert_eq!(
        (check(&old), check(&new)),
        ("allowed".into(), "allowed".into())
    );
    assert_eq!(code(&jwks(&["remove", "--kid", "a"])), 0);
    assert_eq!(
        (check(&old), check(&new)),
        ("bad_signature".into(), "allowed".into())
    );
    let o = jwks(&["remove", "--kid", "b"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("last key"), "{}", stderr(&o));
    // An HMAC key makes the public set secret too.
    assert_eq!(code(&jwks(&["add", "--alg", "HS512", "--kid", "h"])), 0);
    assert_eq!((mode(&private), mode(&public)), (0o600, 0o600));
}

#[test]
fn signed_usage_errors_exit_2_with_the_usage() {
    for args in [
        &["jwks"][..],
        &[
            "jwks",
            "new",
            "--alg",
            "none",
            "--kid",
            "a",
            "--private",
            "x",
            "--public",
            "y",
        ],
        &["sign", "--private", "x", "--sub", "a"],
        &[
            "sign",
            "--private",
            "x",
            "--sub",
            "a",
            "--ttl",
            "1h",
            "--claim",
            "exp:=1",
        ],
        &["revoke", "--revoked", "/tmp", "--sub", "a", "--jti", "b"],
        &["check", "--jwks", "x"],
    ] {
        let o = run(args);
        assert_eq!(code(&o), 2, "{args:?}");
        assert!(stderr(&o).contains("usage: wcs-token"), "{args:?}");
    }
    let help = stdout(&run(&["--help"]));
    for line in [
        "jwks new --alg ALG",
        "sign --private FILE",
        "revoke --revoked DIR",
        "check --jwks FILE",
    ] {
        assert!(help.contains(line), "{line}");
    }
}
