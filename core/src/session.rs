//! Open sessions and the rounds that re-check their tokens (`wcs_token_auth_session_check`).
//!
//! A session is a request the module allowed, from then until it ends. Each (directory,
//! token) has its own phase within the interval, so the checks of different tokens are spread
//! across it (a round never stalls the worker with every session at once) while the sessions
//! that share a token share their rounds. A round reads the token directory fresh, never the
//! cache: one `open` per directory and one `fstatat` per distinct token due. The shell closes
//! what a round says to close; this module never touches a request.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::{CStr, CString};
use std::hash::{BuildHasher, Hash};
use std::io;
use std::os::fd::{AsFd, OwnedFd};

use crate::auth::Status;
use crate::expiry;
use crate::store::{self, DirError, Lookup};
use crate::token;

/// The maps' hash, fast because rounds and tracking use it often. Ids, group and slot
/// indices are the registry's own, handles are the shell's request addresses, and tokens
/// (hashed only when a session is tracked or ends) passed the access check, so they name
/// files the operator created: nobody can choose keys to fill a bucket.
type Hasher = foldhash::fast::RandomState;

/// Identifies a tracked session; never reused within a worker (a 64-bit counter), so a stale
/// id, such as one a pool cleanup still holds after its session was taken, names nothing.
pub type SessionId = u64;

/// What [`Registry::track`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tracked {
    /// A new session: the caller arranges for it to be untracked when its request ends.
    New(SessionId),
    /// The request was tracked already (granted again after an internal redirect, or by a
    /// subrequest and its main request): its one session now follows the latest rules.
    Updated(SessionId),
}

impl Tracked {
    pub fn id(self) -> SessionId {
        match self {
            Tracked::New(id) | Tracked::Updated(id) => id,
        }
    }
}

/// Why a session is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ending {
    /// The token file is gone (or is no longer a regular file).
    Revoked,
    /// The token file is older than the location's `max_age`.
    Expired,
    /// The token directory itself is gone (ENOENT, ENOTDIR).
    DirMissing,
}

impl Ending {
    /// The value `$wcs_token_auth_status` takes for the closed request.
    pub fn status(self) -> Status {
        match self {
            Ending::Revoked | Ending::DirMissing => Status::SessionRevoked,
            Ending::Expired => Status::SessionExpired,
        }
    }

    /// The error-log line; the token itself never appears in it.
    pub fn message(self) -> &'static str {
        match self {
            Ending::Revoked => "wcs_token_auth: closed session: token revoked",
            Ending::Expired => "wcs_token_auth: closed session: token expired",
            Ending::DirMissing => "wcs_token_auth: closed session: token directory missing",
        }
    }
}

/// Where a round reads tokens from; [`FreshStore`] in the module, a fake in tests.
pub trait Store {
    type Dir;
    fn open_dir(&mut self, dir: &CStr) -> Result<Self::Dir, DirError>;
    fn lookup(&mut self, dir: &Self::Dir, token: &[u8]) -> Result<Lookup, DirError>;
}

/// The token directory as it is now: opened by path each round, so a directory that was
/// removed or replaced is seen, with the handshake's rules (no symlinks, regular files only).
#[derive(Debug, Default, Clone, Copy)]
pub struct FreshStore;

impl Store for FreshStore {
    type Dir = OwnedFd;

    fn open_dir(&mut self, dir: &CStr) -> Result<OwnedFd, DirError> {
        store::open_dir(dir)
    }

    fn lookup(&mut self, dir: &OwnedFd, token: &[u8]) -> Result<Lookup, DirError> {
        match token::parse(token) {
            Ok(t) => store::lookup_in(dir.as_fd(), t),
            // Only parsed tokens are tracked; a name that is not one cannot name a file.
            Err(_) => Ok(Lookup::NotFound),
        }
    }
}

#[derive(Debug)]
struct Session<H> {
    handle: H,
    /// Index in [`Registry::groups`].
    group: usize,
}

/// The sessions checked together: one token slot under one location's rules. A round visits
/// a group, not its sessions, unless they are to be closed.
#[derive(Debug)]
struct Group {
    /// Index in [`Registry::tokens`].
    token: usize,
    max_age_secs: Option<u64>,
    interval_ms: u64,
    /// When it is next checked, on the monotonic clock the caller uses.
    due_ms: u64,
    sessions: HashSet<SessionId, Hasher>,
}

/// What makes sessions share a [`Group`]: (token slot, interval, `max_age`).
type GroupKey = (usize, u64, Option<u64>);

/// A distinct (directory, token) pair and how many sessions hold it.
#[derive(Debug)]
struct TokenSlot {
    /// Index in [`Registry::dirs`].
    dir: usize,
    token: Box<[u8]>,
    sessions: usize,
    /// Spreads the token's checks: its phase within an interval is this modulo the interval.
    phase_seed: u64,
}

/// What a session is checked against, as the location that allowed it says.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    pub dir: &'a CStr,
    pub max_age_secs: Option<u64>,
    /// At least 1.
    pub interval_ms: u64,
}

