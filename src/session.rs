//! `wcs_token_auth_session_check`: the worker's open sessions, the timer that re-checks their
//! tokens, and ending a request whose token is no longer valid.
//!
//! Which sessions to close is decided in `wcs_token_auth_core::session`; this file only keeps
//! the requests, arms the timer, and ends requests the way nginx ends one from an event
//! handler. A session is untracked by a cleanup on its main request's pool, so nothing here
//! ever refers to a finished request.

use core::cell::{Cell, RefCell};
use core::ffi::c_void;
use core::mem::MaybeUninit;
use core::ptr;

use ngx::ffi::{
    ngx_add_timer, ngx_cycle, ngx_del_timer, ngx_err_t, ngx_event_t, ngx_http_finalize_request,
    ngx_http_request_t, ngx_http_run_posted_requests, ngx_int_t, ngx_msec_t, ngx_pool_cleanup_add,
    NGX_ERROR, NGX_LOG_CRIT, NGX_LOG_ERR,
};
use ngx::http::{HttpModuleMainConf, Request};
use wcs_token_auth_core::auth::Grant;
use wcs_token_auth_core::session::{
    Check, Ending, FreshStore, Now, Registry, Rules, SessionId, Tracked,
};
use wcs_token_auth_core::signed;

use crate::conf::Access;
use crate::handler::{clock, log_error};
use crate::{variables, Module};

type Sessions = Registry<*mut ngx_http_request_t>;

thread_local! {
    /// The worker's open sessions (a worker is one thread).
    static SESSIONS: RefCell<Sessions> = RefCell::new(Registry::new());
    /// When the armed timer is due, on the module's [`clock`]; `None` while it is not armed.
    static ARMED: Cell<Option<u64>> = const { Cell::new(None) };
}

/// The round timer: one per worker, armed only while something is tracked, and cancelable,
/// so that it never keeps a shutting-down worker alive.
static mut TIMER: MaybeUninit<ngx_event_t> = MaybeUninit::zeroed();

/// Where `access` has `session_check` on, tracks the request `r` it allowed with `grant`
/// until its main request ends (a grant in a subrequest tracks the main request). A main
/// request has one session at most: granted again (after an internal redirect, or by a
/// subrequest and itself), its session follows the latest grant's location, and no second
/// cleanup is added. `Err` when nginx is out of memory, or for a grant the location cannot
/// have given (a signed token whose claims do not read back): a server fault either way.
///
/// # Safety
/// `r` must be a valid request being processed by this worker.
pub unsafe fn track(
    r: *mut ngx_http_request_t,
    access: &Access,
    grant: &Grant<'_>,
) -> Result<(), ()> {
    let Some(interval_ms) = access.session_check_ms else {
        return Ok(());
    };
    let policy = &access.policy;
    let claims;
    let check = match (grant, policy.dir.as_deref(), &policy.signed) {
        (Grant::File(_), Some(dir), _) => Check::File {
            dir,
            max_age_secs: policy.max_age_secs,
        },
        (Grant::Signed(token), _, Some(signed)) => {
            // Verified just now or when it was cached: the claims are read, not verified again.
            claims = signed::claims_of_verified(&signed.rules, token).ok_or(())?;
            Check::Signed {
                revoked: signed.rules.revoked.as_deref(),
                claims: &claims,
            }
        }
        _ => return Err(()),
    };
    let token = grant.as_bytes();
    // SAFETY: r is valid (this function's contract) and so is its main request, which
    // outlives it.
    let (mr, pool) = unsafe { ((*r).main, (*(*r).main).pool) };
    let rules = Rules { check, interval_ms };
    let now = now();
    let Some((tracked, due)) = with_sessions(|s| {
        let tracked = s.track(mr, token, rules, now);
        (tracked, s.due_ms(tracked.id()).unwrap_or(now.ms))
    }) else {
        return Err(());
    };
    if let Tracked::New(id) = tracked {
        // SAFETY: pool is the main request's live pool; room for the session id is asked for.
        let cln = unsafe { ngx_pool_cleanup_add(pool, core::mem::size_of::<SessionId>()) };
        if cln.is_null() {
            with_sessions(|s| s.untrack(id));
            return Err(());
        }
        // SAFETY: ngx_pool_cleanup_add returned a cleanup whose data has room for a SessionId
        // (pool memory is aligned for any type); the handler reads it back when the pool goes.
        unsafe {
            (*cln).data.cast::<SessionId>().write(id);
            (*cln).handler = Some(untrack);
        }
    }
    // An updated session may be due sooner (a shorter interval) than the armed timer.
    arm_at(due, now.ms);
    Ok(())
}

