//! `ngx_http_wcs_token_auth_module`: lets a WebSocket upgrade through to Flashphoner WCS only
//! when its cookie names a token file or holds a signed token (JWT) the location's key set
//! verifies, its `Origin` is allowed, and then tells WCS the real client address.
//!
//! # A request's path through the code
//!
//! ```text
//! nginx access phase (main requests only)
//!   └─ handler::access_handler                 (src/handler.rs)
//!        ├─ location off?  → NGX_DECLINED, $wcs_token_auth_status stays empty
//!        └─ decide                             (the decision, as for a subrequest below)
//! nginx precontent phase (every request that reaches content; before try_files and mirror)
//!   └─ handler::precontent_handler             (src/handler.rs)
//!        ├─ location off?  → NGX_DECLINED
//!        ├─ main request: client_ip::replace   (whichever access handler granted it)
//!        ├─ subrequest (auth_request, mirror, SSI): decide
//!        └─ NGX_DECLINED (let try_files, mirror run), or the refusal's 403 / 500
//!
//! decide
//!   ├─ client_ip::replace                      (src/client_ip.rs: drop client copies, add ours)
//!   │    ├─ main: header_list::replace_all     (src/header_list.rs: unlink without moving)
//!   │    └─ sub:  header_list::copy_replacing  (parts of its own; the parent's are only read)
//!   ├─ headers::request_headers(r->main)       (src/headers.rs: Origin, the served host, Cookie)
//!   ├─ core::auth::authorize                   (core/src/auth.rs, pure Rust, with the Policy
//!   │    │                                      that src/conf.rs built when merging)
//!   │    ├─ origin::OriginPolicy::allows       (core/src/origin.rs)
//!   │    ├─ cookie::find                       (core/src/cookie.rs)
//!   │    ├─ signed path, where jwks= is set    (core/src/signed.rs)
//!   │    │    and signed::is_signed_shape
//!   │    │    ├─ cache::TokenCache::get        (under the rules' id; exp checked on a hit)
//!   │    │    ├─ signed::verify                (the key set's key by kid: signature, claims)
//!   │    │    └─ signed::is_revoked            (revocation directory: jti./sub. files)
//!   │    └─ file path, any other value         (no DIR here: malformed_token)
//!   │         ├─ token::parse                  (core/src/token.rs)
//!   │         ├─ cache::TokenCache::get        (core/src/cache.rs, per worker)
//!   │         └─ store::lookup                 (core/src/store.rs: openat + fstatat, no symlinks)
//!   ├─ variables::set_status                   (src/variables.rs: $wcs_token_auth_status,
//!   │                                           shared by a subrequest with its main request)
//!   ├─ granted: variables::set_granted_token   (a signed token, for $wcs_token_auth_claim_NAME)
//!   │           and session::track             (src/session.rs: session_check)
//!   └─ NGX_OK, or the Refusal's one log line and 403 / 500
//! ```
//!
//! Configuration is parsed in `src/conf.rs` (structs, directive table, setters, merge), whose
//! setters only convert nginx strings to bytes and call the rules in `core/src/directive.rs`
//! and `core/src/origin.rs`; key sets are read and checked there, at configuration load.
//! This file only declares the module and wires its hooks.

use core::ptr;

use ngx::core::Status;
use ngx::ffi::{
    ngx_array_push, ngx_conf_t, ngx_http_handler_pt, ngx_http_module_t,
    ngx_http_phases_NGX_HTTP_ACCESS_PHASE, ngx_http_phases_NGX_HTTP_PRECONTENT_PHASE,
    ngx_http_request_t, ngx_int_t, ngx_module_t, NGX_HTTP_MODULE,
};
use ngx::http::{HttpModule, HttpModuleLocationConf, HttpModuleMainConf, NgxHttpCoreModule};

mod client_ip;
mod conf;
mod handler;
mod header_list;
mod headers;
mod session;
mod variables;

pub(crate) struct Module;

impl HttpModule for Module {
    fn module() -> &'static ngx_module_t {
        // SAFETY: nginx writes the module's indices before any hook runs; afterwards the static
        // is only read.
        unsafe { &*ptr::addr_of!(ngx_http_wcs_token_auth_module) }
    }

    /// # Safety
    /// Only nginx calls it, with the http block's conf, before the block is parsed.
    unsafe extern "C" fn preconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
        // SAFETY: nginx calls preconfiguration with the http block's conf, as register needs.
        unsafe { variables::register(cf) }
    }

    /// # Safety
    /// Only nginx calls it, with the http block's conf, once the block is parsed.
    unsafe extern "C" fn postconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
        // SAFETY: per this function's contract, cf is valid and its ctx is the http block's.
        let Some(cmcf) = NgxHttpCoreModule::main_conf_mut(unsafe { &*cf }) else {
            return Status::NGX_ERROR.into();
        };
        // Access: main requests. Precontent: subrequests, which have no access phase, and
        // the client-address header once any access handler has granted; it runs after
        // realip's preaccess handler and, registered later, before try_files and mirror.
        for (phase, handler) in [
            (
                ngx_http_phases_NGX_HTTP_ACCESS_PHASE,
                handler::access_handler as HandlerFn,
            ),
            (
                ngx_http_phases_NGX_HTTP_PRECONTENT_PHASE,
                handler::precontent_handler,
            ),
        ] {
            let Some(phase) = cmcf.phases.get_mut(phase as usize) else {
                return Status::NGX_ERROR.into();
            };
            // SAFETY: the phase's handler array is an initialised ngx_array_t of handler
            // pointers.
            let h = unsafe { ngx_array_push(&mut phase.handlers) }.cast::<ngx_http_handler_pt>();
            if h.is_null() {
                return Status::NGX_ERROR.into();
            }
            // SAFETY: ngx_array_push returned room for one element of the array's type.
            unsafe { *h = Some(handler) };
        }
        Status::NGX_OK.into()
    }
}

type HandlerFn = unsafe extern "C" fn(*mut ngx_http_request_t) -> ngx_int_t;

// SAFETY: create_main_conf allocates a `conf::MainConf` for this module's main_conf slot.
unsafe impl HttpModuleMainConf for Module {
    type MainConf = conf::MainConf;
}

// SAFETY: create_loc_conf allocates a `conf::LocConf` for this module's loc_conf slot.
unsafe impl HttpModuleLocationConf for Module {
    type LocationConf = conf::LocConf;
}

static NGX_HTTP_WCS_TOKEN_AUTH_MODULE_CTX: ngx_http_module_t = ngx_http_module_t {
    preconfiguration: Some(Module::preconfiguration),
    postconfiguration: Some(Module::postconfiguration),
    create_main_conf: Some(Module::create_main_conf),
    init_main_conf: Some(conf::init_main_conf),
    create_srv_conf: None,
    merge_srv_conf: None,
    create_loc_conf: Some(Module::create_loc_conf),
    merge_loc_conf: Some(conf::merge_loc_conf),
};

#[cfg(feature = "export-modules")]
ngx::ngx_modules!(ngx_http_wcs_token_auth_module);

#[used]
#[allow(non_upper_case_globals)]
#[cfg_attr(not(feature = "export-modules"), no_mangle)]
pub static mut ngx_http_wcs_token_auth_module: ngx_module_t = ngx_module_t {
    ctx: ptr::addr_of!(NGX_HTTP_WCS_TOKEN_AUTH_MODULE_CTX) as _,
    // The command table is only read, by nginx's configuration parser.
    commands: ptr::addr_of_mut!(conf::COMMANDS) as *mut _,
    type_: NGX_HTTP_MODULE as _,
    ..ngx_module_t::default()
};
