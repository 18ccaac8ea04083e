//! The whole decision, `auth::authorize`, against a real token directory.
//!
//! The directory holds three token files and, under names that pass the token rule, a symbolic
//! link to one of them, a symbolic link to `/etc/passwd`, a subdirectory and a FIFO; its parent
//! holds a file `outside`.
//!
//! Input lines: a selector (policy and Origin header shape), the Origin value, the Host value,
//! then one `Cookie` header per line.
//!
//! Properties: a request is allowed only when the Origin rules allow it and the first `AUTH`
//! cookie is exactly the name of one of the three regular files; links, the directory, the FIFO
//! and anything outside are never allowed; the directory is never reported broken; the same
//! request asked again (now answered from the cache) gets the same answer.
#![no_main]

use std::ffi::CString;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use wcs_token_auth_core::auth::{self, Clock, Policy, Refusal, RequestHeaders, Status};
use wcs_token_auth_core::cache::TokenCache;
use wcs_token_auth_core::cookie;
use wcs_token_auth_core::origin::ServedHost;
use wcs_token_auth_core::origin::{OriginHeader, OriginPolicy};
use wcs_token_auth_fuzz::fields;

const VALID: [&[u8]; 3] = [b"good", b"Tok-2_x.y", b"a"];
const NOT_FILES: [&[u8]; 4] = [b"link", b"passwd", b"subdir", b"fifo"];

fn token_dir() -> &'static CString {
    static DIR: OnceLock<CString> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = std::env::temp_dir().join(format!("wcs-fuzz-authorize-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let dir: PathBuf = base.join("tokens");
        fs::create_dir_all(dir.join("subdir")).unwrap();
        fs::write(base.join("outside"), "").unwrap();
        for t in VALID {
            fs::write(dir.join(std::str::from_utf8(t).unwrap()), "").unwrap();
        }
        symlink("good", dir.join("link")).unwrap();
        symlink("/etc/passwd", dir.join("passwd")).unwrap();
        let fifo = CString::new(dir.join("fifo").into_os_string().into_encoded_bytes()).unwrap();
        // The mkfifo(1) tool keeps this target free of unsafe code.
        let made = std::process::Command::new("mkfifo")
            .arg(fifo.to_str().unwrap())
            .status()
            .unwrap();
        assert!(made.success());
        CString::new(dir.into_os_string().into_encoded_bytes()).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fields(data);
    let selector = f[0].first().copied().unwrap_or(0);
    let origin_value = f.get(1).copied().unwrap_or_default();
    let host = f.get(2).copied().map(ServedHost::from_authority);
    let cookies: &[&[u8]] = f.get(3..).unwrap_or_default();

    let origins = match selector % 3 {
        0 => OriginPolicy::SameOrigin,
        1 => OriginPolicy::Any,
        _ => OriginPolicy::from_args([&b"https://*.example.com"[..], b"http://127.0.0.1:8080"])
            .unwrap(),
    };
    let origin = match (selector / 3) % 3 {
        0 => OriginHeader::Absent,
        1 => OriginHeader::One(origin_value),
        _ => OriginHeader::Several,
    };
    let require_origin = selector & 0x80 != 0;
    let policy = Policy {
        dir: Some(token_dir().clone()),
        dir_id: 7,
        signed: None,
        cookie_name: b"AUTH".to_vec(),
        origins: origins.clone(),
        require_origin,
        max_age_secs: None,
    };
    let mut cache = TokenCache::new(4, 1000);
    let ask = |cache: &mut TokenCache, now_ms| {
        let req = RequestHeaders {
            origin,
            host,
            cookies: cookies.iter().copied(),
        };
        auth::authorize(
            &policy,
            req,
            cache,
            Clock {
                now_ms,
                unix_secs: 0,
            },
        )
    };

    let first = ask(&mut cache, 0);
    let value = cookie::find(cookies.iter().copied(), b"AUTH");
    let origin_ok = origins.allows(origin, host, require_origin);
    match &first {
        Ok(_) => {
            assert!(origin_ok);
            let v = value.expect("allowed without a cookie");
            assert!(VALID.contains(&v), "allowed {}", v.escape_ascii());
        }
        Err(Refusal::Dir(_, e) | Refusal::RevokedDir(_, e)) => {
            panic!("the directory is fine: {e:?}")
        }
        Err(Refusal::Origin(_)) => assert!(!origin_ok),
        Err(refusal) => {
            let s = refusal.status();
            assert!(origin_ok);
            assert!(
                !value.is_some_and(|v| VALID.contains(&v)),
                "refused a valid token: {s:?}"
            );
            if value.is_some_and(|v| NOT_FILES.contains(&v)) {
                assert_eq!(s, Status::UnknownToken);
            }
        }
    }
    let again = ask(&mut cache, 1);
    assert_eq!(
        auth::status(&again),
        auth::status(&first),
        "the cache changed the answer"
    );
});