/// The open sessions of one worker; `H` is the shell's handle on the request, and a request
/// has at most one session.
///
/// Tokens are interned when a session is tracked, so that a round compares no token bytes:
/// it asks the directory about each due token slot once, by index.
#[derive(Debug)]
pub struct Registry<H> {
    sessions: HashMap<SessionId, Session<H>, Hasher>,
    /// The session of each tracked request.
    by_handle: HashMap<H, SessionId, Hasher>,
    /// Distinct token directories seen; only as many as the configurations name.
    dirs: Vec<CString>,
    /// When each directory was last reported unreadable.
    dir_reported_ms: Vec<Option<u64>>,
    /// Token slots; `None` is free (listed in `free`).
    tokens: Vec<Option<TokenSlot>>,
    free: Vec<usize>,
    /// Slot of each (directory index, little endian, then token).
    token_index: HashMap<Vec<u8>, usize, Hasher>,
    /// Groups; `None` is free (listed in `free_groups`).
    groups: Vec<Option<Group>>,
    free_groups: Vec<usize>,
    group_index: HashMap<GroupKey, usize, Hasher>,
    /// Every group by when it is next checked, so a round visits only what is due.
    schedule: BTreeSet<(u64, usize)>,
    next_id: SessionId,
}

impl<H> Default for Registry<H> {
    fn default() -> Self {
        Registry {
            sessions: HashMap::default(),
            by_handle: HashMap::default(),
            dirs: Vec::new(),
            dir_reported_ms: Vec::new(),
            tokens: Vec::new(),
            free: Vec::new(),
            token_index: HashMap::default(),
            groups: Vec::new(),
            free_groups: Vec::new(),
            group_index: HashMap::default(),
            schedule: BTreeSet::new(),
            next_id: 0,
        }
    }
}

fn token_key(dir: usize, token: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + token.len());
    key.extend_from_slice(&(dir as u64).to_le_bytes());
    key.extend_from_slice(token);
    key
}

/// What a round learnt about one token slot.
#[derive(Debug, Clone, Copy)]
enum Answer {
    NotAsked,
    Found(i64),
    Gone,
}

/// A directory whose sessions a round could not check, and kept.
#[derive(Debug)]
pub struct Unreadable {
    pub dir: CString,
    pub error: io::Error,
}

/// What one round found.
#[derive(Debug, Default)]
pub struct Round {
    /// Sessions to close, each once.
    pub close: Vec<(SessionId, Ending)>,
    /// At most one entry per directory, and one per directory per interval.
    pub unreadable: Vec<Unreadable>,
    /// Sessions checked this round.
    pub checked: usize,
    /// Token lookups made (one per distinct token of a readable directory).
    pub lookups: usize,
}

/// How far ahead of its due time a round may check a session: 2.5 % of the interval, at most
/// 25 ms. Checking early never closes wrongly (a session is closed only when its token is
/// invalid when checked), and it lets one timer firing take every token due in that window
/// instead of firing once per token. The latest check is then `interval + window` after the
/// one before, which keeps a removal's close within `interval` + 100 ms.
pub fn window_ms(interval_ms: u64) -> u64 {
    // At most about 40 rounds an interval: each costs a timer firing, a wakeup and an `open`
    // of the directory, and a round per token would cost far more than its one look-up.
    (interval_ms / 40).min(25)
}

/// When a session is next checked: the first time after `now_ms` + the window that lies
/// `phase_seed` (modulo the interval) past a multiple of the interval. Sessions that share a
/// token and an interval share this time, so one lookup serves them all; different tokens
/// fall at different times across the interval.
pub fn next_check_ms(now_ms: u64, interval_ms: u64, phase_seed: u64) -> u64 {
    let interval = interval_ms.max(1);
    let phase = phase_seed % interval;
    let after = now_ms.saturating_add(window_ms(interval));
    // The first point of the grid `phase + k * interval` that is greater than `after`.
    match after.checked_sub(phase) {
        None => phase,
        Some(since) => (since / interval)
            .saturating_add(1)
            .saturating_mul(interval)
            .saturating_add(phase),
    }
}

