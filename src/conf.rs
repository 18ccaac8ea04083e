//! The `wcs_token_auth*` directives, in nginx's order: the conf structs, the command table, the
//! setters, then merge and init.
//!
//! Setters only turn nginx strings into bytes and back: every value rule and its message is in
//! `wcs_token_auth_core::directive`, and an error reads, as in nginx's own modules,
//! `invalid value "V" in "NAME" directive, WHY`.

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
use wcs_token_auth_core::auth::Policy;
use wcs_token_auth_core::cache::TokenCache;
use wcs_token_auth_core::directive;
use wcs_token_auth_core::header_name::same_cgi_name;
use wcs_token_auth_core::origin::OriginPolicy;

use crate::Module;

/// `http`-level state: the cache settings, the cache itself, and what the handler needs to
/// find quickly.
#[derive(Debug)]
pub struct MainConf {
    /// `wcs_token_auth_cache_ttl`; `None` until set or defaulted by [`init_main_conf`].
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

/// Per-location settings: the directives as written at this level (`None`: not here), then
/// what merge builds from them for the handler.
#[derive(Debug)]
pub struct LocConf {
    /// `Some(None)` is `wcs_token_auth off`.
    token_dir: Option<Option<TokenDir>>,
    cookie_name: Option<Vec<u8>>,
    origins: Option<OriginPolicy>,
    require_origin: ngx_flag_t,
    /// `Some(None)` is `off`.
    client_ip_header: Option<Option<HeaderName>>,
    /// `Some(None)` is `off`.
    max_age_secs: Option<Option<u64>>,
    /// `wcs_token_auth_session_check`, in milliseconds; `Some(None)` is `off`.
    session_check_ms: Option<Option<u64>>,
    /// What the handler enforces here; `None` where the module is off.
    pub access: Option<Access>,
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
            session_check_ms: None,
            access: None,
        }
    }
}

/// A location's merged settings, ready for the handler.
#[derive(Debug)]
pub struct Access {
    pub policy: Policy,
    pub client_ip_header: Option<HeaderName>,
    /// How often the sessions this location allows are re-checked; `None`: never.
    pub session_check_ms: Option<u64>,
}

#[derive(Debug, Clone)]
struct TokenDir {
    path: CString,
    id: u32,
}

/// A request header the module sets, with the lowercase form and hash nginx expects.
#[derive(Debug, Clone)]
pub struct HeaderName {
    pub name: Vec<u8>,
    pub lowcase: Vec<u8>,
    pub hash: ngx_uint_t,
}

type Setter = unsafe extern "C" fn(*mut ngx_conf_t, *mut ngx_command_t, *mut c_void) -> *mut c_char;

const ANY_LEVEL: u32 = NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF;

