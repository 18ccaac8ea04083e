//! The access-phase handler: gathers the request's facts, asks the core for a decision, and
//! answers the way nginx's own access modules do (one log line, a status, no side effects
//! beyond the client-address header).

use core::fmt;
use core::mem::MaybeUninit;
use std::sync::OnceLock;
use std::time::Instant;

use ngx::ffi::{
    ngx_err_t, ngx_http_request_t, ngx_int_t, ngx_log_t, ngx_uint_t, NGX_DECLINED,
    NGX_HTTP_FORBIDDEN, NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_LOG_CRIT, NGX_LOG_ERR, NGX_OK,
};
use ngx::http::{HttpModuleLocationConf, HttpModuleMainConf, Request};
use wcs_token_auth_core::auth::{self, Clock, Outcome, Policy, RequestHeaders, Status};
use wcs_token_auth_core::origin::OriginHeader;
use wcs_token_auth_core::store::DirError;

use crate::conf::LocConf;
use crate::{client_ip, headers, variables, Module};

pub unsafe extern "C" fn access_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx calls phase handlers with a valid request.
    let request = unsafe { Request::from_ngx_http_request(r) };
    let Some(lcf) = Module::location_conf(request) else {
        return NGX_DECLINED as ngx_int_t;
    };
    let Some(dir) = lcf.token_dir() else {
        return NGX_DECLINED as ngx_int_t;
    };
    let Some(mcf) = Module::main_conf(request) else {
        return NGX_DECLINED as ngx_int_t;
    };
    // SAFETY: r is valid for the whole call.
    let log = unsafe { (*(*r).connection).log };

    if let Some(header) = lcf.client_ip_header() {
        // SAFETY: no iterator over the header list is alive here.
        if unsafe { client_ip::replace(r, header) }.is_err() {
            // SAFETY: r is valid and status_var is the index register() obtained.
            unsafe { variables::set_status(r, mcf.status_var, Status::Error) };
            return NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;
        }
    }

    // SAFETY: the header list and Host pointer are valid and unchanged until we return.
    let (hdrs, host) = unsafe {
        let hin = &(*r).headers_in;
        (
            headers::iter(&hin.headers),
            hin.host.as_ref().map(|h| h.value.as_bytes()),
        )
    };
    let (origin, cookies) = headers::origin_and_cookies(hdrs);
    let req = RequestHeaders {
        origin,
        host,
        cookies,
    };
    let policy = Policy {
        dir: &dir.path,
        dir_id: dir.id,
        cookie_name: lcf.cookie_name(),
        origins: lcf.origins(),
        require_origin: lcf.require_origin(),
        max_age_secs: lcf.max_age_secs(),
    };
    let outcome = match mcf.cache.try_borrow_mut() {
        Ok(mut cache) => auth::authorize(&policy, req, &mut cache, clock()),
        // Unreachable (one request at a time per worker), but never worth a panic.
        Err(_) => {
            let mut no_cache = wcs_token_auth_core::cache::TokenCache::new(0, 0);
            auth::authorize(&policy, req, &mut no_cache, clock())
        }
    };
    // SAFETY: r is valid and status_var is the index register() obtained.
    unsafe { variables::set_status(r, mcf.status_var, outcome.status()) };

    match outcome {
        Outcome::Allowed => NGX_OK as ngx_int_t,
        Outcome::Refused(status) => {
            log_refusal(log, status, lcf, origin);
            NGX_HTTP_FORBIDDEN as ngx_int_t
        }
        Outcome::DirError(DirError::Missing(e)) => {
            let path = dir.path.to_bytes().escape_ascii();
            log_error(
                log,
                NGX_LOG_ERR,
                errno(&e),
                format_args!("wcs_token_auth: token directory \"{path}\" does not exist"),
            );
            NGX_HTTP_FORBIDDEN as ngx_int_t
        }
        Outcome::DirError(DirError::Failed(e)) => {
            let path = dir.path.to_bytes().escape_ascii();
            log_error(
                log,
                NGX_LOG_CRIT,
                errno(&e),
                format_args!("wcs_token_auth: cannot read token directory \"{path}\""),
            );
            NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t
        }
    }
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

fn errno(e: &std::io::Error) -> ngx_err_t {
    e.raw_os_error().unwrap_or(0) as ngx_err_t
}

/// The reason for a refusal; the token itself never appears in the log.
fn log_refusal(log: *mut ngx_log_t, status: Status, lcf: &LocConf, origin: OriginHeader<'_>) {
    let cookie = lcf.cookie_name().escape_ascii();
    match status {
        Status::OriginDenied => match origin {
            OriginHeader::Absent => log_error(
                log,
                NGX_LOG_ERR,
                0,
                format_args!("wcs_token_auth: no Origin header"),
            ),
            OriginHeader::Several => log_error(
                log,
                NGX_LOG_ERR,
                0,
                format_args!("wcs_token_auth: several Origin headers"),
            ),
            OriginHeader::One(v) => {
                let shown = &v[..v.len().min(256)];
                log_error(
                    log,
                    NGX_LOG_ERR,
                    0,
                    format_args!(
                        "wcs_token_auth: origin \"{}\" is not allowed",
                        shown.escape_ascii()
                    ),
                );
            }
        },
        Status::NoToken => log_error(
            log,
            NGX_LOG_ERR,
            0,
            format_args!("wcs_token_auth: no token in cookie \"{cookie}\""),
        ),
        Status::MalformedToken => log_error(
            log,
            NGX_LOG_ERR,
            0,
            format_args!("wcs_token_auth: malformed token in cookie \"{cookie}\""),
        ),
        Status::UnknownToken => log_error(
            log,
            NGX_LOG_ERR,
            0,
            format_args!("wcs_token_auth: unknown token in cookie \"{cookie}\""),
        ),
        Status::ExpiredToken => log_error(
            log,
            NGX_LOG_ERR,
            0,
            format_args!("wcs_token_auth: expired token in cookie \"{cookie}\""),
        ),
        Status::Allowed | Status::Error => {}
    }
}

/// Writes one line to the request's log; nginx appends the client, server and request.
fn log_error(log: *mut ngx_log_t, level: u32, err: ngx_err_t, args: fmt::Arguments<'_>) {
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