/// The time on both clocks; the wall clock to the millisecond, so that a signed session's
/// round falls when its `exp` is reached.
fn now() -> Now {
    let ms = clock().now_ms;
    // SAFETY: ngx_cached_time always points to a valid slot, updated by this same
    // single-threaded worker.
    let t = unsafe { &*ngx::ffi::ngx_cached_time };
    #[allow(clippy::unnecessary_cast)] // time_t is not i64 on every target
    let unix_ms = (t.sec as i64)
        .saturating_mul(1000)
        .saturating_add(t.msec as i64);
    Now { ms, unix_ms }
}

/// The main request's pool is being destroyed: its session ends here. If the session was
/// taken for closing already, its id names nothing (ids are never reused) and this does
/// nothing.
///
/// # Safety
/// Only nginx calls it, as the pool cleanup that [`track`] added.
unsafe extern "C" fn untrack(data: *mut c_void) {
    // SAFETY: data is the cleanup's own memory, where track wrote the session id.
    let id = unsafe { data.cast::<SessionId>().read() };
    if with_sessions(|s| s.untrack(id) && s.is_empty()) == Some(true) {
        disarm();
    }
}

/// Runs `f` on the registry; `None` if it is borrowed already, which cannot happen: no borrow
/// is held while nginx code runs.
fn with_sessions<T>(f: impl FnOnce(&mut Sessions) -> T) -> Option<T> {
    SESSIONS
        .try_with(|s| s.try_borrow_mut().ok().map(|mut s| f(&mut s)))
        .ok()
        .flatten()
}

/// A zeroed ngx_event_t is what nginx's own static events start from.
fn timer() -> *mut ngx_event_t {
    ptr::addr_of_mut!(TIMER).cast::<ngx_event_t>()
}

/// Sets the timer for the next round, if any session is tracked.
fn arm(now: u64) {
    match with_sessions(|s| s.next_due_ms()).flatten() {
        Some(due) => arm_at(due, now),
        None => disarm(),
    }
}

/// Makes sure the timer fires by `due`.
fn arm_at(due: u64, now: u64) {
    let ev = timer();
    // SAFETY: the worker is single-threaded and the timer is only touched on this thread;
    // ngx_cycle is this worker's cycle, valid while it runs.
    unsafe {
        if (*ev).timer_set() != 0 {
            if ARMED.get().is_some_and(|armed| armed <= due) {
                return;
            }
            ngx_del_timer(ev);
        }
        if (*ev).handler.is_none() {
            (*ev).handler = Some(on_timer);
            (*ev).set_cancelable(1);
        }
        // The cycle's log of now: a reload (with master_process off, in this very process)
        // frees the one before.
        (*ev).log = (*ngx_cycle).log;
        ngx_add_timer(ev, due.saturating_sub(now) as ngx_msec_t);
    }
    ARMED.set(Some(due));
}

fn disarm() {
    let ev = timer();
    // SAFETY: as in arm; a set timer is in nginx's timer tree, which ngx_del_timer leaves.
    unsafe {
        if (*ev).timer_set() != 0 {
            ngx_del_timer(ev);
        }
    }
    ARMED.set(None);
}