const fn command(
    name: ngx_str_t,
    type_: u32,
    (set, offset): (Setter, usize),
    conf: usize,
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

/// [`set_value`] for rule `$rule`, aimed at `$conf.$field`; fails to compile unless the
/// field is an `Option` of the rule's value, which is what the setter writes there.
macro_rules! value_slot {
    ($conf:ident, $field:ident, $rule:ty) => {{
        const _: fn(&mut $conf) -> &mut Option<<$rule as Rule>::Value> = |c| &mut c.$field;
        (set_value::<$rule> as Setter, offset_of!($conf, $field))
    }};
}

pub static mut COMMANDS: [ngx_command_t; 10] = [
    command(
        ngx_string!("wcs_token_auth"),
        ANY_LEVEL | NGX_CONF_TAKE1,
        (set_token_dir, 0),
        NGX_HTTP_LOC_CONF_OFFSET,
    ),
    command(
        ngx_string!("wcs_token_auth_cookie"),
        ANY_LEVEL | NGX_CONF_TAKE1,
        value_slot!(LocConf, cookie_name, CookieName),
        NGX_HTTP_LOC_CONF_OFFSET,
    ),
    command(
        ngx_string!("wcs_token_auth_origins"),
        ANY_LEVEL | NGX_CONF_1MORE,
        (set_origins, 0),
        NGX_HTTP_LOC_CONF_OFFSET,
    ),
    command(
        ngx_string!("wcs_token_auth_require_origin"),
        ANY_LEVEL | NGX_CONF_FLAG,
        (ngx_conf_set_flag_slot, offset_of!(LocConf, require_origin)),
        NGX_HTTP_LOC_CONF_OFFSET,
    ),
    command(
        ngx_string!("wcs_token_auth_client_ip_header"),
        ANY_LEVEL | NGX_CONF_TAKE1,
        value_slot!(LocConf, client_ip_header, ClientIpHeader),
        NGX_HTTP_LOC_CONF_OFFSET,
    ),
    command(
        ngx_string!("wcs_token_auth_max_age"),
        ANY_LEVEL | NGX_CONF_TAKE1,
        value_slot!(LocConf, max_age_secs, MaxAge),
        NGX_HTTP_LOC_CONF_OFFSET,
    ),
    command(
        ngx_string!("wcs_token_auth_session_check"),
        ANY_LEVEL | NGX_CONF_TAKE1,
        value_slot!(LocConf, session_check_ms, SessionCheck),
        NGX_HTTP_LOC_CONF_OFFSET,
    ),
    // Not ngx_conf_set_msec_slot / ngx_conf_set_num_slot: they would report a bad value as a
    // bare "invalid value", without the value and the rule the manual documents, and
    // ngx_conf_set_num_slot accepts a cache size of 0.
    command(
        ngx_string!("wcs_token_auth_cache_ttl"),
        NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1,
        value_slot!(MainConf, cache_ttl_ms, CacheTtl),
        NGX_HTTP_MAIN_CONF_OFFSET,
    ),
    command(
        ngx_string!("wcs_token_auth_cache_size"),
        NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1,
        value_slot!(MainConf, cache_size, CacheSize),
        NGX_HTTP_MAIN_CONF_OFFSET,
    ),
    ngx_command_t::empty(),
];

const IS_DUPLICATE: *mut c_char = c"is duplicate".as_ptr().cast_mut();

/// The directive a setter is parsing.
struct Directive<'a> {
    cf: *mut ngx_conf_t,
    name: &'a [u8],
    /// The arguments after the name.
    args: &'a [ngx_str_t],
}

impl Directive<'_> {
    /// # Safety
    /// `cf` and `cmd` must be the ones nginx passed to the setter that is running, and the
    /// result must not outlive that call.
    unsafe fn new(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t) -> Self {
        // SAFETY: during a setter call cf->args is an array of the directive's name and
        // arguments, and cmd is one of this module's static commands.
        let (all, name) = unsafe {
            (
                (*(*cf).args).as_slice::<ngx_str_t>(),
                (*cmd).name.as_bytes(),
            )
        };
        Directive {
            cf,
            name,
            args: all.get(1..).unwrap_or_default(),
        }
    }

    /// The argument of a one-argument directive.
    fn arg(&self) -> &[u8] {
        self.args.first().map_or(&[], ngx_str_t::as_bytes)
    }

    /// Logs `invalid value "V" in "NAME" directive, WHY` and fails the configuration.
    fn invalid(&self, value: &[u8], why: &str) -> *mut c_char {
        let msg = format!(
            "invalid value \"{}\" in \"{}\" directive, {why}",
            value.escape_ascii(),
            self.name.escape_ascii()
        );
        let msg = CString::new(msg).unwrap_or_default();
        // SAFETY: cf is the running setter's (see `new`); "%s" consumes exactly the one
        // NUL-terminated argument given.
        unsafe { ngx_conf_log_error(NGX_LOG_EMERG as _, self.cf, 0, c"%s".as_ptr(), msg.as_ptr()) };
        NGX_CONF_ERROR
    }
}

