//! The `wcs_token_auth*` directives: their table, setters, defaults and inheritance.
//!
//! Setters only turn nginx strings into bytes and call the parsers of the core crate; errors
//! name the directive and the bad value, as nginx's own modules do.

use core::ffi::{c_char, c_void};
use core::mem::offset_of;
use core::ptr;
use std::cell::RefCell;
use std::ffi::CString;

use ngx::core::{NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::ffi::{
    ngx_command_t, ngx_conf_full_name, ngx_conf_log_error, ngx_conf_set_flag_slot, ngx_conf_t,
    ngx_flag_t, ngx_hash_key, ngx_http_header_t, ngx_http_headers_in, ngx_int_t, ngx_str_t,
    ngx_uint_t, NGX_CONF_1MORE, NGX_CONF_FLAG, NGX_CONF_TAKE1, NGX_CONF_UNSET, NGX_HTTP_LOC_CONF,
    NGX_HTTP_LOC_CONF_OFFSET, NGX_HTTP_MAIN_CONF, NGX_HTTP_MAIN_CONF_OFFSET, NGX_HTTP_SRV_CONF,
    NGX_LOG_EMERG,
};
use ngx::http::{HttpModuleMainConf, Merge, MergeConfigError};
use ngx::ngx_string;
use wcs_token_auth_core::cache::TokenCache;
use wcs_token_auth_core::directive;
use wcs_token_auth_core::origin::OriginPolicy;

use crate::Module;

const DEFAULT_COOKIE: &[u8] = b"AUTH";
const DEFAULT_CLIENT_IP_HEADER: &[u8] = b"X-Client-IP";
const DEFAULT_CACHE_TTL_MS: u64 = 1000;
const DEFAULT_CACHE_SIZE: usize = 10_000;

/// `http`-level state: the cache settings, the cache itself, and what the handler needs to
/// find quickly.
#[derive(Debug)]
pub struct MainConf {
    cache_ttl_ms: Option<u64>,
    cache_size: Option<usize>,
    /// Distinct token directories; a directory's index is its id in the cache keys.
    dirs: Vec<CString>,
    /// Index of `$wcs_token_auth_status` in `r->variables`.
    pub status_var: ngx_int_t,
    /// Each worker fills its own copy: configuration memory is private after fork.
    pub cache: RefCell<TokenCache>,
}

impl Default for MainConf {
    fn default() -> Self {
        MainConf {
            cache_ttl_ms: None,
            cache_size: None,
            dirs: Vec::new(),
            status_var: NGX_CONF_UNSET as ngx_int_t,
            cache: RefCell::new(TokenCache::new(0, 0)),
        }
    }
}

#[derive(Debug, Clone)]
pub struct TokenDir {
    pub path: CString,
    pub id: u32,
}

/// A request header the module sets, with the lowercase form and hash nginx expects.
#[derive(Debug, Clone)]
pub struct HeaderName {
    pub name: Vec<u8>,
    pub lowcase: Vec<u8>,
    pub hash: ngx_uint_t,
}

/// Per-location settings. `None` means "not set at this level" until merged.
#[derive(Debug)]
pub struct LocConf {
    /// `Some(None)` is `wcs_token_auth off`.
    token_dir: Option<Option<TokenDir>>,
    cookie_name: Option<Vec<u8>>,
    origins: Option<OriginPolicy>,
    require_origin: ngx_flag_t,
    /// `Some(None)` is `off`; unset means `X-Client-IP` once merged.
    client_ip_header: Option<Option<HeaderName>>,
    /// `Some(None)` is `off`.
    max_age_secs: Option<Option<u64>>,
}

impl Default for LocConf {
    fn default() -> Self {
        LocConf {
            token_dir: None,
            cookie_name: None,
            origins: None,
            require_origin: NGX_CONF_UNSET as ngx_flag_t,
            client_ip_header: None,
            max_age_secs: None,
        }
    }
}

impl LocConf {
    pub fn token_dir(&self) -> Option<&TokenDir> {
        self.token_dir.as_ref().and_then(Option::as_ref)
    }

    pub fn cookie_name(&self) -> &[u8] {
        self.cookie_name.as_deref().unwrap_or(DEFAULT_COOKIE)
    }

    pub fn origins(&self) -> &OriginPolicy {
        const SAME_ORIGIN: &OriginPolicy = &OriginPolicy::SameOrigin;
        self.origins.as_ref().unwrap_or(SAME_ORIGIN)
    }

    pub fn require_origin(&self) -> bool {
        self.require_origin == 1
    }

    pub fn client_ip_header(&self) -> Option<&HeaderName> {
        self.client_ip_header.as_ref().and_then(Option::as_ref)
    }

    pub fn max_age_secs(&self) -> Option<u64> {
        self.max_age_secs.flatten()
    }
}

impl Merge for LocConf {
    fn merge(&mut self, prev: &LocConf) -> Result<(), MergeConfigError> {
        fn inherit<T: Clone>(this: &mut Option<T>, prev: &Option<T>, default: impl FnOnce() -> T) {
            if this.is_none() {
                *this = Some(prev.clone().unwrap_or_else(default));
            }
        }
        inherit(&mut self.token_dir, &prev.token_dir, || None);
        inherit(&mut self.cookie_name, &prev.cookie_name, || {
            DEFAULT_COOKIE.to_vec()
        });
        inherit(&mut self.origins, &prev.origins, OriginPolicy::default);
        inherit(&mut self.client_ip_header, &prev.client_ip_header, || {
            Some(header_name(DEFAULT_CLIENT_IP_HEADER))
        });
        inherit(&mut self.max_age_secs, &prev.max_age_secs, || None);
        if self.require_origin == NGX_CONF_UNSET as ngx_flag_t {
            self.require_origin = match prev.require_origin {
                p if p == NGX_CONF_UNSET as ngx_flag_t => 0,
                p => p,
            };
        }
        Ok(())
    }
}

/// Resolves the http-level defaults once the `http` block is parsed, and sizes the cache.
pub unsafe extern "C" fn init_main_conf(_cf: *mut ngx_conf_t, conf: *mut c_void) -> *mut c_char {
    // SAFETY: nginx passes the MainConf that create_main_conf allocated for this module.
    let mcf = unsafe { &mut *conf.cast::<MainConf>() };
    let ttl = *mcf.cache_ttl_ms.get_or_insert(DEFAULT_CACHE_TTL_MS);
    let size = *mcf.cache_size.get_or_insert(DEFAULT_CACHE_SIZE);
    mcf.cache = RefCell::new(TokenCache::new(size, ttl));
    NGX_CONF_OK
}

const ANY_LEVEL: u32 = NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF;

const fn command(
    name: ngx_str_t,
    type_: u32,
    set: unsafe extern "C" fn(*mut ngx_conf_t, *mut ngx_command_t, *mut c_void) -> *mut c_char,
    conf: usize,
    offset: usize,
) -> ngx_command_t {
    ngx_command_t {
        name,
        type_: type_ as ngx_uint_t,
        set: Some(set),
        conf: conf as ngx_uint_t,
        offset: offset as ngx_uint_t,
        post: ptr::null_mut(),
    }
}

pub static mut COMMANDS: [ngx_command_t; 9] = [
    command(
        ngx_string!("wcs_token_auth"),
        ANY_LEVEL | NGX_CONF_TAKE1,
        set_token_dir,
        NGX_HTTP_LOC_CONF_OFFSET,
        0,
    ),
    command(
        ngx_string!("wcs_token_auth_cookie"),
        ANY_LEVEL | NGX_CONF_TAKE1,
        set_cookie_name,
        NGX_HTTP_LOC_CONF_OFFSET,
        0,
    ),
    command(
        ngx_string!("wcs_token_auth_origins"),
        ANY_LEVEL | NGX_CONF_1MORE,
        set_origins,
        NGX_HTTP_LOC_CONF_OFFSET,
        0,
    ),
    command(
        ngx_string!("wcs_token_auth_require_origin"),
        ANY_LEVEL | NGX_CONF_FLAG,
        ngx_conf_set_flag_slot,
        NGX_HTTP_LOC_CONF_OFFSET,
        offset_of!(LocConf, require_origin),
    ),
    command(
        ngx_string!("wcs_token_auth_client_ip_header"),
        ANY_LEVEL | NGX_CONF_TAKE1,
        set_client_ip_header,
        NGX_HTTP_LOC_CONF_OFFSET,
        0,
    ),
    command(
        ngx_string!("wcs_token_auth_max_age"),
        ANY_LEVEL | NGX_CONF_TAKE1,
        set_max_age,
        NGX_HTTP_LOC_CONF_OFFSET,
        0,
    ),
    command(
        ngx_string!("wcs_token_auth_cache_ttl"),
        NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1,
        set_cache_ttl,
        NGX_HTTP_MAIN_CONF_OFFSET,
        0,
    ),
    command(
        ngx_string!("wcs_token_auth_cache_size"),
        NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1,
        set_cache_size,
        NGX_HTTP_MAIN_CONF_OFFSET,
        0,
    ),
    ngx_command_t::empty(),
];

const IS_DUPLICATE: *mut c_char = c"is duplicate".as_ptr().cast_mut();

/// The directive's arguments after its name.
///
/// # Safety
/// `cf` must be the conf nginx passed to a directive setter.
unsafe fn args<'a>(cf: *mut ngx_conf_t) -> &'a mut [ngx_str_t] {
    // SAFETY: during a setter call cf->args holds the directive's name and arguments.
    let all = unsafe { (*(*cf).args).as_slice_mut::<ngx_str_t>() };
    &mut all[1..]
}

/// Logs `invalid value "V" in "DIRECTIVE" directive[, why]` and fails the configuration.
///
/// # Safety
/// `cf` and `cmd` must be the ones nginx passed to the calling setter.
unsafe fn invalid(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    value: &[u8],
    why: &str,
) -> *mut c_char {
    // SAFETY: cmd is the command nginx is processing; its name is a static string.
    let name = unsafe { (*cmd).name.as_bytes() };
    let sep = if why.is_empty() { "" } else { ", " };
    let msg = format!(
        "invalid value \"{}\" in \"{}\" directive{sep}{why}",
        value.escape_ascii(),
        name.escape_ascii()
    );
    let msg = CString::new(msg).unwrap_or_default();
    // SAFETY: "%s" consumes exactly the one NUL-terminated argument given.
    unsafe { ngx_conf_log_error(NGX_LOG_EMERG as _, cf, 0, c"%s".as_ptr(), msg.as_ptr()) };
    NGX_CONF_ERROR
}

extern "C" fn set_token_dir(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: nginx calls setters with the LocConf of the block being parsed (conf offset).
    let lcf = unsafe { &mut *conf.cast::<LocConf>() };
    if lcf.token_dir.is_some() {
        return IS_DUPLICATE;
    }
    // SAFETY: called by nginx as a directive setter.
    let value = unsafe { &mut args(cf)[0] };
    if value.as_bytes() == b"off" {
        lcf.token_dir = Some(None);
        return NGX_CONF_OK;
    }
    if value.is_empty() {
        // SAFETY: cf and cmd are nginx's, passed to this setter.
        return unsafe { invalid(cf, cmd, b"", "it must be a directory or \"off\"") };
    }
    // SAFETY: cf->cycle is valid while parsing; a relative path becomes prefix-relative,
    // allocated from the cycle pool.
    if unsafe { ngx_conf_full_name((*cf).cycle, value, 0) } != 0 {
        return NGX_CONF_ERROR;
    }
    let Ok(path) = CString::new(value.as_bytes()) else {
        // SAFETY: cf and cmd are nginx's, passed to this setter.
        return unsafe { invalid(cf, cmd, value.as_bytes(), "it contains a NUL byte") };
    };
    // SAFETY: cf->ctx is an http conf ctx in the contexts this directive is allowed in.
    let Some(mcf) = Module::main_conf_mut(unsafe { &*cf }) else {
        return NGX_CONF_ERROR;
    };
    let id = match mcf.dirs.iter().position(|d| *d == path) {
        Some(i) => i,
        None => {
            mcf.dirs.push(path.clone());
            mcf.dirs.len() - 1
        }
    };
    lcf.token_dir = Some(Some(TokenDir {
        path,
        id: id as u32,
    }));
    NGX_CONF_OK
}

extern "C" fn set_cookie_name(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: conf is this module's LocConf; cf and cmd are nginx's.
    unsafe {
        let lcf = &mut *conf.cast::<LocConf>();
        set_value(
            cf,
            cmd,
            &mut lcf.cookie_name,
            |v| match directive::is_cookie_name(v) {
                true => Ok(v.to_vec()),
                false => Err("it must be a cookie name".into()),
            },
        )
    }
}

extern "C" fn set_origins(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: conf is this module's LocConf.
    let lcf = unsafe { &mut *conf.cast::<LocConf>() };
    if lcf.origins.is_some() {
        return IS_DUPLICATE;
    }
    // SAFETY: called by nginx as a directive setter.
    let values = unsafe { args(cf) };
    match OriginPolicy::from_args(values.iter().map(|v| v.as_bytes())) {
        Ok(policy) => {
            lcf.origins = Some(policy);
            NGX_CONF_OK
        }
        // SAFETY: cf and cmd are nginx's, passed to this setter.
        Err((value, why)) => unsafe { invalid(cf, cmd, value, &why.to_string()) },
    }
}

extern "C" fn set_client_ip_header(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: conf is this module's LocConf; cf and cmd are nginx's.
    unsafe {
        let lcf = &mut *conf.cast::<LocConf>();
        set_value(cf, cmd, &mut lcf.client_ip_header, |v| match v {
            b"off" => Ok(None),
            v if !directive::is_header_name(v) => Err("it must be a header name or \"off\"".into()),
            // nginx keeps pointers to these in r->headers_in; replacing one behind its back
            // would leave them pointing at an unlinked entry.
            v if nginx_parses_header(v) => Err("nginx itself parses this header".into()),
            v if directive::is_reserved_header(v) => {
                Err("the access check or the WebSocket handshake needs this header".into())
            }
            v => Ok(Some(header_name(v))),
        })
    }
}

extern "C" fn set_max_age(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: conf is this module's LocConf; cf and cmd are nginx's.
    unsafe {
        let lcf = &mut *conf.cast::<LocConf>();
        set_value(cf, cmd, &mut lcf.max_age_secs, |v| match v {
            b"off" => Ok(None),
            v => match directive::parse_time_secs(v) {
                Some(secs) if secs > 0 => Ok(Some(secs)),
                _ => Err("it must be a time of 1s or more, or \"off\"".into()),
            },
        })
    }
}

extern "C" fn set_cache_ttl(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: conf is this module's MainConf (NGX_HTTP_MAIN_CONF_OFFSET); cf and cmd are nginx's.
    unsafe {
        let mcf = &mut *conf.cast::<MainConf>();
        set_value(cf, cmd, &mut mcf.cache_ttl_ms, |v| {
            directive::parse_time_ms(v)
                .ok_or_else(|| "it must be a time such as 1s or 500ms".into())
        })
    }
}

extern "C" fn set_cache_size(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: conf is this module's MainConf (NGX_HTTP_MAIN_CONF_OFFSET); cf and cmd are nginx's.
    unsafe {
        let mcf = &mut *conf.cast::<MainConf>();
        set_value(cf, cmd, &mut mcf.cache_size, |v| {
            directive::parse_cache_size(v).ok_or_else(|| {
                format!(
                    "it must be a number from 1 to {}",
                    directive::MAX_CACHE_SIZE
                )
            })
        })
    }
}

/// The shape shared by the one-argument setters: refuse a repeat in the same block, parse the
/// argument, then store it or report `invalid value`.
///
/// # Safety
/// `cf` and `cmd` must be the ones nginx passed to the calling setter.
unsafe fn set_value<T>(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    slot: &mut Option<T>,
    parse: impl FnOnce(&[u8]) -> Result<T, String>,
) -> *mut c_char {
    if slot.is_some() {
        return IS_DUPLICATE;
    }
    // SAFETY: per this function's contract.
    let value = unsafe { args(cf)[0].as_bytes() };
    match parse(value) {
        Ok(v) => {
            *slot = Some(v);
            NGX_CONF_OK
        }
        // SAFETY: per this function's contract.
        Err(why) => unsafe { invalid(cf, cmd, value, &why) },
    }
}

fn header_name(name: &[u8]) -> HeaderName {
    let lowcase = name.to_ascii_lowercase();
    // SAFETY: ngx_hash_key only reads `len` bytes from the pointer.
    let hash = unsafe { ngx_hash_key(lowcase.as_ptr().cast_mut(), lowcase.len()) };
    HeaderName {
        name: name.to_vec(),
        lowcase,
        hash,
    }
}

/// Is `name` one of the request headers nginx keeps a pointer to in `r->headers_in`?
fn nginx_parses_header(name: &[u8]) -> bool {
    // SAFETY: ngx_http_headers_in is nginx's static table, terminated by an entry with an
    // empty name.
    unsafe {
        let mut h = ptr::addr_of!(ngx_http_headers_in).cast::<ngx_http_header_t>();
        while (*h).name.len != 0 {
            if (*h).name.as_bytes().eq_ignore_ascii_case(name) {
                return true;
            }
            h = h.add(1);
        }
    }
    false
}
