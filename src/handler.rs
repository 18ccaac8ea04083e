//! The phase handlers: decide, log once, return, as nginx's own access modules do. Nothing
//! changes on refusal but the client-address header, which is replaced first.
//!
//! nginx runs the access phase for main requests only, so a subrequest (`auth_request`,
//! `mirror`, SSI `include virtual`) is decided in the precontent phase, with the main request's
//! headers. That phase also replaces the client-address header of every request that reaches
//! content in a protected location, whichever access handler granted it, and after realip has
//! set the address in the preaccess phase.

use core::fmt;
use core::mem::MaybeUninit;
use std::sync::OnceLock;
use std::time::Instant;

use ngx::ffi::{
    ngx_err_t, ngx_http_request_t, ngx_int_t, ngx_log_t, ngx_uint_t, NGX_DECLINED,
    NGX_HTTP_FORBIDDEN, NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_LOG_CRIT, NGX_LOG_ERR, NGX_OK,
};
use ngx::http::{HttpModuleLocationConf, HttpModuleMainConf, Request};
use wcs_token_auth_core::auth::{self, Clock, Grant, Status};
use wcs_token_auth_core::cache::TokenCache;

use crate::conf::{Access, MainConf};
use crate::{client_ip, headers, session, variables, Module};

/// # Safety
/// Only nginx calls it, as an access-phase handler with the (main) request being processed.
pub unsafe extern "C" fn access_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: per this function's contract, r is a valid request for the whole call.
    match unsafe { configuration(r) } {
        // SAFETY: as above; nginx runs the access phase for main requests only.
        Ok(Some((mcf, access))) => unsafe { decide(r, mcf, access) },
        Ok(None) => NGX_DECLINED as ngx_int_t,
        Err(rc) => rc,
    }
}

/// # Safety
/// Only nginx calls it, as a precontent-phase handler with the request being processed.
pub unsafe extern "C" fn precontent_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: per this function's contract, r is a valid request for the whole call.
    let (mcf, access) = match unsafe { configuration(r) } {
        Ok(Some(conf)) => conf,
        Ok(None) => return NGX_DECLINED as ngx_int_t,
        Err(rc) => return rc,
    };
    // SAFETY: r is valid (this function's contract).
    let rc = if unsafe { (*r).main } != r {
        // SAFETY: r is a valid subrequest, which no access phase has decided.
        unsafe { decide(r, mcf, access) }
    } else {
        // SAFETY: r is valid, and its access phase has run.
        unsafe { replace_client_ip(r, mcf, access) }
    };
    // NGX_OK would skip the phase's other handlers (try_files, mirror).
    if rc == NGX_OK as ngx_int_t {
        NGX_DECLINED as ngx_int_t
    } else {
        rc
    }
}

/// The module's configuration for the request's location: `None` where it is off, `Err` with
/// the status to return when it is missing.
///
/// # Safety
/// `r` must be a valid request.
unsafe fn configuration<'a>(
    r: *mut ngx_http_request_t,
) -> Result<Option<(&'a MainConf, &'a Access)>, ngx_int_t> {
    // SAFETY: per this function's contract, r is a valid request; the configuration outlives
    // it.
    let (request, log) = unsafe { (Request::from_ngx_http_request(r), (*(*r).connection).log) };
    let Some(lcf) = Module::location_conf(request) else {
        return Err(no_configuration(log));
    };
    let Some(access) = &lcf.access else {
        return Ok(None);
    };
    let Some(mcf) = Module::main_conf(request) else {
        return Err(no_configuration(log));
    };
    Ok(Some((mcf, access)))
}

/// Replaces the client-address header where configured: NGX_OK, or 500 without memory.
///
/// # Safety
/// `r` must be a valid request whose headers have been read, with nothing holding into its
/// header list.
unsafe fn replace_client_ip(
    r: *mut ngx_http_request_t,
    mcf: &MainConf,
    access: &Access,
) -> ngx_int_t {
    if let Some(header) = &access.client_ip_header {
        // SAFETY: per this function's contract.
        if unsafe { client_ip::replace(r, header) }.is_err() {
            // SAFETY: r is valid and status_var is the index register() obtained.
            unsafe { variables::set_status(r, mcf.status_var, Status::Error) };
            return NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;
        }
    }
    NGX_OK as ngx_int_t
}