/// `wcs_token_auth DIR | off`: the directory also gets its id in the http block's cache.
///
/// # Safety
/// Only nginx calls it, as the setter of a command whose conf is this module's `LocConf`.
unsafe extern "C" fn set_token_dir(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: per this function's contract, conf is the LocConf of the block being parsed.
    let lcf = unsafe { &mut *conf.cast::<LocConf>() };
    if lcf.token_dir.is_some() {
        return IS_DUPLICATE;
    }
    // SAFETY: cf and cmd are what nginx passed to this setter, and d does not outlive it.
    let d = unsafe { Directive::new(cf, cmd) };
    let dir = match directive::token_dir(d.arg()) {
        Ok(Some(dir)) => dir,
        Ok(None) => {
            lcf.token_dir = Some(None);
            return NGX_CONF_OK;
        }
        Err(why) => return d.invalid(d.arg(), why),
    };
    let mut full = ngx_str_t {
        len: dir.len(),
        data: dir.as_ptr().cast_mut(),
    };
    // SAFETY: cf->cycle is valid while parsing; nginx reads `full` and, for a relative path,
    // points it at a prefix-relative copy in the cycle pool, never writing through the old data.
    if unsafe { ngx_conf_full_name((*cf).cycle, &mut full, 0) } != 0 {
        return NGX_CONF_ERROR;
    }
    let Ok(path) = CString::new(full.as_bytes()) else {
        return d.invalid(full.as_bytes(), "it contains a NUL byte");
    };
    // SAFETY: cf is valid (per this function's contract) and its ctx is an http conf ctx in
    // every block this directive is allowed in.
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

/// `wcs_token_auth_origins any | ORIGIN...`.
///
/// # Safety
/// Only nginx calls it, as the setter of a command whose conf is this module's `LocConf`.
unsafe extern "C" fn set_origins(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: per this function's contract, conf is the LocConf of the block being parsed.
    let lcf = unsafe { &mut *conf.cast::<LocConf>() };
    if lcf.origins.is_some() {
        return IS_DUPLICATE;
    }
    // SAFETY: cf and cmd are what nginx passed to this setter, and d does not outlive it.
    let d = unsafe { Directive::new(cf, cmd) };
    match OriginPolicy::from_args(d.args.iter().map(ngx_str_t::as_bytes)) {
        Ok(policy) => {
            lcf.origins = Some(policy);
            NGX_CONF_OK
        }
        Err((value, why)) => d.invalid(value, &why.to_string()),
    }
}

/// A one-argument directive: its rule in the core crate, and what the conf stores.
trait Rule {
    type Value;
    fn parse(arg: &[u8]) -> Result<Self::Value, &'static str>;
}

struct CookieName;
impl Rule for CookieName {
    type Value = Vec<u8>;
    fn parse(arg: &[u8]) -> Result<Vec<u8>, &'static str> {
        directive::cookie_name(arg).map(<[u8]>::to_vec)
    }
}

struct ClientIpHeader;
impl Rule for ClientIpHeader {
    type Value = Option<HeaderName>;
    fn parse(arg: &[u8]) -> Result<Option<HeaderName>, &'static str> {
        directive::client_ip_header(arg, nginx_parses_header).map(|h| h.map(header_name))
    }
}

struct MaxAge;
impl Rule for MaxAge {
    type Value = Option<u64>;
    fn parse(arg: &[u8]) -> Result<Option<u64>, &'static str> {
        directive::max_age(arg)
    }
}

struct SessionCheck;
impl Rule for SessionCheck {
    type Value = Option<u64>;
    fn parse(arg: &[u8]) -> Result<Option<u64>, &'static str> {
        directive::session_check(arg)
    }
}

struct CacheTtl;
impl Rule for CacheTtl {
    type Value = u64;
    fn parse(arg: &[u8]) -> Result<u64, &'static str> {
        directive::cache_ttl(arg)
    }
}

struct CacheSize;
impl Rule for CacheSize {
    type Value = usize;
    fn parse(arg: &[u8]) -> Result<usize, &'static str> {
        directive::cache_size(arg)
    }
}

