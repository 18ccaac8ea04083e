//! Open sessions and the rounds that re-check their tokens (`wcs_token_auth_session_check`).
//!
//! A session is a request the module allowed, from then until it ends. Each token has its own
//! phase within the interval, so the checks of different tokens are spread across it (a round
//! never stalls the worker with every session at once) while the sessions that share a token
//! share their rounds. A round reads the directories fresh, never the cache: one `open` per
//! directory and one look-up per distinct token due. A file token is looked up in its token
//! directory (`fstatat`); a signed token ends at its `exp` (no look-up at all) and is looked
//! up by its revocation names in the revocation directory, when the location has one. The
//! shell closes what a round says to close; this module never touches a request.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::{CStr, CString};
use std::hash::{BuildHasher, Hash};
use std::io;
use std::os::fd::{AsFd, OwnedFd};

use crate::auth::Status;
use crate::expiry;
use crate::signed::{self, Claims};
use crate::store::{self, DirError, Lookup};
use crate::token;

/// The maps' hash, fast because rounds and tracking use it often. Ids, group and slot
/// indices are the registry's own, handles are the shell's request addresses, and tokens and
/// claims (hashed only when a session is tracked or ends) passed the access check, so they name
/// files the operator created or were signed by the operator's backend: nobody can choose keys
/// to fill a bucket.
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
    /// The token file is gone (or is no longer a regular file), or the signed token's `jti.`
    /// or `sub.` file revokes it.
    Revoked,
    /// The token file is older than the location's `max_age`, or the signed token's `exp`
    /// (plus leeway) has passed.
    Expired,
    /// The token directory itself is gone (ENOENT, ENOTDIR).
    DirMissing,
    /// The revocation directory itself is gone: nothing can say that a signed token is not
    /// revoked, as at the handshake.
    RevocationDirMissing,
}

impl Ending {
    /// The value `$wcs_token_auth_status` takes for the closed request.
    pub fn status(self) -> Status {
        match self {
            Ending::Revoked | Ending::DirMissing | Ending::RevocationDirMissing => {
                Status::SessionRevoked
            }
            Ending::Expired => Status::SessionExpired,
        }
    }

    /// The error-log line; the token and its claims never appear in it.
    pub fn message(self) -> &'static str {
        match self {
            Ending::Revoked => "wcs_token_auth: closed session: token revoked",
            Ending::Expired => "wcs_token_auth: closed session: token expired",
            Ending::DirMissing => "wcs_token_auth: closed session: token directory missing",
            Ending::RevocationDirMissing => {
                "wcs_token_auth: closed session: revocation directory missing"
            }
        }
    }
}

/// Where a round reads tokens from; [`FreshStore`] in the module, a fake in tests.
pub trait Store {
    type Dir;
    fn open_dir(&mut self, dir: &CStr) -> Result<Self::Dir, DirError>;
    /// A file token in its token directory.
    fn lookup(&mut self, dir: &Self::Dir, token: &[u8]) -> Result<Lookup, DirError>;
    /// A signed token's revocation names in the revocation directory.
    fn is_revoked(&mut self, dir: &Self::Dir, claims: &Claims) -> Result<bool, DirError>;
}

/// The directories as they are now: opened by path each round, so a directory that was
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

    fn is_revoked(&mut self, dir: &OwnedFd, claims: &Claims) -> Result<bool, DirError> {
        signed::is_revoked(dir.as_fd(), claims)
    }
}

/// The two kinds of directory a round reads; they differ in their log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirKind {
    /// `wcs_token_auth DIR`: file tokens.
    Tokens,
    /// `wcs_token_auth_revoked DIR`: revocations of signed tokens.
    Revocations,
}

impl DirKind {
    /// How log lines name it: `cannot read token directory "/path"`.
    pub fn name(self) -> &'static str {
        match self {
            DirKind::Tokens => "token directory",
            DirKind::Revocations => "revocation directory",
        }
    }
}

/// What a session is checked against, as the location that allowed it says.
#[derive(Debug, Clone, Copy)]
pub enum Check<'a> {
    /// A file token: its file in `dir`, and its age against `max_age_secs`.
    File {
        dir: &'a CStr,
        max_age_secs: Option<u64>,
    },
    /// A signed token, by its verified claims: it ends at `claims.expires_at`, and when a
    /// file in `revoked` revokes it (only `exp` applies without a revocation directory).
    Signed {
        revoked: Option<&'a CStr>,
        claims: &'a Claims,
    },
}

/// The location's session rules.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    pub check: Check<'a>,
    /// At least 1.
    pub interval_ms: u64,
}