/// A round: check the sessions that are due, report unreadable directories, close the
/// sessions whose token is no longer valid, and arm the timer for the next round.
///
/// # Safety
/// Only nginx calls it, as the timer event's handler.
unsafe extern "C" fn on_timer(_ev: *mut ngx_event_t) {
    // nginx's clock decided that the round is due: this clock may lag it by a millisecond,
    // which must not turn into an empty round and another one right after it.
    let started = now();
    let now = Now {
        ms: started.ms.max(ARMED.take().unwrap_or(0)),
        ..started
    };
    let Some(round) = with_sessions(|s| s.round(now, &mut FreshStore)) else {
        return;
    };
    // SAFETY: ngx_cycle is this worker's cycle; its log is valid while the worker runs.
    let log = unsafe { (*ngx_cycle).log };
    for u in &round.unreadable {
        let err = u.error.raw_os_error().unwrap_or(0) as ngx_err_t;
        let (kind, dir) = (u.kind.name(), u.dir.to_bytes().escape_ascii());
        let msg = format_args!("wcs_token_auth: cannot read {kind} \"{dir}\", open sessions kept");
        log_error(log, NGX_LOG_CRIT, err, msg);
    }
    // The registry is not borrowed while a request is closed: that may run the pool cleanup
    // of this or another tracked request. A session ended meanwhile is simply gone; one that
    // is closed is untracked first, so that a request nginx keeps for a while after closing
    // (an HTTP/2 stream flushing its queued frames) is never closed twice.
    for (id, ending) in round.close {
        if let Some(r) = with_sessions(|s| s.take(id)).flatten() {
            // SAFETY: a tracked handle is a live main request (its pool cleanup untracks it
            // before the request's memory is freed), and it was tracked until just now.
            unsafe { close(r, ending) };
        }
    }
    arm(clock().now_ms);
}

/// Ends the main request `r` from an event handler, as nginx's own modules do: finalize with
/// `NGX_ERROR` (its cleanups run, so a proxied request's upstream connection is closed), then
/// run the posted requests, where nginx's terminate handler frees it.
///
/// # Safety
/// `r` must be a live main request of this worker, not inside any of its own handlers.
unsafe fn close(r: *mut ngx_http_request_t, ending: Ending) {
    // A request nginx has finalized, its response complete, may live on a while (discarding
    // the rest of a request body while lingering, an HTTP/2 stream flushing): it has ended as
    // it was going to, and is left alone (it was untracked already).
    // SAFETY: r is a live main request per this function's contract.
    if unsafe { (*r).done() } != 0 {
        return;
    }
    // SAFETY: r is a live main request per this function's contract; its connection and the
    // connection's log live at least as long.
    let c = unsafe { (*r).connection };
    // SAFETY: as above.
    let request = unsafe { Request::from_ngx_http_request(r) };
    if let Some(mcf) = Module::main_conf(request) {
        // SAFETY: r is live and status_var is the index register() obtained in its cycle.
        unsafe { variables::set_status(r, mcf.status_var, ending.status()) };
    }
    // SAFETY: c is r's connection, valid until r is freed below.
    log_error(
        unsafe { (*c).log },
        NGX_LOG_ERR,
        0,
        format_args!("{}", ending.message()),
    );
    // SAFETY: r is live and not in use by any other code (the worker runs only this handler).
    // The extra reference is for the upstream's cleanup, which ngx_http_terminate_request
    // runs first and which finalizes the request once more with NGX_DONE: without it, a
    // proxied request whose count is 1 would be freed inside that call while terminate still
    // uses it. The reference is not leaked: a request with a write handler (every request
    // past the access phase has one) is closed by nginx's terminate handler, which terminate
    // posts and which resets the count to 1 first; without one, terminate closes it at once,
    // dropping one reference, so none is added then.
    unsafe {
        if (*r).write_event_handler.is_some() {
            (*r).set_count((*r).count() + 1);
        }
        ngx_http_finalize_request(r, NGX_ERROR as ngx_int_t);
        ngx_http_run_posted_requests(c);
    }
}