/// The setter of every one-argument directive, in the manner of nginx's stock slots: refuses a
/// repeat in the same block, parses the argument by `R`'s rule and stores it at `cmd->offset`.
///
/// # Safety
/// Only nginx calls it, as the setter of a command built by `value_slot!`, so `cmd->offset` is
/// that of an `Option<R::Value>` field of the conf nginx passes.
unsafe extern "C" fn set_value<R: Rule>(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: per this function's contract, the offset is inside the conf and the field there
    // has that type; nothing else refers to the field during the setter.
    let slot = unsafe { &mut *conf.byte_add((*cmd).offset).cast::<Option<R::Value>>() };
    if slot.is_some() {
        return IS_DUPLICATE;
    }
    // SAFETY: cf and cmd are what nginx passed to this setter, and d does not outlive it.
    let d = unsafe { Directive::new(cf, cmd) };
    match R::parse(d.arg()) {
        Ok(value) => {
            *slot = Some(value);
            NGX_CONF_OK
        }
        Err(why) => d.invalid(d.arg(), why),
    }
}

impl Merge for LocConf {
    /// Inherits what this level does not set, writes the defaults, and builds [`Access`].
    fn merge(&mut self, prev: &LocConf) -> Result<(), MergeConfigError> {
        fn merged<T: Clone>(
            this: &mut Option<T>,
            prev: &Option<T>,
            default: impl FnOnce() -> T,
        ) -> T {
            this.get_or_insert_with(|| prev.clone().unwrap_or_else(default))
                .clone()
        }
        let token_dir = merged(&mut self.token_dir, &prev.token_dir, || None);
        let cookie_name = merged(&mut self.cookie_name, &prev.cookie_name, || {
            b"AUTH".to_vec()
        });
        let origins = merged(&mut self.origins, &prev.origins, || {
            OriginPolicy::SameOrigin
        });
        let client_ip_header = merged(&mut self.client_ip_header, &prev.client_ip_header, || {
            Some(header_name(b"X-Client-IP"))
        });
        let max_age_secs = merged(&mut self.max_age_secs, &prev.max_age_secs, || None);
        let session_check_ms = merged(&mut self.session_check_ms, &prev.session_check_ms, || None);
        if self.require_origin == NGX_CONF_UNSET as ngx_flag_t {
            self.require_origin = match prev.require_origin {
                p if p == NGX_CONF_UNSET as ngx_flag_t => 0,
                p => p,
            };
        }
        self.access = token_dir.map(|dir| Access {
            policy: Policy {
                dir: Some(dir.path),
                dir_id: dir.id,
                signed: None,
                cookie_name,
                origins,
                require_origin: self.require_origin == 1,
                max_age_secs,
            },
            client_ip_header,
            session_check_ms,
        });
        Ok(())
    }
}

/// Writes the cache defaults once the `http` block is parsed, and sizes the cache.
///
/// # Safety
/// Only nginx calls it, with the `MainConf` that create_main_conf allocated for this module.
pub unsafe extern "C" fn init_main_conf(_cf: *mut ngx_conf_t, conf: *mut c_void) -> *mut c_char {
    // SAFETY: conf is this module's MainConf (this function's contract), which nothing else
    // refers to while nginx initialises it.
    let mcf = unsafe { &mut *conf.cast::<MainConf>() };
    let ttl = *mcf.cache_ttl_ms.get_or_insert(1000);
    let size = *mcf.cache_size.get_or_insert(10_000);
    mcf.cache = RefCell::new(TokenCache::new(size, ttl));
    NGX_CONF_OK
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

/// Is `name` one of the request headers nginx keeps a pointer to in `r->headers_in`, in any
/// spelling the request path would remove as that header?
fn nginx_parses_header(name: &[u8]) -> bool {
    // SAFETY: ngx_http_headers_in is nginx's static table, terminated by an entry with an
    // empty name.
    unsafe {
        let mut h = ptr::addr_of!(ngx_http_headers_in).cast::<ngx_http_header_t>();
        while (*h).name.len != 0 {
            if same_cgi_name((*h).name.as_bytes(), name) {
                return true;
            }
            h = h.add(1);
        }
    }
    false
}