impl<H: Copy + Eq + Hash> Registry<H> {
    pub fn new() -> Self {
        Registry::default()
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Tracks the request `handle`, allowed at `now_ms` with `token`. A request tracked
    /// already keeps its one session, which takes the new token and rules: the request is now
    /// served by the location that granted it last.
    pub fn track(&mut self, handle: H, token: &[u8], rules: Rules<'_>, now_ms: u64) -> Tracked {
        let slot = self.hold_token(token, rules.dir);
        let key = (slot, rules.interval_ms.max(1), rules.max_age_secs);
        if let Some(&id) = self.by_handle.get(&handle) {
            if let Some(old) = self.sessions.get(&id).map(|s| s.group) {
                let group = self.join(key, id, now_ms);
                if group == old {
                    // The same token and rules: it stays where it is, holding its slot once.
                    self.release_token(slot);
                } else {
                    if let Some(s) = self.sessions.get_mut(&id) {
                        s.group = group;
                    }
                    self.leave(old, id);
                }
                return Tracked::Updated(id);
            }
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let group = self.join(key, id, now_ms);
        self.sessions.insert(id, Session { handle, group });
        self.by_handle.insert(handle, id);
        Tracked::New(id)
    }

    /// Adds session `id` (holding the token slot in `key` already) to its group, made and
    /// scheduled if new; a group that exists keeps its schedule.
    fn join(&mut self, key: GroupKey, id: SessionId, now_ms: u64) -> usize {
        let index = match self.group_index.get(&key) {
            Some(&g) => g,
            None => {
                let (token, interval_ms, max_age_secs) = key;
                let due_ms = next_check_ms(now_ms, interval_ms, self.phase_seed(token));
                let group = Some(Group {
                    token,
                    max_age_secs,
                    interval_ms,
                    due_ms,
                    sessions: HashSet::default(),
                });
                let g = match self.free_groups.pop() {
                    Some(free) => free,
                    None => {
                        self.groups.push(None);
                        self.groups.len() - 1
                    }
                };
                if let Some(entry) = self.groups.get_mut(g) {
                    *entry = group;
                }
                self.group_index.insert(key, g);
                self.schedule.insert((due_ms, g));
                g
            }
        };
        if let Some(Some(group)) = self.groups.get_mut(index) {
            group.sessions.insert(id);
        }
        index
    }

    /// Takes session `id` out of group `g`, freeing the group and the session's hold on its
    /// token slot.
    fn leave(&mut self, g: usize, id: SessionId) {
        let Some(entry) = self.groups.get_mut(g) else {
            return;
        };
        let Some(group) = entry.as_mut() else {
            return;
        };
        group.sessions.remove(&id);
        let token = group.token;
        if group.sessions.is_empty() {
            self.schedule.remove(&(group.due_ms, g));
            self.group_index
                .remove(&(group.token, group.interval_ms, group.max_age_secs));
            *entry = None;
            self.free_groups.push(g);
        }
        self.release_token(token);
    }

    fn phase_seed(&self, slot: usize) -> u64 {
        self.tokens
            .get(slot)
            .and_then(Option::as_ref)
            .map_or(0, |t| t.phase_seed)
    }

    /// The slot of (`dir`, `token`), interned if new, with one more session holding it.
    fn hold_token(&mut self, token: &[u8], dir: &CStr) -> usize {
        let dir = match self.dirs.iter().position(|d| d.as_c_str() == dir) {
            Some(i) => i,
            None => {
                self.dirs.push(dir.to_owned());
                self.dir_reported_ms.push(None);
                self.dirs.len() - 1
            }
        };
        let key = token_key(dir, token);
        let slot = match self.token_index.get(&key) {
            Some(&slot) => slot,
            None => {
                let new = Some(TokenSlot {
                    dir,
                    token: token.into(),
                    sessions: 0,
                    phase_seed: self.token_index.hasher().hash_one(&key),
                });
                let slot = match self.free.pop() {
                    Some(free) => free,
                    None => {
                        self.tokens.push(None);
                        self.tokens.len() - 1
                    }
                };
                if let Some(entry) = self.tokens.get_mut(slot) {
                    *entry = new;
                }
                self.token_index.insert(key, slot);
                slot
            }
        };
        if let Some(Some(t)) = self.tokens.get_mut(slot) {
            t.sessions += 1;
        }
        slot
    }

    /// One session less holds `slot`; the last one frees it.
    fn release_token(&mut self, slot: usize) {
        if let Some(entry) = self.tokens.get_mut(slot) {
            let last = entry.as_mut().is_some_and(|t| {
                t.sessions = t.sessions.saturating_sub(1);
                t.sessions == 0
            });
            if let Some(t) = last.then(|| entry.take()).flatten() {
                self.token_index.remove(&token_key(t.dir, &t.token));
                self.free.push(slot);
            }
        }
    }

    /// Stops tracking a session (its request ended); `false` if it was not tracked, as for an
    /// id taken or untracked already.
    pub fn untrack(&mut self, id: SessionId) -> bool {
        let Some(session) = self.sessions.remove(&id) else {
            return false;
        };
        if self.by_handle.get(&session.handle) == Some(&id) {
            self.by_handle.remove(&session.handle);
        }
        self.leave(session.group, id);
        true
    }

    /// Stops tracking a session the caller is about to close, and returns its request: a
    /// request that takes a while to go away once closed (an HTTP/2 stream still flushing) is
    /// then never closed twice.
    pub fn take(&mut self, id: SessionId) -> Option<H> {
        let handle = self.handle(id)?;
        self.untrack(id);
        Some(handle)
    }

    /// The request of a tracked session.
    pub fn handle(&self, id: SessionId) -> Option<H> {
        self.sessions.get(&id).map(|s| s.handle)
    }

    /// When a session is next checked.
    pub fn due_ms(&self, id: SessionId) -> Option<u64> {
        let group = self.sessions.get(&id)?.group;
        self.groups.get(group)?.as_ref().map(|g| g.due_ms)
    }

    /// When the next round is due, if anything is tracked.
    pub fn next_due_ms(&self) -> Option<u64> {
        self.schedule.first().map(|&(due, _)| due)
    }

    /// Checks every session due at `now_ms` or within its window after it (`unix_secs` is the
    /// wall clock, for `max_age`) and schedules its next check. Nothing is removed: the caller
    /// closes what [`Round::close`] lists, and untracks each session when its request ends.
    pub fn round<S: Store>(&mut self, now_ms: u64, unix_secs: i64, store: &mut S) -> Round {
        // The due groups of each directory, by the directory's index.
        let mut due: Vec<Vec<usize>> = self.dirs.iter().map(|_| Vec::new()).collect();
        let mut round = Round::default();
        let horizon = now_ms.saturating_add(window_ms(u64::MAX));
        let mut taken = Vec::new();
        for &(due_ms, g) in self.schedule.range(..=(horizon, usize::MAX)) {
            let Some(Some(group)) = self.groups.get(g) else {
                continue;
            };
            if due_ms > now_ms.saturating_add(window_ms(group.interval_ms)) {
                continue;
            }
            let Some(slot) = self.tokens.get(group.token).and_then(Option::as_ref) else {
                continue;
            };
            let next = next_check_ms(now_ms, group.interval_ms, slot.phase_seed);
            taken.push((due_ms, g, next));
            if let Some(list) = due.get_mut(slot.dir) {
                list.push(g);
                round.checked += group.sessions.len();
            }
        }
        for (old, g, new) in taken {
            self.schedule.remove(&(old, g));
            self.schedule.insert((new, g));
            if let Some(Some(group)) = self.groups.get_mut(g) {
                group.due_ms = new;
            }
        }
        // By token slot; only the due tokens' slots, so a round costs what is due, not what is
        // tracked.
        let mut answers = HashMap::with_capacity_and_hasher(round.checked, Hasher::default());
        for (dir, list) in due.iter().enumerate() {
            if list.is_empty() {
                continue;
            }
            let reports = round.unreadable.len();
            self.check_dir(dir, list, unix_secs, store, &mut answers, &mut round);
            if round.unreadable.len() > reports {
                // Rounds come more often than the interval (each token on its own phase): an
                // unreadable directory is reported once per interval, not once per round.
                let interval = list
                    .iter()
                    .filter_map(|&g| self.groups.get(g).and_then(Option::as_ref))
                    .map(|g| g.interval_ms)
                    .min()
                    .unwrap_or(1);
                let quiet = interval.saturating_sub(window_ms(interval));
                match self.dir_reported_ms.get_mut(dir) {
                    Some(Some(last)) if now_ms < last.saturating_add(quiet) => {
                        round.unreadable.truncate(reports);
                    }
                    Some(last) => *last = Some(now_ms),
                    None => {}
                }
            }
        }
        round
    }

    /// One directory's share of a round: `list` holds its due groups.
    fn check_dir<S: Store>(
        &self,
        dir: usize,
        list: &[usize],
        unix_secs: i64,
        store: &mut S,
        answers: &mut HashMap<usize, Answer, Hasher>,
        round: &mut Round,
    ) {
        let Some(path) = self.dirs.get(dir) else {
            return;
        };
        let groups = list
            .iter()
            .filter_map(|&g| self.groups.get(g).and_then(Option::as_ref));
        let handle = match store.open_dir(path) {
            Ok(h) => h,
            Err(DirError::Missing(_)) => {
                for group in groups {
                    let close = group.sessions.iter().map(|&id| (id, Ending::DirMissing));
                    round.close.extend(close);
                }
                return;
            }
            Err(DirError::Failed(error)) => {
                round.unreadable.push(Unreadable {
                    dir: path.clone(),
                    error,
                });
                return;
            }
        };
        let mut close = Vec::new();
        for group in groups {
            let Some(Some(slot)) = self.tokens.get(group.token) else {
                continue;
            };
            let answer = answers.entry(group.token).or_insert(Answer::NotAsked);
            if let Answer::NotAsked = answer {
                // Each distinct token once per round, however many sessions share it.
                round.lookups += 1;
                *answer = match store.lookup(&handle, &slot.token) {
                    Ok(Lookup::Found { mtime }) => Answer::Found(mtime),
                    Ok(Lookup::NotFound) => Answer::Gone,
                    Err(DirError::Missing(error) | DirError::Failed(error)) => {
                        // The directory turned unreadable under us: keep them all.
                        round.unreadable.push(Unreadable {
                            dir: path.clone(),
                            error,
                        });
                        return;
                    }
                };
            }
            let ending = match *answer {
                Answer::Gone => Ending::Revoked,
                Answer::Found(m) if !expiry::is_fresh(m, unix_secs, group.max_age_secs) => {
                    Ending::Expired
                }
                Answer::Found(_) | Answer::NotAsked => continue,
            };
            close.extend(group.sessions.iter().map(|&id| (id, ending)));
        }
        round.close.extend(close);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap as Map, HashSet};
    use std::fs;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    fn cdir(p: &std::path::Path) -> CString {
        CString::new(p.as_os_str().as_encoded_bytes()).unwrap()
    }

    fn rules(dir: &CStr, interval_ms: u64) -> Rules<'_> {
        Rules {
            dir,
            max_age_secs: None,
            interval_ms,
        }
    }

    fn now_unix() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    /// A directory's files and their mtimes, or the errno opening it fails with.
    type FakeDir = Result<Map<Vec<u8>, i64>, i32>;

    /// Counts calls and answers from a map: (dir, token) -> mtime; a missing dir is ENOENT.
    #[derive(Default)]
    struct Fake {
        dirs: Map<Vec<u8>, FakeDir>,
        opens: usize,
        lookups: usize,
    }

    impl Store for Fake {
        type Dir = Map<Vec<u8>, i64>;
        fn open_dir(&mut self, dir: &CStr) -> Result<Self::Dir, DirError> {
            self.opens += 1;
            match self.dirs.get(dir.to_bytes()) {
                Some(Ok(m)) => Ok(m.clone()),
                Some(Err(errno)) => Err(DirError::Failed(io::Error::from_raw_os_error(*errno))),
                None => Err(DirError::Missing(io::Error::from_raw_os_error(2))),
            }
        }
        fn lookup(&mut self, dir: &Self::Dir, token: &[u8]) -> Result<Lookup, DirError> {
            self.lookups += 1;
            Ok(dir
                .get(token)
                .map_or(Lookup::NotFound, |&mtime| Lookup::Found { mtime }))
        }
    }

    /// Runs rounds as the timer would (at each next due time) up to `until`; returns each
    /// round's time and result.
    fn run_until<S: Store>(
        reg: &mut Registry<u32>,
        store: &mut S,
        until: u64,
    ) -> Vec<(u64, Round)> {
        let mut rounds = Vec::new();
        while let Some(now) = reg.next_due_ms().filter(|&due| due <= until) {
            rounds.push((now, reg.round(now, 0, store)));
        }
        rounds
    }

    #[test]
    fn the_next_check_is_on_the_tokens_phase_past_the_window() {
        assert_eq!(window_ms(1000), 25);
        assert_eq!(window_ms(60_000), 25, "at most 25 ms");
        assert_eq!(window_ms(300), 7);
        assert_eq!(window_ms(39), 0);
        // Phase 250 of a 1 s interval: 250, 1250, 2250, ...
        assert_eq!(next_check_ms(0, 1000, 250), 250);
        assert_eq!(next_check_ms(224, 1000, 250), 250);
        assert_eq!(
            next_check_ms(225, 1000, 250),
            1250,
            "250 is within the window"
        );
        assert_eq!(
            next_check_ms(1000, 1000, 3250),
            1250,
            "the seed is taken modulo"
        );
        assert_eq!(next_check_ms(5, 1000, 3), 1003);
        assert_eq!(next_check_ms(0, 0, 7), 1, "an interval is at least 1 ms");
        assert_eq!(next_check_ms(u64::MAX - 5, 1000, 1), u64::MAX, "saturates");
    }

    #[test]
    fn phases_spread_the_tokens_across_the_interval() {
        let mut store = Fake::default();
        let files = (0..1000)
            .map(|i| (format!("t{i}").into_bytes(), 0))
            .collect();
        store.dirs.insert(b"/d".to_vec(), Ok(files));
        let mut reg = Registry::new();
        // 10,000 sessions over 1,000 tokens, all allowed at the same moment.
        for i in 0..10_000u32 {
            reg.track(
                i,
                format!("t{}", i % 1000).as_bytes(),
                rules(c"/d", 1000),
                0,
            );
        }
        let rounds = run_until(&mut reg, &mut store, 1025);
        // Every session checked in the first interval (a check up to 25 ms early may take
        // some a second time near its end)...
        assert!(reg.groups.iter().flatten().all(|g| g.due_ms > 1025));
        // ... each token once for all its sessions.
        for (_, r) in &rounds {
            assert_eq!(r.checked, 10 * r.lookups);
        }
        let most = rounds.iter().map(|(_, r)| r.lookups).max().unwrap();
        // 1,000 tokens over a 1 s interval with a 25 ms window: about 25 a round, at most
        // about 40 rounds.
        assert!(
            rounds.len() >= 20 && rounds.len() <= 42,
            "{} rounds",
            rounds.len()
        );
        assert!(most <= 100, "a round looked up {most} tokens");
        // Rounds come no closer than the window (one timer firing takes all of it).
        for w in rounds.windows(2) {
            assert!(w[1].0 > w[0].0 + 25, "{} then {}", w[0].0, w[1].0);
        }
    }

    #[test]
    fn sessions_sharing_a_token_share_every_round() {
        let mut store = Fake::default();
        let files = (0..10).map(|i| (format!("t{i}").into_bytes(), 0)).collect();
        store.dirs.insert(b"/d".to_vec(), Ok(files));
        let mut reg = Registry::new();
        // Tracked at scattered times, up to two intervals apart.
        for i in 0..100u32 {
            let token = format!("t{}", i % 10);
            reg.track(
                i,
                token.as_bytes(),
                rules(c"/d", 1000),
                u64::from(i) * 17 % 2000,
            );
        }
        // From then on, each token is looked up once per round it is due in, and once per
        // interval: its sessions all fall in the same round.
        for (_, r) in run_until(&mut reg, &mut store, 2025) {
            assert!(r.close.is_empty());
        }
        store.lookups = 0;
        let rounds = run_until(&mut reg, &mut store, 2025 + 3000);
        assert_eq!(store.lookups, 30, "10 tokens, 3 intervals");
        for (_, r) in &rounds {
            assert_eq!(
                r.checked,
                10 * r.lookups,
                "10 sessions per token, checked together"
            );
        }
    }

    #[test]
    fn a_removed_token_is_closed_within_the_interval_and_the_window() {
        for interval in [50u64, 300, 1000, 60_000] {
            for k in 0..40u64 {
                let mut store = Fake::default();
                let files = Map::from([(b"t".to_vec(), 0), (b"u".to_vec(), 0)]);
                store.dirs.insert(b"/d".to_vec(), Ok(files));
                let mut reg = Registry::new();
                let tracked_at = k * 7919 % interval;
                let id = reg
                    .track(1u32, b"t", rules(c"/d", interval), tracked_at)
                    .id();
                reg.track(2u32, b"u", rules(c"/d", interval), k);
                // Removed at a moment that walks across the interval, after a few rounds.
                let removed = tracked_at + 3 * interval + k * interval / 40 + 1;
                for (_, r) in run_until(&mut reg, &mut store, removed - 1) {
                    assert!(r.close.is_empty());
                }
                if let Some(Ok(files)) = store.dirs.get_mut(b"/d".as_slice()) {
                    files.remove(b"t".as_slice());
                }
                let rounds = run_until(&mut reg, &mut store, removed + 2 * interval);
                let (closed_at, _) = rounds
                    .iter()
                    .find(|(_, r)| r.close.contains(&(id, Ending::Revoked)))
                    .unwrap();
                assert!(
                    *closed_at >= removed && *closed_at <= removed + interval + window_ms(interval),
                    "interval {interval}: removed at {removed}, closed at {closed_at}"
                );
            }
        }
    }

    #[test]
    fn each_distinct_token_is_looked_up_once_per_round() {
        let mut store = Fake::default();
        let tokens: Map<Vec<u8>, i64> =
            (0..10).map(|i| (format!("t{i}").into_bytes(), 0)).collect();
        store.dirs.insert(b"/a".to_vec(), Ok(tokens.clone()));
        store.dirs.insert(b"/b".to_vec(), Ok(tokens));
        let mut reg = Registry::new();
        for i in 0..100u32 {
            let dir = if i % 2 == 0 { c"/a" } else { c"/b" };
            let token = format!("t{}", i % 10);
            reg.track(i, token.as_bytes(), rules(dir, 1000), 0);
        }
        let r = reg.round(1000, 0, &mut store);
        assert_eq!(r.checked, 100);
        assert!(r.close.is_empty() && r.unreadable.is_empty());
        assert_eq!(store.opens, 2, "one open per directory");
        assert_eq!(store.lookups, 10, "t0..t9, five per directory");
        assert_eq!(r.lookups, 10);
    }

    #[test]
    fn outcomes_revoked_expired_and_kept() {
        let now = 10_000;
        let mut store = Fake::default();
        let files = Map::from([(b"old".to_vec(), now - 100), (b"new".to_vec(), now - 5)]);
        store.dirs.insert(b"/d".to_vec(), Ok(files));
        let mut reg = Registry::new();
        let aged = Rules {
            dir: c"/d",
            max_age_secs: Some(60),
            interval_ms: 1000,
        };
        let gone = reg.track(1u32, b"gone", aged, 0).id();
        let old = reg.track(2u32, b"old", aged, 0).id();
        let new = reg.track(3u32, b"new", aged, 0).id();
        let old_no_max_age = reg.track(4u32, b"old", rules(c"/d", 1000), 0).id();
        let r = reg.round(1000, now, &mut store);
        let close: Map<_, _> = r.close.into_iter().collect();
        assert_eq!(close.get(&gone), Some(&Ending::Revoked));
        assert_eq!(close.get(&old), Some(&Ending::Expired));
        assert_eq!(close.get(&new), None);
        assert_eq!(close.get(&old_no_max_age), None, "max_age is per location");
        assert_eq!(store.lookups, 3);
    }

    #[test]
    fn a_missing_directory_closes_its_sessions_and_an_unreadable_one_keeps_them() {
        let mut store = Fake::default();
        store.dirs.insert(b"/locked".to_vec(), Err(13));
        let mut reg = Registry::new();
        let a = reg.track(1u32, b"t", rules(c"/gone", 1000), 0).id();
        let b = reg.track(2u32, b"u", rules(c"/gone", 1000), 0).id();
        reg.track(3u32, b"t", rules(c"/locked", 1000), 0);
        reg.track(4u32, b"u", rules(c"/locked", 1000), 0);
        let r = reg.round(1000, 0, &mut store);
        let closed: HashSet<_> = r.close.iter().copied().collect();
        assert_eq!(
            closed,
            HashSet::from([(a, Ending::DirMissing), (b, Ending::DirMissing)])
        );
        assert_eq!(r.unreadable.len(), 1, "one report per directory per round");
        assert_eq!(r.unreadable[0].dir.as_c_str(), c"/locked");
        assert_eq!(r.unreadable[0].error.raw_os_error(), Some(13));
        assert_eq!(store.lookups, 0);
    }

    #[test]
    fn an_unreadable_directory_is_reported_once_per_interval() {
        let mut store = Fake::default();
        store.dirs.insert(b"/locked".to_vec(), Err(13));
        let mut reg = Registry::new();
        for i in 0..200u32 {
            reg.track(i, format!("t{i}").as_bytes(), rules(c"/locked", 1000), 0);
        }
        let rounds = run_until(&mut reg, &mut store, 1025 + 3000);
        assert!(rounds.len() > 30, "{} rounds", rounds.len());
        let reported: Vec<u64> = rounds
            .iter()
            .filter(|(_, r)| !r.unreadable.is_empty())
            .map(|(now, _)| *now)
            .collect();
        // Four seconds: four or five reports, a second apart.
        assert!((4..=5).contains(&reported.len()), "{reported:?}");
        for w in reported.windows(2) {
            assert!(w[1] - w[0] >= 975 && w[1] - w[0] <= 1025, "{reported:?}");
        }
        assert!(rounds.iter().all(|(_, r)| r.close.is_empty()));
    }

    #[test]
    fn untracked_sessions_are_gone_and_ids_are_not_reused() {
        let mut reg = Registry::new();
        let a = reg.track(7u32, b"t", rules(c"/d", 1000), 0).id();
        assert_eq!(reg.handle(a), Some(7));
        assert!(reg.untrack(a));
        let taken = reg.track(8u32, b"t", rules(c"/d", 1000), 0).id();
        assert_eq!(reg.take(taken), Some(8));
        assert_eq!(reg.take(taken), None, "taken once");
        assert!(!reg.untrack(taken), "the pool cleanup finds nothing left");
        assert!(!reg.untrack(a));
        assert_eq!(reg.handle(a), None);
        assert!(reg.is_empty());
        assert_eq!(reg.next_due_ms(), None);
        let b = reg.track(7u32, b"t", rules(c"/d", 1000), 0).id();
        assert_ne!(a, b);
    }

    #[test]
    fn a_request_granted_again_keeps_one_session_under_the_latest_rules() {
        let mut store = Fake::default();
        store.dirs.insert(b"/first".to_vec(), Ok(Map::new()));
        let files = Map::from([(b"t".to_vec(), 0)]);
        store.dirs.insert(b"/second".to_vec(), Ok(files));
        let mut reg = Registry::new();
        let first = reg.track(1u32, b"t", rules(c"/first", 1000), 0);
        let Tracked::New(id) = first else {
            panic!("{first:?}")
        };
        let aged = Rules {
            dir: c"/second",
            max_age_secs: Some(60),
            interval_ms: 300,
        };
        let before = reg.due_ms(id).unwrap();
        assert!(before > 25 && before <= 1025, "{before}");
        assert_eq!(reg.track(1u32, b"t", aged, 100), Tracked::Updated(id));
        assert_eq!(reg.len(), 1, "one session per request");
        // Rescheduled on the new token's phase of the new interval: within 300 ms + 7 ms.
        let due = reg.due_ms(id).unwrap();
        assert!(due > 107 && due <= 407, "{due}");
        assert_eq!(
            reg.next_due_ms(),
            Some(due),
            "the old schedule entry is gone"
        );
        let group = reg.sessions[&id].group;
        let seed = reg.phase_seed(reg.groups[group].as_ref().unwrap().token);
        assert_eq!(due, next_check_ms(100, 300, seed));
        // Checked against the second location's directory, where the token still is (the
        // first one's is empty): kept, and looked up once.
        let r = reg.round(due, 30, &mut store);
        assert!(r.close.is_empty(), "{r:?}");
        assert_eq!((r.checked, r.lookups, store.opens), (1, 1, 1));
        assert_eq!(reg.next_due_ms(), Some(due + 300));
        // ... and with its max_age.
        let r = reg.round(due + 300, 100, &mut store);
        assert_eq!(r.close, vec![(id, Ending::Expired)]);
        // The first token slot was freed when the session moved: nothing else is left.
        assert!(reg.untrack(id));
        assert!(reg.is_empty());
        assert!(reg.tokens.iter().all(Option::is_none), "{:?}", reg.tokens);
        assert!(reg.token_index.is_empty() && reg.by_handle.is_empty());
        assert!(reg.schedule.is_empty() && reg.group_index.is_empty());
        assert!(reg.groups.iter().all(Option::is_none));
        // The request is tracked anew once its session is gone.
        assert!(matches!(
            reg.track(1u32, b"t", rules(c"/first", 1000), 700),
            Tracked::New(other) if other != id
        ));
    }

    #[test]
    fn a_stale_id_untracks_nothing() {
        let mut reg = Registry::new();
        let a = reg.track(1u32, b"t", rules(c"/d", 1000), 0).id();
        // Taken for closing; the request stays (an HTTP/2 stream flushing) and is granted
        // again before its pool goes: a new session, whose id differs.
        assert_eq!(reg.take(a), Some(1));
        let b = reg.track(1u32, b"t", rules(c"/d", 1000), 0);
        assert!(matches!(b, Tracked::New(id) if id != a), "{b:?}");
        // The first session's cleanup, late, leaves the newer session alone.
        assert!(!reg.untrack(a));
        assert_eq!(reg.handle(b.id()), Some(1));
        assert_eq!(
            reg.track(1u32, b"t", rules(c"/d", 1000), 0),
            Tracked::Updated(b.id())
        );
        // Granted again with the same token and rules: still one group, one hold on the slot.
        assert_eq!(reg.groups.iter().flatten().count(), 1);
        assert_eq!(
            reg.tokens
                .iter()
                .flatten()
                .map(|t| t.sessions)
                .sum::<usize>(),
            1
        );
        assert!(reg.untrack(b.id()));
        assert!(!reg.untrack(b.id()), "untracked once");
        assert!(reg.is_empty() && reg.by_handle.is_empty());
    }

    #[test]
    fn a_token_slot_lives_while_a_session_holds_it() {
        let mut store = Fake::default();
        let files = Map::from([(b"b".to_vec(), 0)]);
        store.dirs.insert(b"/d".to_vec(), Ok(files));
        let mut reg = Registry::new();
        let a1 = reg.track(1u32, b"a", rules(c"/d", 1000), 0).id();
        let a2 = reg.track(2u32, b"a", rules(c"/d", 1000), 0).id();
        reg.untrack(a1);
        let r = reg.round(1000, 0, &mut store);
        assert_eq!(
            r.close,
            vec![(a2, Ending::Revoked)],
            "a2 still holds token a"
        );
        reg.untrack(a2);
        // The freed slot is reused for another token; nothing of "a" is left in it.
        let b = reg.track(3u32, b"b", rules(c"/d", 1000), 1000).id();
        let due = reg.due_ms(b).unwrap();
        assert!(due > 1025 && due <= 2025, "{due}");
        let r = reg.round(due, 0, &mut store);
        assert!(r.close.is_empty(), "{r:?}");
        assert_eq!((r.checked, r.lookups), (1, 1));
    }

    #[test]
    fn endings_map_to_statuses_and_lines() {
        assert_eq!(Ending::Revoked.status().as_str(), "session_revoked");
        assert_eq!(Ending::DirMissing.status().as_str(), "session_revoked");
        assert_eq!(Ending::Expired.status().as_str(), "session_expired");
        assert!(Ending::DirMissing
            .message()
            .ends_with("token directory missing"));
    }

    #[test]
    fn fresh_store_reads_the_directory_as_it_is_now() {
        let d = tempfile::tempdir().unwrap();
        let dir = cdir(&d.path().join("tokens"));
        fs::create_dir(d.path().join("tokens")).unwrap();
        fs::write(d.path().join("tokens/keep"), "").unwrap();
        fs::write(d.path().join("tokens/drop"), "").unwrap();
        std::os::unix::fs::symlink("keep", d.path().join("tokens/link")).unwrap();
        let old = fs::File::options()
            .write(true)
            .open(d.path().join("tokens/keep"))
            .unwrap();
        let mut reg = Registry::new();
        let aged = Rules {
            dir: &dir,
            max_age_secs: Some(60),
            interval_ms: 1000,
        };
        let keep = reg.track(1u32, b"keep", aged, 0).id();
        let drop = reg.track(2u32, b"drop", aged, 0).id();
        let link = reg.track(3u32, b"link", aged, 0).id();
        fs::remove_file(d.path().join("tokens/drop")).unwrap();
        let r = reg.round(1000, now_unix(), &mut FreshStore);
        let close: Map<_, _> = r.close.into_iter().collect();
        assert_eq!(close.len(), 2);
        assert_eq!(close.get(&drop), Some(&Ending::Revoked));
        assert_eq!(
            close.get(&link),
            Some(&Ending::Revoked),
            "symlinks never count"
        );
        reg.untrack(drop);
        reg.untrack(link);

        old.set_modified(SystemTime::now() - Duration::from_secs(120))
            .unwrap();
        let r = reg.round(2000, now_unix(), &mut FreshStore);
        assert_eq!(r.close, vec![(keep, Ending::Expired)]);
        old.set_modified(SystemTime::now()).unwrap();
        let r = reg.round(3000, now_unix(), &mut FreshStore);
        assert!(r.close.is_empty(), "touch renews the lease");

        fs::rename(d.path().join("tokens"), d.path().join("moved")).unwrap();
        let r = reg.round(4000, now_unix(), &mut FreshStore);
        assert_eq!(r.close, vec![(keep, Ending::DirMissing)]);
        fs::create_dir(d.path().join("tokens")).unwrap();
        let r = reg.round(5000, now_unix(), &mut FreshStore);
        assert_eq!(
            r.close,
            vec![(keep, Ending::Revoked)],
            "a recreated directory is read anew"
        );
    }
}