/// The time, on the monotonic clock that schedules rounds and on the wall clock that token
/// ages and `exp` are measured by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub ms: u64,
    /// Milliseconds since the epoch.
    pub unix_ms: i64,
}

impl Now {
    pub fn unix_secs(self) -> i64 {
        self.unix_ms.div_euclid(1000)
    }

    /// When, on the monotonic clock, the wall clock reaches `unix_secs`; `None` if it has.
    fn when(self, unix_secs: i64) -> Option<u64> {
        let left = unix_secs.checked_mul(1000)?.checked_sub(self.unix_ms)?;
        let left = u64::try_from(left).ok().filter(|&l| l > 0)?;
        Some(self.ms.saturating_add(left))
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

/// A signed token's claims as a map key.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SignedClaims(Claims);

impl Hash for SignedClaims {
    fn hash<T: std::hash::Hasher>(&self, state: &mut T) {
        let c = &self.0;
        (c.expires_at, c.iat, &c.jti_file, &c.sub_file).hash(state);
    }
}

/// What a token slot checks, with directories as indices in [`Registry::dirs`]: a file
/// token's name in its token directory, or a signed token's claims (tokens with the same
/// claims are checked alike, so they share a slot) and its revocation directory.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Subject {
    File {
        dir: usize,
        token: Box<[u8]>,
    },
    Signed {
        revoked: Option<usize>,
        claims: SignedClaims,
    },
}

impl Subject {
    /// The directory a round opens for it.
    fn dir(&self) -> Option<usize> {
        match self {
            Subject::File { dir, .. } => Some(*dir),
            Subject::Signed { revoked, .. } => *revoked,
        }
    }

    fn expires_at(&self) -> Option<i64> {
        match self {
            Subject::File { .. } => None,
            Subject::Signed { claims, .. } => Some(claims.0.expires_at),
        }
    }
}

/// A distinct token and how many sessions hold it.
#[derive(Debug)]
struct TokenSlot {
    subject: Subject,
    sessions: usize,
    /// Spreads the token's checks: its phase within an interval is this modulo the interval.
    phase_seed: u64,
}

impl TokenSlot {
    /// When a group of this token under `interval_ms` is next checked: on the token's phase,
    /// or at the signed token's `exp` if that comes first, so that the session ends then and
    /// not up to an interval later (a timer firing of its own, once in the token's life). The
    /// phase stays as well: it is when revocations are seen, and it bounds the close if the
    /// wall clock steps past `exp` ahead of the monotonic one.
    fn next_check_ms(&self, now: Now, interval_ms: u64) -> u64 {
        let on_phase = next_check_ms(now.ms, interval_ms, self.phase_seed);
        match self.subject.expires_at().and_then(|exp| now.when(exp)) {
            Some(at_exp) => on_phase.min(at_exp),
            None => on_phase,
        }
    }
}

#[derive(Debug)]
struct Dir {
    path: CString,
    kind: DirKind,
    /// When it was last reported unreadable.
    reported_ms: Option<u64>,
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
    /// Distinct directories seen; only as many as the configurations name.
    dirs: Vec<Dir>,
    /// Token slots; `None` is free (listed in `free`).
    tokens: Vec<Option<TokenSlot>>,
    free: Vec<usize>,
    /// Slot of each subject.
    token_index: HashMap<Subject, usize, Hasher>,
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

/// What a round learnt about one token slot.
#[derive(Debug, Clone, Copy)]
enum Answer {
    NotAsked,
    Found(i64),
    Gone,
    /// A signed token no file revokes.
    NotRevoked,
}

/// A directory whose sessions a round could not check, and kept.
#[derive(Debug)]
pub struct Unreadable {
    pub dir: CString,
    pub kind: DirKind,
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
    /// Token lookups made (one per distinct token of a readable directory; none for a signed
    /// token past its `exp`).
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

