//! Several edge servers, one token store: two nginx instances (own prefixes, own ports, own
//! per-worker caches) read one token directory, as a shared filesystem gives them. A token
//! issued by one operator action works on both at once; a revocation holds on both within
//! `cache_ttl`. The second test is the replicated variant: each host's directory is a
//! symbolic link swapped atomically to a new snapshot of the tokens.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

use crate::common::traffic::{long_run, report, Answer, Client};
use crate::common::*;

const TTL_MS: u64 = 400;
const MARGIN_MS: u64 = 2;

fn shared_dir() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("wcs-tokens-")
        .tempdir()
        .unwrap();
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o755)).unwrap();
    d
}

fn edge(dir: &Path) -> Nginx {
    Nginx::start(
        &format!("wcs_token_auth_cache_ttl {TTL_MS}ms;"),
        &format!(
            "location = /check {{ wcs_token_auth {}; root html; try_files /index.html =404; }}",
            dir.display()
        ),
    )
}

/// The operator's action: write under a name no request can use (a leading dot is never a
/// valid token), then rename into place, so both hosts see the whole token or nothing.
fn issue(dir: &Path, token: &str) {
    let tmp = dir.join(format!(".new-{token}"));
    fs::write(&tmp, "").unwrap();
    fs::rename(&tmp, dir.join(token)).unwrap();
}

fn status(nginx: &Nginx, token: &str) -> u16 {
    nginx
        .get("/check", &[("Cookie", &format!("AUTH={token}"))])
        .status
}

#[test]
fn two_edge_servers_accept_a_new_token_at_once_and_enforce_revocation_within_ttl() {
    let rounds = if long_run() { 40 } else { 3 };
    let per_round = 50;
    let dir = shared_dir();
    let hosts = [edge(dir.path()), edge(dir.path())];
    assert_ne!(hosts[0].port, hosts[1].port);
    let (mut requests, mut latest_accept) = (0u64, Duration::ZERO);
    let mut refused_in_bound = 0u64;

    for round in 0..rounds {
        let tokens: Vec<String> = (0..per_round).map(|i| format!("r{round}-t{i}")).collect();
        for t in &tokens {
            issue(dir.path(), t);
            for h in &hosts {
                assert_eq!(status(h, t), 200, "new token on the very next request");
                requests += 1;
            }
        }
        // Both caches are warm. Revoke every token, remembering when each was gone.
        let removed: Vec<(String, Instant)> = tokens
            .iter()
            .map(|t| {
                fs::remove_file(dir.path().join(t)).unwrap();
                (t.clone(), Instant::now())
            })
            .collect();
        let bound = Duration::from_millis(TTL_MS + MARGIN_MS);
        let until = Instant::now() + bound + Duration::from_millis(300);
        let seen = Mutex::new((0u64, Duration::ZERO, 0u64));
        thread::scope(|scope| {
            for h in &hosts {
                for part in removed.chunks(per_round / 2) {
                    let seen = &seen;
                    scope.spawn(move || {
                        let mut client = Client::new(h.port);
                        let (mut n, mut latest, mut in_bound) = (0, Duration::ZERO, 0);
                        while Instant::now() < until {
                            for (t, gone) in part {
                                let sent = Instant::now();
                                let a = client.get("/check", &[("Cookie", &format!("AUTH={t}"))]);
                                n += 1;
                                match a {
                                    Answer::Status(200) => {
                                        let after = sent.saturating_duration_since(*gone);
                                        assert!(
                                            after <= bound,
                                            "host :{} accepted {t} {after:?} after revocation",
                                            h.port
                                        );
                                        latest = latest.max(after);
                                    }
                                    Answer::Status(403) => {
                                        if sent > *gone + bound {
                                            in_bound += 1;
                                        }
                                    }
                                    other => panic!("host :{}: {other:?}", h.port),
                                }
                            }
                        }
                        let mut s = seen.lock().unwrap();
                        s.0 += n;
                        s.1 = s.1.max(latest);
                        s.2 += in_bound;
                    });
                }
            }
        });
        let (n, latest, in_bound) = seen.into_inner().unwrap();
        requests += n;
        latest_accept = latest_accept.max(latest);
        refused_in_bound += in_bound;
    }
    for h in &hosts {
        h.assert_no_crash();
    }
    assert!(refused_in_bound > 0);
    report(&format!(
        "shared store: 2 nginx instances, one directory, {} tokens issued and revoked, \
         {requests} requests, new tokens accepted by both on the first request, last accept \
         {latest_accept:?} after revocation (cache_ttl {TTL_MS} ms), {refused_in_bound} \
         refusals after the bound, 0 wrong answers",
        rounds * per_round
    ));
}

#[test]
fn replicated_snapshots_swapped_by_symlink_take_effect_at_once() {
    // Each host reads `current`, a symbolic link to a complete snapshot; a replication tool
    // (rsync into a new directory, then `ln -sfn` + `mv -T`) swaps it atomically.
    let base = shared_dir();
    let snapshot = |n: u32, tokens: &[&str]| {
        let d = base.path().join(format!("snapshot-{n}"));
        fs::create_dir(&d).unwrap();
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
        for t in tokens {
            fs::write(d.join(t), "").unwrap();
        }
        d
    };
    let swap_to = |d: &Path| {
        let tmp = base.path().join("current.tmp");
        symlink(d, &tmp).unwrap();
        fs::rename(&tmp, base.path().join("current")).unwrap();
    };
    swap_to(&snapshot(1, &["alice", "bob"]));
    let current = base.path().join("current");
    let hosts = [edge(&current), edge(&current)];
    for h in &hosts {
        assert_eq!(status(h, "alice"), 200);
        assert_eq!(status(h, "bob"), 200);
        assert_eq!(status(h, "carol"), 403);
    }

    // Snapshot 2 adds carol and drops bob.
    swap_to(&snapshot(2, &["alice", "carol"]));
    let swapped = Instant::now();
    for h in &hosts {
        assert_eq!(status(h, "carol"), 200, "added: accepted at once");
        assert_eq!(status(h, "alice"), 200);
    }
    let stop = AtomicBool::new(false);
    thread::scope(|scope| {
        for h in &hosts {
            let stop = &stop;
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let sent = Instant::now();
                    let s = status(h, "bob");
                    if sent > swapped + Duration::from_millis(TTL_MS + MARGIN_MS) {
                        assert_eq!(s, 403, "dropped from the snapshot, refused after the ttl");
                    }
                }
            });
        }
        sleep(Duration::from_millis(TTL_MS + 300));
        stop.store(true, Ordering::Relaxed);
    });
    // The old snapshot can be deleted once swapped out.
    fs::remove_dir_all(base.path().join("snapshot-1")).unwrap();
    for h in &hosts {
        assert_eq!(status(h, "alice"), 200);
        assert_eq!(status(h, "bob"), 403);
        h.assert_no_crash();
    }
}