/// Replaces the client-address header, then decides with the main request's headers: NGX_OK,
/// or the refusal's status after its one log line.
///
/// # Safety
/// `r` must be a valid request (main or sub) whose headers have been read, with nothing
/// holding into its or its main request's header list.
unsafe fn decide(r: *mut ngx_http_request_t, mcf: &MainConf, access: &Access) -> ngx_int_t {
    // Whatever the decision: under `satisfy any` another access module may let through a
    // request this one refuses, and an `error_page` location may proxy it; the client's copy
    // must not reach an upstream then either.
    // SAFETY: per this function's contract.
    let rc = unsafe { replace_client_ip(r, mcf, access) };
    if rc != NGX_OK as ngx_int_t {
        return rc;
    }

    // SAFETY: r and its main request are valid, and the main request's header list stays
    // unchanged until this function returns (a subrequest only ever changes its own).
    let req = unsafe { headers::request_headers(&*(*r).main) };
    let decision = match mcf.cache.try_borrow_mut() {
        Ok(mut cache) => auth::authorize(&access.policy, req, &mut cache, clock()),
        // Unreachable (one request at a time per worker), but never worth a panic.
        Err(_) => auth::authorize(&access.policy, req, &mut TokenCache::new(0, 0), clock()),
    };
    // SAFETY: r is valid and status_var is the index register() obtained; a subrequest
    // shares r->variables with its main request, so the main request's log shows it too.
    unsafe { variables::set_status(r, mcf.status_var, auth::status(&decision)) };

    let refusal = match decision {
        Ok(grant) => {
            let signed = match grant {
                Grant::Signed(token) => Some(token),
                Grant::File(_) => None,
            };
            // SAFETY: r is valid and being processed by this worker; a signed token is a
            // value of the main request's Cookie header, which stays in place until the main
            // request is freed.
            let kept = unsafe { variables::set_granted_token(r, signed) }
                // SAFETY: as above.
                .and_then(|()| unsafe { session::track(r, access, &grant) });
            if kept.is_ok() {
                return NGX_OK as ngx_int_t;
            }
            // SAFETY: r is valid and status_var is the index register() obtained.
            unsafe { variables::set_status(r, mcf.status_var, Status::Error) };
            return NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;
        }
        Err(refusal) => refusal,
    };
    let (level, code) = if refusal.is_server_fault() {
        (NGX_LOG_CRIT, NGX_HTTP_INTERNAL_SERVER_ERROR)
    } else {
        (NGX_LOG_ERR, NGX_HTTP_FORBIDDEN)
    };
    let err = refusal.os_error().unwrap_or(0) as ngx_err_t;
    // SAFETY: the connection, and its log, are valid for the request's lifetime.
    let log = unsafe { (*(*r).connection).log };
    log_error(log, level, err, format_args!("{refusal}"));
    code as ngx_int_t
}

/// A broken server, not a client's fault: fail closed.
fn no_configuration(log: *mut ngx_log_t) -> ngx_int_t {
    let msg = format_args!("wcs_token_auth: the module's configuration is missing");
    log_error(log, NGX_LOG_CRIT, 0, msg);
    NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t
}

/// The module's one clock, for the cache and the session rounds.
pub(crate) fn clock() -> Clock {
    // A process-local monotonic clock: unlike ngx_current_msec it does not wrap on 32-bit
    // targets and keeps millisecond resolution whatever `timer_resolution` says.
    static START: OnceLock<Instant> = OnceLock::new();
    let now_ms = START.get_or_init(Instant::now).elapsed().as_millis() as u64;
    #[allow(clippy::unnecessary_cast)] // time_t is not i64 on every target
    // SAFETY: ngx_cached_time always points to a valid slot, updated by this same
    // single-threaded worker.
    let unix_secs = unsafe { (*ngx::ffi::ngx_cached_time).sec as i64 };
    Clock { now_ms, unix_secs }
}

/// Writes one line to the request's log; nginx appends the client, server and request.
pub(crate) fn log_error(log: *mut ngx_log_t, level: u32, err: ngx_err_t, args: fmt::Arguments<'_>) {
    let level = level as ngx_uint_t;
    // SAFETY: the connection's log is valid for the request's lifetime.
    if log.is_null() || level > unsafe { (*log).log_level } {
        return;
    }
    let mut buf = [const { MaybeUninit::<u8>::uninit() }; ngx::log::LOG_BUFFER_SIZE];
    let msg = ngx::log::write_fmt(&mut buf, args);
    // SAFETY: log is valid (checked above) and msg is an initialised byte slice.
    unsafe { ngx::log::log_error(level, log, err, msg) };
}
