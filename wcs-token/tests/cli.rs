//! Drives the real `wcs-token` binary against real directories: output, exit status, file
//! modes and ownership, and the errors an operator meets. (Its effect on nginx is tested in
//! the root package's `tests/e2e/token_cli.rs`.)

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

const BIN: &str = env!("CARGO_BIN_EXE_wcs-token");

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .expect("run wcs-token")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}

fn age(path: &Path, by: Duration) {
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(SystemTime::now() - by)
        .unwrap();
}

fn is_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

#[test]
fn issue_prints_a_fresh_url_safe_token_file_with_mode_0640() {
    let d = tempfile::tempdir().unwrap();
    let a = run(d.path(), &["issue"]);
    assert_eq!(code(&a), 0, "{}", stderr(&a));
    let token = stdout(&a).trim().to_string();
    assert_eq!(token.len(), 43, "{token}");
    assert!(token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    let meta = fs::symlink_metadata(d.path().join(&token)).unwrap();
    assert!(meta.is_file());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
    let b = run(d.path(), &["issue"]);
    assert_ne!(stdout(&b).trim(), token, "two issues, one token");
}

#[test]
fn issue_json_names_the_token_and_its_path() {
    let d = tempfile::tempdir().unwrap();
    let o = run(d.path(), &["issue", "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    let token = out
        .split("\"token\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("token field");
    let path = d.path().join(token);
    assert!(path.is_file());
    assert_eq!(
        out.trim(),
        format!("{{\"token\":\"{token}\",\"path\":\"{}\"}}", path.display())
    );
}

#[test]
fn issue_owner_chowns_and_an_unknown_owner_creates_nothing() {
    if !is_root() {
        eprintln!("not root: chown to another user is not possible, only the error is tested");
    } else {
        let d = tempfile::tempdir().unwrap();
        let o = run(d.path(), &["issue", "--owner", "nobody:nogroup"]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let meta = fs::metadata(d.path().join(stdout(&o).trim())).unwrap();
        assert_eq!(meta.uid(), 65534);
        assert_eq!(meta.gid(), 65534);
    }
    let d = tempfile::tempdir().unwrap();
    let o = run(d.path(), &["issue", "--owner", "no-such-user-wcs"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("no such user \"no-such-user-wcs\""));
    assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0);
}

#[test]
fn check_answers_with_the_module_status_and_exit_code() {
    let d = tempfile::tempdir().unwrap();
    let token = stdout(&run(d.path(), &["issue"])).trim().to_string();
    let o = run(d.path(), &["check", &token]);
    assert_eq!((code(&o), stdout(&o).trim()), (0, "valid"));
    for (bad, status) in [
        ("nope", "unknown_token"),
        ("../../../../etc/passwd", "malformed_token"),
        (".hidden", "malformed_token"),
        ("", "no_token"),
    ] {
        let o = run(d.path(), &["check", "--", bad]);
        assert_eq!((code(&o), stdout(&o).trim()), (1, status), "{bad:?}");
    }
    age(&d.path().join(&token), Duration::from_secs(7200));
    let o = run(d.path(), &["check", &token, "--max-age", "1h"]);
    assert_eq!((code(&o), stdout(&o).trim()), (1, "expired_token"));
    let o = run(d.path(), &["check", &token, "--max-age", "3h"]);
    assert_eq!((code(&o), stdout(&o).trim()), (0, "valid"));
}

#[test]
fn check_refuses_symlinks_and_directories_like_the_module() {
    let d = tempfile::tempdir().unwrap();
    fs::write(d.path().join("real"), "").unwrap();
    std::os::unix::fs::symlink(d.path().join("real"), d.path().join("link")).unwrap();
    fs::create_dir(d.path().join("adir")).unwrap();
    for name in ["link", "adir"] {
        let o = run(d.path(), &["check", name]);
        assert_eq!(
            (code(&o), stdout(&o).trim()),
            (1, "unknown_token"),
            "{name}"
        );
    }
}

#[test]
fn revoke_removes_the_file_and_says_when_there_is_none() {
    let d = tempfile::tempdir().unwrap();
    let token = stdout(&run(d.path(), &["issue"])).trim().to_string();
    let o = run(d.path(), &["revoke", &token]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(!d.path().join(&token).exists());
    let o = run(d.path(), &["revoke", &token]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("no such token"), "{}", stderr(&o));
}

#[test]
fn revoke_refuses_a_malformed_token_without_touching_anything() {
    let d = tempfile::tempdir().unwrap();
    let inner = d.path().join("tokens");
    fs::create_dir(&inner).unwrap();
    fs::write(d.path().join("victim"), "").unwrap();
    let o = run(&inner, &["revoke", "../victim"]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("malformed token \"../victim\""),
        "{}",
        stderr(&o)
    );
    assert!(d.path().join("victim").exists());
}

#[test]
fn list_shows_age_and_expiry_and_ignores_strangers() {
    let d = tempfile::tempdir().unwrap();
    fs::write(d.path().join("fresh"), "").unwrap();
    fs::write(d.path().join("old"), "").unwrap();
    age(&d.path().join("old"), Duration::from_secs(7200 + 30));
    fs::write(d.path().join(".hidden"), "").unwrap();
    fs::create_dir(d.path().join("subdir")).unwrap();
    let o = run(d.path(), &["list"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with("fresh  age "), "{out}");
    assert!(lines[1].starts_with("old  age 2h"), "{out}");
    let o = run(d.path(), &["list", "--max-age", "1h", "--verbose"]);
    let out = stdout(&o);
    assert!(out.contains("fresh  age 0s  expires in "), "{out}");
    assert!(out.contains("old  age 2h  expired 1h"), "{out}");
    let err = stderr(&o);
    assert!(
        err.contains("skipping \".hidden\": not a token name"),
        "{err}"
    );
    assert!(
        err.contains("skipping \"subdir\": not a regular file"),
        "{err}"
    );
    let o = run(d.path(), &["list", "--json", "--max-age", "1h"]);
    let out = stdout(&o);
    assert!(out.starts_with("[{\"token\":\"fresh\""), "{out}");
    assert!(out.contains("\"expired\":true"), "{out}");
}

#[test]
fn prune_deletes_expired_tokens_only_and_prints_them() {
    let d = tempfile::tempdir().unwrap();
    for name in ["fresh", "old", "older"] {
        fs::write(d.path().join(name), "").unwrap();
    }
    age(&d.path().join("old"), Duration::from_secs(3600 + 5));
    age(&d.path().join("older"), Duration::from_secs(86_400));
    // Not tokens: old, but prune must leave them alone.
    fs::write(d.path().join(".old-dotfile"), "").unwrap();
    age(&d.path().join(".old-dotfile"), Duration::from_secs(86_400));
    std::os::unix::fs::symlink("/etc/passwd", d.path().join("old-link")).unwrap();
    let o = run(d.path(), &["prune", "--max-age", "1h"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["removed old (age 1h)", "removed older (age 1d)"],
        "{out}"
    );
    assert!(d.path().join("fresh").exists());
    assert!(!d.path().join("old").exists());
    assert!(d.path().join(".old-dotfile").exists());
    assert!(fs::symlink_metadata(d.path().join("old-link")).is_ok());
    assert!(Path::new("/etc/passwd").exists());
}

#[test]
fn a_missing_directory_is_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    let gone = d.path().join("nope");
    for args in [
        &["issue"][..],
        &["list"],
        &["check", "abc"],
        &["revoke", "abc"],
        &["prune", "--max-age", "1h"],
    ] {
        let o = run(&gone, args);
        assert_eq!(code(&o), 2, "{args:?}");
        assert!(
            stderr(&o).contains(&format!(
                "token directory \"{}\" does not exist",
                gone.display()
            )),
            "{args:?}: {}",
            stderr(&o)
        );
    }
}

#[test]
fn a_permission_problem_is_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let tokens = d.path().join("tokens");
    fs::create_dir(&tokens).unwrap();
    fs::set_permissions(&tokens, fs::Permissions::from_mode(0o555)).unwrap();
    // Root ignores directory modes: run as nobody then.
    let mut cmd = if is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", BIN]);
        c
    } else {
        Command::new(BIN)
    };
    let o = cmd.arg("--dir").arg(&tokens).arg("issue").output().unwrap();
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains(&format!(
            "cannot create a token in \"{}\": Permission denied",
            tokens.display()
        )),
        "{}",
        stderr(&o)
    );
    assert_eq!(fs::read_dir(&tokens).unwrap().count(), 0);
}

#[test]
fn usage_errors_exit_2_with_the_usage() {
    let d = tempfile::tempdir().unwrap();
    for args in [
        &[][..],
        &["frobnicate"],
        &["prune"],
        &["revoke"],
        &["revoke", "-abc"],
        &["issue", "--max-age", "1h"],
        &["list", "--max-age", "soon"],
    ] {
        let o = run(d.path(), args);
        assert_eq!(code(&o), 2, "{args:?}");
        assert!(stderr(&o).contains("usage: wcs-token"), "{args:?}");
    }
    let o = run(d.path(), &["--help"]);
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).contains("usage: wcs-token"));
}

#[test]
fn the_mode_is_0640_whatever_the_umask() {
    let d = tempfile::tempdir().unwrap();
    let o = Command::new("sh")
        .arg("-c")
        .arg("umask 0077; exec \"$0\" --dir \"$1\" issue")
        .arg(BIN)
        .arg(d.path())
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let meta = fs::metadata(d.path().join(stdout(&o).trim())).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
}