    /// Tracks the request `handle`, allowed at `now` with `token` (a file token's name; a
    /// signed token is tracked by the claims in `rules`, its bytes are not kept). A request
    /// tracked already keeps its one session, which takes the new token and rules: the request
    /// is now served by the location that granted it last.
    pub fn track(&mut self, handle: H, token: &[u8], rules: Rules<'_>, now: Now) -> Tracked {
        let (subject, max_age_secs) = match rules.check {
            Check::File { dir, max_age_secs } => {
                let dir = self.dir_index(dir, DirKind::Tokens);
                let token = token.into();
                (Subject::File { dir, token }, max_age_secs)
            }
            Check::Signed { revoked, claims } => {
                let revoked = revoked.map(|d| self.dir_index(d, DirKind::Revocations));
                let claims = SignedClaims(claims.clone());
                (Subject::Signed { revoked, claims }, None)
            }
        };
        let slot = self.hold_token(subject);
        let key = (slot, rules.interval_ms.max(1), max_age_secs);
        if let Some(&id) = self.by_handle.get(&handle) {
            if let Some(old) = self.sessions.get(&id).map(|s| s.group) {
                let group = self.join(key, id, now);
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
        let group = self.join(key, id, now);
        self.sessions.insert(id, Session { handle, group });
        self.by_handle.insert(handle, id);
        Tracked::New(id)
    }

    /// Adds session `id` (holding the token slot in `key` already) to its group, made and
    /// scheduled if new; a group that exists keeps its schedule.
    fn join(&mut self, key: GroupKey, id: SessionId, now: Now) -> usize {
        let index = match self.group_index.get(&key) {
            Some(&g) => g,
            None => {
                let (token, interval_ms, max_age_secs) = key;
                let due_ms = self
                    .tokens
                    .get(token)
                    .and_then(Option::as_ref)
                    .map_or(now.ms, |slot| slot.next_check_ms(now, interval_ms));
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

    #[cfg(test)]
    fn phase_seed(&self, slot: usize) -> u64 {
        self.tokens
            .get(slot)
            .and_then(Option::as_ref)
            .map_or(0, |t| t.phase_seed)
    }

    /// The index of directory `path` of `kind`, interned if new.
    fn dir_index(&mut self, path: &CStr, kind: DirKind) -> usize {
        let known = self
            .dirs
            .iter()
            .position(|d| d.kind == kind && *d.path == *path);
        known.unwrap_or_else(|| {
            self.dirs.push(Dir {
                path: path.to_owned(),
                kind,
                reported_ms: None,
            });
            self.dirs.len() - 1
        })
    }

    /// The slot of `subject`, interned if new, with one more session holding it.
    fn hold_token(&mut self, subject: Subject) -> usize {
        let slot = match self.token_index.get(&subject) {
            Some(&slot) => slot,
            None => {
                let new = Some(TokenSlot {
                    subject: subject.clone(),
                    sessions: 0,
                    phase_seed: self.token_index.hasher().hash_one(&subject),
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
                self.token_index.insert(subject, slot);
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
                self.token_index.remove(&t.subject);
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

    /// Checks every session due at `now` or within its window after it and schedules its next
    /// check. Nothing is removed: the caller closes what [`Round::close`] lists, and untracks
    /// each session when its request ends.
    pub fn round<S: Store>(&mut self, now: Now, store: &mut S) -> Round {
        let now_ms = now.ms;
        let unix_secs = now.unix_secs();
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
            taken.push((due_ms, g, slot.next_check_ms(now, group.interval_ms)));
            round.checked += group.sessions.len();
            if slot
                .subject
                .expires_at()
                .is_some_and(|exp| unix_secs >= exp)
            {
                // Past `exp`: no directory can say anything more about it.
                let close = group.sessions.iter().map(|&id| (id, Ending::Expired));
                round.close.extend(close);
            } else if let Some(list) = slot.subject.dir().and_then(|d| due.get_mut(d)) {
                list.push(g);
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
                match self.dirs.get_mut(dir).map(|d| &mut d.reported_ms) {
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
        let Some(Dir { path, kind, .. }) = self.dirs.get(dir) else {
            return;
        };
        let kind = *kind;
        let groups = list
            .iter()
            .filter_map(|&g| self.groups.get(g).and_then(Option::as_ref));
        let handle = match store.open_dir(path) {
            Ok(h) => h,
            Err(DirError::Missing(_)) => {
                let ending = match kind {
                    DirKind::Tokens => Ending::DirMissing,
                    DirKind::Revocations => Ending::RevocationDirMissing,
                };
                for group in groups {
                    round
                        .close
                        .extend(group.sessions.iter().map(|&id| (id, ending)));
                }
                return;
            }
            Err(DirError::Failed(error)) => {
                let dir = path.clone();
                round.unreadable.push(Unreadable { dir, kind, error });
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
                let asked = match &slot.subject {
                    Subject::File { token, .. } => store.lookup(&handle, token).map(|l| match l {
                        Lookup::Found { mtime } => Answer::Found(mtime),
                        Lookup::NotFound => Answer::Gone,
                    }),
                    Subject::Signed { claims, .. } => {
                        store
                            .is_revoked(&handle, &claims.0)
                            .map(|revoked| match revoked {
                                true => Answer::Gone,
                                false => Answer::NotRevoked,
                            })
                    }
                };
                *answer = match asked {
                    Ok(a) => a,
                    Err(DirError::Missing(error) | DirError::Failed(error)) => {
                        // The directory turned unreadable under us: keep them all.
                        let dir = path.clone();
                        round.unreadable.push(Unreadable { dir, kind, error });
                        return;
                    }
                };
            }
            let ending = match *answer {
                Answer::Gone => Ending::Revoked,
                Answer::Found(m) if !expiry::is_fresh(m, unix_secs, group.max_age_secs) => {
                    Ending::Expired
                }
                Answer::Found(_) | Answer::NotAsked | Answer::NotRevoked => continue,
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
            check: Check::File {
                dir,
                max_age_secs: None,
            },
            interval_ms,
        }
    }

    /// `ms` on the monotonic clock, the epoch on the wall clock.
    fn at(ms: u64) -> Now {
        at_unix(ms, 0)
    }

    /// `ms` on the monotonic clock, `unix_secs` on the wall clock.
    fn at_unix(ms: u64, unix_secs: i64) -> Now {
        Now {
            ms,
            unix_ms: unix_secs * 1000,
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
        /// The documented rule, on the fake's file names: `jti.X`, or `sub.Y` not older than
        /// `iat`.
        fn is_revoked(&mut self, dir: &Self::Dir, claims: &Claims) -> Result<bool, DirError> {
            self.lookups += 1;
            let has = |name: &Option<String>| name.as_ref().and_then(|n| dir.get(n.as_bytes()));
            let by_sub = has(&claims.sub_file).is_some_and(|&m| claims.iat.is_none_or(|i| m >= i));
            Ok(has(&claims.jti_file).is_some() || by_sub)
        }
    }

    /// Runs rounds as the timer would (at each next due time) up to `until`; returns each
    /// round's time and result.
    fn run_until<S: Store>(
        reg: &mut Registry<u32>,
        store: &mut S,
        until: u64,
    ) -> Vec<(u64, Round)> {
        run_with_wall(reg, store, until, 0, false)
    }

    /// As [`run_until`], with the wall clock at `wall_ms` when the monotonic one is at 0; if
    /// `take`, closed sessions are taken, as the shell does.
    fn run_with_wall<S: Store>(
        reg: &mut Registry<u32>,
        store: &mut S,
        until: u64,
        wall_ms: i64,
        take: bool,
    ) -> Vec<(u64, Round)> {
        let mut rounds = Vec::new();
        while let Some(now) = reg.next_due_ms().filter(|&due| due <= until) {
            let unix_ms = wall_ms + now as i64;
            let round = reg.round(Now { ms: now, unix_ms }, store);
            for &(id, _) in round.close.iter().filter(|_| take) {
                reg.take(id);
            }
            rounds.push((now, round));
        }
        rounds
    }

    fn claims(expires_at: i64, iat: Option<i64>, jti: &str, sub: &str) -> Claims {
        Claims {
            expires_at,
            iat,
            jti_file: Some(format!("jti.{jti}")),
            sub_file: Some(format!("sub.{sub}")),
        }
    }

    fn signed<'a>(revoked: Option<&'a CStr>, claims: &'a Claims, interval_ms: u64) -> Rules<'a> {
        Rules {
            check: Check::Signed { revoked, claims },
            interval_ms,
        }
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
                at(0),
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
                at(u64::from(i) * 17 % 2000),
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
                    .track(1u32, b"t", rules(c"/d", interval), at(tracked_at))
                    .id();
                reg.track(2u32, b"u", rules(c"/d", interval), at(k));
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
            reg.track(i, token.as_bytes(), rules(dir, 1000), at(0));
        }
        let r = reg.round(at_unix(1000, 0), &mut store);
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
            check: Check::File {
                dir: c"/d",
                max_age_secs: Some(60),
            },
            interval_ms: 1000,
        };
        let gone = reg.track(1u32, b"gone", aged, at(0)).id();
        let old = reg.track(2u32, b"old", aged, at(0)).id();
        let new = reg.track(3u32, b"new", aged, at(0)).id();
        let old_no_max_age = reg.track(4u32, b"old", rules(c"/d", 1000), at(0)).id();
        let r = reg.round(at_unix(1000, now), &mut store);
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
        let a = reg.track(1u32, b"t", rules(c"/gone", 1000), at(0)).id();
        let b = reg.track(2u32, b"u", rules(c"/gone", 1000), at(0)).id();
        reg.track(3u32, b"t", rules(c"/locked", 1000), at(0));
        reg.track(4u32, b"u", rules(c"/locked", 1000), at(0));
        let r = reg.round(at_unix(1000, 0), &mut store);
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
            reg.track(
                i,
                format!("t{i}").as_bytes(),
                rules(c"/locked", 1000),
                at(0),
            );
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
        let a = reg.track(7u32, b"t", rules(c"/d", 1000), at(0)).id();
        assert_eq!(reg.handle(a), Some(7));
        assert!(reg.untrack(a));
        let taken = reg.track(8u32, b"t", rules(c"/d", 1000), at(0)).id();
        assert_eq!(reg.take(taken), Some(8));
        assert_eq!(reg.take(taken), None, "taken once");
        assert!(!reg.untrack(taken), "the pool cleanup finds nothing left");
        assert!(!reg.untrack(a));
        assert_eq!(reg.handle(a), None);
        assert!(reg.is_empty());
        assert_eq!(reg.next_due_ms(), None);
        let b = reg.track(7u32, b"t", rules(c"/d", 1000), at(0)).id();
        assert_ne!(a, b);
    }

    #[test]
    fn a_request_granted_again_keeps_one_session_under_the_latest_rules() {
        let mut store = Fake::default();
        store.dirs.insert(b"/first".to_vec(), Ok(Map::new()));
        let files = Map::from([(b"t".to_vec(), 0)]);
        store.dirs.insert(b"/second".to_vec(), Ok(files));
        let mut reg = Registry::new();
        let first = reg.track(1u32, b"t", rules(c"/first", 1000), at(0));
        let Tracked::New(id) = first else {
            panic!("{first:?}")
        };
        let aged = Rules {
            check: Check::File {
                dir: c"/second",
                max_age_secs: Some(60),
            },
            interval_ms: 300,
        };
        let before = reg.due_ms(id).unwrap();
        assert!(before > 25 && before <= 1025, "{before}");
        assert_eq!(reg.track(1u32, b"t", aged, at(100)), Tracked::Updated(id));
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
        let r = reg.round(at_unix(due, 30), &mut store);
        assert!(r.close.is_empty(), "{r:?}");
        assert_eq!((r.checked, r.lookups, store.opens), (1, 1, 1));
        assert_eq!(reg.next_due_ms(), Some(due + 300));
        // ... and with its max_age.
        let r = reg.round(at_unix(due + 300, 100), &mut store);
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
            reg.track(1u32, b"t", rules(c"/first", 1000), at(700)),
            Tracked::New(other) if other != id
        ));
    }

    #[test]
    fn a_stale_id_untracks_nothing() {
        let mut reg = Registry::new();
        let a = reg.track(1u32, b"t", rules(c"/d", 1000), at(0)).id();
        // Taken for closing; the request stays (an HTTP/2 stream flushing) and is granted
        // again before its pool goes: a new session, whose id differs.
        assert_eq!(reg.take(a), Some(1));
        let b = reg.track(1u32, b"t", rules(c"/d", 1000), at(0));
        assert!(matches!(b, Tracked::New(id) if id != a), "{b:?}");
        // The first session's cleanup, late, leaves the newer session alone.
        assert!(!reg.untrack(a));
        assert_eq!(reg.handle(b.id()), Some(1));
        assert_eq!(
            reg.track(1u32, b"t", rules(c"/d", 1000), at(0)),
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
        let a1 = reg.track(1u32, b"a", rules(c"/d", 1000), at(0)).id();
        let a2 = reg.track(2u32, b"a", rules(c"/d", 1000), at(0)).id();
        reg.untrack(a1);
        let r = reg.round(at_unix(1000, 0), &mut store);
        assert_eq!(
            r.close,
            vec![(a2, Ending::Revoked)],
            "a2 still holds token a"
        );
        reg.untrack(a2);
        // The freed slot is reused for another token; nothing of "a" is left in it.
        let b = reg.track(3u32, b"b", rules(c"/d", 1000), at(1000)).id();
        let due = reg.due_ms(b).unwrap();
        assert!(due > 1025 && due <= 2025, "{due}");
        let r = reg.round(at_unix(due, 0), &mut store);
        assert!(r.close.is_empty(), "{r:?}");
        assert_eq!((r.checked, r.lookups), (1, 1));
    }

    #[test]
    fn endings_map_to_statuses_and_lines() {
        assert_eq!(Ending::Revoked.status().as_str(), "session_revoked");
        assert_eq!(Ending::DirMissing.status().as_str(), "session_revoked");
        assert_eq!(
            Ending::RevocationDirMissing.status().as_str(),
            "session_revoked"
        );
        assert_eq!(Ending::Expired.status().as_str(), "session_expired");
        assert!(Ending::DirMissing
            .message()
            .ends_with("closed session: token directory missing"));
        assert_eq!(
            Ending::RevocationDirMissing.message(),
            "wcs_token_auth: closed session: revocation directory missing"
        );
        assert_eq!(DirKind::Tokens.name(), "token directory");
        assert_eq!(DirKind::Revocations.name(), "revocation directory");
    }

    #[test]
    fn a_signed_session_ends_the_moment_its_exp_is_reached_with_no_lookup() {
        for interval in [50u64, 1000, 60_000] {
            let mut store = Fake::default();
            store.dirs.insert(b"/r".to_vec(), Ok(Map::new()));
            let mut reg = Registry::new();
            // Allowed at 95.5 s on the wall clock; expires at 100 s, 4.5 s later.
            let wall_ms = 95_500;
            let c = claims(100, Some(90), "j", "s");
            let start = Now {
                ms: 0,
                unix_ms: wall_ms,
            };
            let revoked = reg.track(1u32, b"x", signed(Some(c"/r"), &c, interval), start);
            let bare = reg.track(2u32, b"x", signed(None, &c, interval), start);
            let rounds = run_with_wall(&mut reg, &mut store, 10_000, wall_ms, true);
            let closing: Vec<_> = rounds.iter().filter(|(_, r)| !r.close.is_empty()).collect();
            // A round at 4.5 s, when the wall clock reads 100 s: not a millisecond before, and
            // not on the next phase (up to a minute later).
            assert_eq!(closing.len(), 1, "interval {interval}: {rounds:?}");
            let (closed_at, r) = closing[0];
            assert_eq!(*closed_at, 4500, "interval {interval}");
            let mut close = r.close.clone();
            close.sort_by_key(|&(id, _)| id);
            assert_eq!(
                close,
                vec![
                    (revoked.id(), Ending::Expired),
                    (bare.id(), Ending::Expired)
                ]
            );
            assert_eq!(r.lookups, 0, "exp needs no lookup");
            // Before it, the revocation directory was read on the token's phase; the session
            // without one never opened anything.
            let before = rounds.iter().filter(|(t, _)| *t < 4500);
            let lookups: usize = before.map(|(_, r)| r.lookups).sum();
            assert_eq!(store.opens, lookups);
            if interval < 4500 {
                assert!(lookups >= (4500 / interval - 1) as usize, "{lookups}");
            }
        }
    }

    #[test]
    fn a_round_on_a_lagging_wall_clock_checks_exp_again_when_it_is_reached() {
        let mut store = Fake::default();
        let mut reg = Registry::new();
        let c = claims(100, None, "j", "s");
        let id = reg
            .track(1u32, b"x", signed(None, &c, 60_000), at_unix(0, 95))
            .id();
        // Its phase may come first: rounds then, on a wall clock in step, close nothing.
        while let Some(due) = reg.due_ms(id).filter(|&due| due < 5000) {
            let r = reg.round(
                Now {
                    ms: due,
                    unix_ms: 95_000 + due as i64,
                },
                &mut store,
            );
            assert!(r.close.is_empty(), "{r:?}");
        }
        assert_eq!(reg.due_ms(id), Some(5000));
        // The timer fires at 5 s, but the wall clock reads 99.998 s.
        let r = reg.round(
            Now {
                ms: 5000,
                unix_ms: 99_998,
            },
            &mut store,
        );
        assert!(r.close.is_empty(), "{r:?}");
        assert_eq!(
            reg.due_ms(id),
            Some(5002),
            "when the wall clock reaches exp"
        );
        let r = reg.round(
            Now {
                ms: 5002,
                unix_ms: 100_000,
            },
            &mut store,
        );
        assert_eq!(r.close, vec![(id, Ending::Expired)]);
        // A far `exp` falls back to the phase.
        let far = claims(i64::MAX, None, "j", "s");
        let id = reg
            .track(2u32, b"x", signed(None, &far, 1000), at_unix(0, 95))
            .id();
        let due = reg.due_ms(id).unwrap();
        assert!(due > 25 && due <= 1025, "{due}");
    }

    #[test]
    fn a_revocation_file_closes_the_signed_sessions_it_names_and_no_other() {
        let mut store = Fake::default();
        let files = Map::from([(b"sub.old".to_vec(), 49)]);
        store.dirs.insert(b"/r".to_vec(), Ok(files));
        let mut reg = Registry::new();
        let (a, b) = (
            claims(1000, Some(50), "a", "alice"),
            claims(1000, Some(50), "b", "bob"),
        );
        let later = claims(1000, Some(60), "c", "alice");
        let old = claims(1000, Some(50), "d", "old");
        let mut ids = Vec::new();
        for (h, c) in [(1u32, &a), (2, &a), (3, &b), (4, &later), (5, &old)] {
            ids.push(reg.track(h, b"x", signed(Some(c"/r"), c, 1000), at(0)).id());
        }
        let r = reg.round(at_unix(1000, 55), &mut store);
        assert!(
            r.close.is_empty(),
            "a sub. file older than iat revokes nothing: {r:?}"
        );
        assert_eq!(
            (r.checked, r.lookups, store.opens),
            (5, 4, 1),
            "one lookup per claims"
        );
        // jti.a revokes both sessions of token a; sub.alice at 55 revokes alice's token
        // issued at 50, not the one issued at 60.
        if let Some(Ok(files)) = store.dirs.get_mut(b"/r".as_slice()) {
            files.insert(b"jti.a".to_vec(), 55);
            files.insert(b"sub.bob".to_vec(), 55);
        }
        let r = reg.round(at_unix(2000, 56), &mut store);
        let closed: HashSet<_> = r.close.iter().copied().collect();
        let expected = [ids[0], ids[1], ids[2]].map(|id| (id, Ending::Revoked));
        assert_eq!(closed, HashSet::from(expected));
        for id in &ids[..3] {
            reg.untrack(*id);
        }
        if let Some(Ok(files)) = store.dirs.get_mut(b"/r".as_slice()) {
            files.insert(b"sub.alice".to_vec(), 60);
        }
        let r = reg.round(at_unix(3000, 61), &mut store);
        assert_eq!(
            r.close,
            vec![(ids[3], Ending::Revoked)],
            "mtime not before iat"
        );
    }

    #[test]
    fn a_missing_revocation_directory_closes_signed_sessions_and_an_unreadable_one_keeps_them() {
        let mut store = Fake::default();
        store.dirs.insert(b"/locked".to_vec(), Err(13));
        let mut reg = Registry::new();
        let c = claims(1000, None, "j", "s");
        // "/gone" is both a token directory and a revocation directory: the lines differ.
        let file = reg.track(1u32, b"t", rules(c"/gone", 1000), at(0)).id();
        let revoked = reg
            .track(2u32, b"x", signed(Some(c"/gone"), &c, 1000), at(0))
            .id();
        let kept = reg
            .track(3u32, b"x", signed(Some(c"/locked"), &c, 1000), at(0))
            .id();
        let bare = reg.track(4u32, b"x", signed(None, &c, 1000), at(0)).id();
        let r = reg.round(at_unix(1000, 10), &mut store);
        let closed: HashSet<_> = r.close.iter().copied().collect();
        assert_eq!(
            closed,
            HashSet::from([
                (file, Ending::DirMissing),
                (revoked, Ending::RevocationDirMissing)
            ])
        );
        assert_eq!(r.checked, 4);
        assert_eq!(r.unreadable.len(), 1);
        let u = &r.unreadable[0];
        assert_eq!(
            (u.dir.as_c_str(), u.kind),
            (c"/locked", DirKind::Revocations)
        );
        assert_eq!(u.error.raw_os_error(), Some(13));
        assert_eq!(
            store.opens, 3,
            "two /gone (one per kind), /locked; none for {bare}"
        );
        assert_eq!(reg.handle(kept), Some(3));
        // Reported once per interval, while the sessions stay.
        // Four more seconds: three or four reports (the first one at 1 s, then on the token's
        // phase once at least 975 ms have passed).
        let rounds = run_with_wall(&mut reg, &mut store, 5025, 10_000, true);
        let reports = rounds
            .iter()
            .filter(|(_, r)| !r.unreadable.is_empty())
            .count();
        assert!((3..=4).contains(&reports), "{rounds:?}");
        assert!(rounds
            .iter()
            .all(|(_, r)| r.unreadable.iter().all(|u| u.kind == DirKind::Revocations)));
    }

    #[test]
    fn an_expired_signed_session_needs_no_directory() {
        // Past exp, it closes as expired even where the revocation directory is gone.
        let mut store = Fake::default();
        let mut reg = Registry::new();
        let c = claims(100, None, "j", "s");
        let id = reg
            .track(1u32, b"x", signed(Some(c"/gone"), &c, 1000), at(0))
            .id();
        let r = reg.round(at_unix(1000, 100), &mut store);
        assert_eq!(r.close, vec![(id, Ending::Expired)]);
        assert_eq!((store.opens, store.lookups), (0, 0));
    }

    #[test]
    fn a_request_granted_again_with_a_signed_token_follows_its_claims() {
        let mut store = Fake::default();
        store
            .dirs
            .insert(b"/d".to_vec(), Ok(Map::from([(b"t".to_vec(), 0)])));
        store
            .dirs
            .insert(b"/r".to_vec(), Ok(Map::from([(b"jti.j".to_vec(), 0)])));
        let mut reg = Registry::new();
        let id = reg.track(1u32, b"t", rules(c"/d", 1000), at(0)).id();
        let c = claims(1000, None, "j", "s");
        let again = reg.track(1u32, b"x", signed(Some(c"/r"), &c, 1000), at(10));
        assert_eq!(again, Tracked::Updated(id));
        let r = reg.round(at_unix(1100, 50), &mut store);
        assert_eq!(r.close, vec![(id, Ending::Revoked)], "revoked by jti.j");
        assert_eq!(store.opens, 1, "the token directory is not read any more");
        assert!(reg.untrack(id));
        assert!(reg.tokens.iter().all(Option::is_none) && reg.token_index.is_empty());
        assert!(reg.schedule.is_empty() && reg.groups.iter().all(Option::is_none));
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
            check: Check::File {
                dir: &dir,
                max_age_secs: Some(60),
            },
            interval_ms: 1000,
        };
        let keep = reg.track(1u32, b"keep", aged, at(0)).id();
        let drop = reg.track(2u32, b"drop", aged, at(0)).id();
        let link = reg.track(3u32, b"link", aged, at(0)).id();
        fs::remove_file(d.path().join("tokens/drop")).unwrap();
        let r = reg.round(at_unix(1000, now_unix()), &mut FreshStore);
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
        let r = reg.round(at_unix(2000, now_unix()), &mut FreshStore);
        assert_eq!(r.close, vec![(keep, Ending::Expired)]);
        old.set_modified(SystemTime::now()).unwrap();
        let r = reg.round(at_unix(3000, now_unix()), &mut FreshStore);
        assert!(r.close.is_empty(), "touch renews the lease");

        fs::rename(d.path().join("tokens"), d.path().join("moved")).unwrap();
        let r = reg.round(at_unix(4000, now_unix()), &mut FreshStore);
        assert_eq!(r.close, vec![(keep, Ending::DirMissing)]);
        fs::create_dir(d.path().join("tokens")).unwrap();
        let r = reg.round(at_unix(5000, now_unix()), &mut FreshStore);
        assert_eq!(
            r.close,
            vec![(keep, Ending::Revoked)],
            "a recreated directory is read anew"
        );
    }

    #[test]
    fn fresh_store_reads_the_revocation_directory_as_it_is_now() {
        let d = tempfile::tempdir().unwrap();
        let revoked = d.path().join("revoked");
        fs::create_dir(&revoked).unwrap();
        let dir = cdir(&revoked);
        let iat = now_unix() - 10;
        let (a, b) = (
            claims(i64::MAX, Some(iat), "a", "alice"),
            claims(i64::MAX, Some(iat), "b", "bob"),
        );
        let linked = claims(i64::MAX, Some(iat), "l", "linked");
        let mut reg = Registry::new();
        let a = reg
            .track(1u32, b"x", signed(Some(&dir), &a, 1000), at(0))
            .id();
        let b = reg
            .track(2u32, b"x", signed(Some(&dir), &b, 1000), at(0))
            .id();
        let linked = reg
            .track(3u32, b"x", signed(Some(&dir), &linked, 1000), at(0))
            .id();
        // bob's file is older than his token; a symlink never counts.
        let sub_bob = fs::File::create(revoked.join("sub.bob")).unwrap();
        sub_bob
            .set_modified(SystemTime::now() - Duration::from_secs(60))
            .unwrap();
        fs::write(d.path().join("target"), "").unwrap();
        std::os::unix::fs::symlink(d.path().join("target"), revoked.join("jti.l")).unwrap();
        let r = reg.round(at_unix(1000, now_unix()), &mut FreshStore);
        assert!(r.close.is_empty(), "{r:?}");
        assert_eq!(r.lookups, 3);

        fs::write(revoked.join("jti.a"), "").unwrap();
        let r = reg.round(at_unix(2000, now_unix()), &mut FreshStore);
        assert_eq!(r.close, vec![(a, Ending::Revoked)]);
        reg.untrack(a);
        sub_bob.set_modified(SystemTime::now()).unwrap();
        let r = reg.round(at_unix(3000, now_unix()), &mut FreshStore);
        assert_eq!(
            r.close,
            vec![(b, Ending::Revoked)],
            "touch revokes bob's tokens"
        );
        reg.untrack(b);

        fs::rename(&revoked, d.path().join("moved")).unwrap();
        let r = reg.round(at_unix(4000, now_unix()), &mut FreshStore);
        assert_eq!(r.close, vec![(linked, Ending::RevocationDirMissing)]);
    }
}
