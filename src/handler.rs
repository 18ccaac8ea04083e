//! The access-phase handler: decide, log once, return, as nginx's own access modules do.
//! Nothing changes on refusal but the client-address header, which is replaced first.

use core::fmt;
use core::mem::MaybeUninit;
use std::sync::OnceLock;
use std::time::Instant;

use ngx::ffi::{
    ngx_err_t, ngx_http_request_t, ngx_int_t, ngx_log_t, ngx_uint_t, NGX_DECLINED,
    NGX_HTTP_FORBIDDEN, NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_LOG_CRIT, NGX_LOG_ERR, NGX_OK,
};
use ngx::http::{HttpModuleLocationConf, HttpModuleMainConf, Request};
use wcs_token_auth_core::auth::{self, Clock, Status};
use wcs_token_auth_core::cache::TokenCache;

use crate::{client_ip, headers, session, variables, Module};

/// # Safety
/// Only nginx calls it, as an access-phase handler with the request being processed.
pub unsafe extern "C" fn access_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: per this function's contract, r is a valid request for the whole call.
    let (request, log) = unsafe { (Request::from_ngx_http_request(r), (*(*r).connection).log) };
    let Some(lcf) = Module::location_conf(request) else {
        return no_configuration(log);
    };
    let Some(access) = &lcf.access else {
        return NGX_DECLINED as ngx_int_t;
    };
    let Some(mcf) = Module::main_conf(request) else {
        return no_configuration(log);
    };

    // Whatever the decision: under `satisfy any` another access module may let through a
    // request this one refuses, and the client's copy must not reach the upstream then either.
    if let Some(header) = &access.client_ip_header {
        // SAFETY: r is valid, its headers are read, and nothing holds into its header list yet.
        if unsafe { client_ip::replace(r, header) }.is_err() {
            // SAFETY: r is valid and status_var is the index register() obtained.
            unsafe { variables::set_status(r, mcf.status_var, Status::Error) };
            return NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;
        }
    }

    // SAFETY: r is valid, and its header list stays unchanged until this handler returns.
    let req = unsafe { headers::request_headers(&*r) };
    let decision = match mcf.cache.try_borrow_mut() {
        Ok(mut cache) => auth::authorize(&access.policy, req, &mut cache, clock()),
        // Unreachable (one request at a time per worker), but never worth a panic.
        Err(_) => auth::authorize(&access.policy, req, &mut TokenCache::new(0, 0), clock()),
    };
    // SAFETY: r is valid and status_var is the index register() obtained.
    unsafe { variables::set_status(r, mcf.status_var, auth::status(&decision)) };

    let refusal = match decision {
        // SAFETY: r is valid and being processed by this worker.
        Ok(token) => match unsafe { session::track(r, access, token.as_bytes()) } {
            Ok(()) => return NGX_OK as ngx_int_t,
            Err(()) => return NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t,
        },
        Err(refusal) => refusal,
    };
    let (level, code) = if refusal.is_server_fault() {
        (NGX_LOG_CRIT, NGX_HTTP_INTERNAL_SERVER_ERROR)
    } else {
        (NGX_LOG_ERR, NGX_HTTP_FORBIDDEN)
    };
    let err = refusal.os_error().unwrap_or(0) as ngx_err_t;
    log_error(log, level, err, format_args!("{refusal}"));
    code as ngx_int_t
}

/// A broken server, not a client's fault: fail closed.
fn no_configuration(log: *mut ngx_log_t) -> ngx_int_t {
    let msg = format_args!("wcs_token_auth: the module's configuration is missing");
    log_error(log, NGX_LOG_CRIT, 0, msg);
    NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t
}

fn clock() -> Clock {
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
