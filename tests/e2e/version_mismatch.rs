//! A module only loads into the nginx version it was built against: this pins the message
//! nginx prints otherwise, which docs/operations.md's upgrade notes quote.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

/// `nginx -v` as nginx's own number: 1.22.1 is 1022001.
fn version_number(nginx: &Path) -> u64 {
    let out = Command::new(nginx).arg("-v").output().expect("nginx -v");
    let text = String::from_utf8_lossy(&out.stderr);
    let v = text
        .trim()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .split(' ')
        .next()
        .unwrap_or_default();
    let parts: Vec<u64> = v.split('.').filter_map(|p| p.parse().ok()).collect();
    assert_eq!(parts.len(), 3, "unexpected nginx -v: {text}");
    parts[0] * 1_000_000 + parts[1] * 1000 + parts[2]
}

/// The nginx under test, Debian's packaged one, and the one built from nginx-src.
fn candidates() -> Vec<PathBuf> {
    let mut all = vec![nginx_bin(), PathBuf::from("/usr/sbin/nginx")];
    let builds = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/build");
    for entry in std::fs::read_dir(builds).into_iter().flatten().flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("nginx-sys-")
        {
            all.push(entry.path().join("out/objs/nginx"));
        }
    }
    let mut seen = Vec::new();
    all.retain(|p| {
        let keep = p.is_file() && !seen.contains(p);
        seen.push(p.clone());
        keep
    });
    all
}

#[test]
fn nginx_refuses_a_module_built_for_another_version() {
    let built: u64 = env!("WCS_NGINX_VERSION_NUMBER").parse().expect("version");
    assert!(built > 0, "the build did not record the nginx version");
    let prefix = Prefix::new();
    prefix.write_conf(free_port(), "", "");
    let module = module_so();
    let mut mismatches = 0;
    for nginx in candidates() {
        let theirs = version_number(&nginx);
        let out = prefix.test_conf_with(&nginx);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if theirs == built {
            // Another build of the same version may still differ in its configure flags
            // ("is not binary compatible"): only the nginx under test must accept it.
            if nginx == nginx_bin() {
                assert!(out.status.success(), "{}: {stderr}", nginx.display());
            }
        } else {
            mismatches += 1;
            let line = format!(
                "nginx: [emerg] module \"{}\" version {built} instead of {theirs} in {}:1",
                module.display(),
                prefix.path().join("conf/nginx.conf").display()
            );
            assert!(!out.status.success(), "{} accepted it", nginx.display());
            assert!(
                stderr.lines().any(|l| l == line),
                "{}: expected\n{line}\ngot\n{stderr}",
                nginx.display()
            );
            eprintln!("{}: {line}", nginx.display());
        }
    }
    if mismatches == 0 {
        eprintln!(
            "only nginx {built} is installed here: the mismatch message was not exercised \
             (scripts/test.sh installs Debian's nginx, so it is there)"
        );
    }
}
