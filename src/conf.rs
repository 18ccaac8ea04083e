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
use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::rc::Rc;

use ngx::core::{NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::ffi::{
    ngx_command_t, ngx_conf_full_name, ngx_conf_log_error, ngx_conf_set_flag_slot, ngx_conf_t,
    ngx_err_t, ngx_flag_t, ngx_hash_key, ngx_http_header_t, ngx_http_headers_in, ngx_int_t,
    ngx_str_t, ngx_uint_t, NGX_CONF_1MORE, NGX_CONF_FLAG, NGX_CONF_TAKE1, NGX_CONF_TAKE12,
    NGX_CONF_UNSET, NGX_HTTP_LOC_CONF, NGX_HTTP_LOC_CONF_OFFSET, NGX_HTTP_MAIN_CONF,
    NGX_HTTP_MAIN_CONF_OFFSET, NGX_HTTP_SRV_CONF, NGX_LOG_EMERG,
};
use ngx::http::HttpModuleMainConf;
use ngx::ngx_string;
use wcs_token_auth_core::auth::{Policy, SignedPolicy};
use wcs_token_auth_core::cache::TokenCache;
use wcs_token_auth_core::directive::{self, TokenAuth};
use wcs_token_auth_core::header_name::same_cgi_name;
use wcs_token_auth_core::origin::OriginPolicy;
use wcs_token_auth_core::signed::{KeySet, SignedRules};

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
    /// Key sets by absolute path: each file is read once per configuration load.
    key_sets: Vec<(CString, Rc<KeySet>)>,
    /// Distinct signed rules; an index plus [`RULES_ID_BASE`] is their id in the cache keys.
    signed_rules: Vec<RulesKey>,
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
            key_sets: Vec::new(),
            signed_rules: Vec::new(),
            status_var: NGX_CONF_UNSET as ngx_int_t,
            cache: RefCell::new(TokenCache::new(0, 0)),
        }
    }
}

/// Signed rules' ids start here, so that they never equal a token directory's id.
const RULES_ID_BASE: u32 = 0x8000_0000;

/// What makes two locations' signed rules the same: then they share cache entries.
#[derive(Debug, PartialEq, Eq)]
struct RulesKey {
    /// Index in [`MainConf::key_sets`].
    key_set: usize,
    leeway_secs: u64,
    issuer: Option<String>,
    audience: Option<String>,
    revoked: Option<CString>,
}

impl MainConf {
    /// The cache id of `key`, the same for equal rules.
    fn rules_id(&mut self, key: RulesKey) -> u32 {
        let i = match self.signed_rules.iter().position(|k| *k == key) {
            Some(i) => i,
            None => {
                self.signed_rules.push(key);
                self.signed_rules.len() - 1
            }
        };
        RULES_ID_BASE.wrapping_add(i as u32)
    }
}

/// Per-location settings: the directives as written at this level (`None`: not here), then
/// what merge builds from them for the handler.
#[derive(Debug)]
pub struct LocConf {
    /// `Some(None)` is `wcs_token_auth off`.
    token_auth: Option<Option<TokenAuthConf>>,
    cookie_name: Option<Vec<u8>>,
    origins: Option<OriginPolicy>,
    require_origin: ngx_flag_t,
    /// `Some(None)` is `off`.
    client_ip_header: Option<Option<HeaderName>>,
    /// `Some(None)` is `off`.
    max_age_secs: Option<Option<u64>>,
    /// `wcs_token_auth_session_check`, in milliseconds; `Some(None)` is `off`.
    session_check_ms: Option<Option<u64>>,
    jwt_leeway_secs: Option<u64>,
    jwt_issuer: Option<String>,
    jwt_audience: Option<String>,
    /// `wcs_token_auth_revoked`, absolute; `Some(None)` is `off`.
    revoked: Option<Option<CString>>,
    /// What the handler enforces here; `None` where the module is off.
    pub access: Option<Access>,
}

impl Default for LocConf {
    fn default() -> Self {
        LocConf {
            token_auth: None,
            cookie_name: None,
            origins: None,
            require_origin: NGX_CONF_UNSET as ngx_flag_t,
            client_ip_header: None,
            max_age_secs: None,
            session_check_ms: None,
            jwt_leeway_secs: None,
            jwt_issuer: None,
            jwt_audience: None,
            revoked: None,
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

/// `wcs_token_auth DIR jwks=FILE`: at least one of the two.
#[derive(Debug, Clone)]
struct TokenAuthConf {
    dir: Option<TokenDir>,
    keys: Option<KeySetRef>,
}

#[derive(Debug, Clone)]
struct TokenDir {
    path: CString,
    id: u32,
}

#[derive(Debug, Clone)]
struct KeySetRef {
    /// Index in [`MainConf::key_sets`].
    index: usize,
    keys: Rc<KeySet>,
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

pub static mut COMMANDS: [ngx_command_t; 14] = [
    command(
        ngx_string!("wcs_token_auth"),
        ANY_LEVEL | NGX_CONF_TAKE12,
        (set_token_auth, 0),
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
    command(
        ngx_string!("wcs_token_auth_jwt_leeway"),
        ANY_LEVEL | NGX_CONF_TAKE1,
        value_slot!(LocConf, jwt_leeway_secs, JwtLeeway),
        NGX_HTTP_LOC_CONF_OFFSET,
    ),
    command(
        ngx_string!("wcs_token_auth_jwt_issuer"),
        ANY_LEVEL | NGX_CONF_TAKE1,
        value_slot!(LocConf, jwt_issuer, JwtClaimText),
        NGX_HTTP_LOC_CONF_OFFSET,
    ),
    command(
        ngx_string!("wcs_token_auth_jwt_audience"),
        ANY_LEVEL | NGX_CONF_TAKE1,
        value_slot!(LocConf, jwt_audience, JwtClaimText),
        NGX_HTTP_LOC_CONF_OFFSET,
    ),
    command(
        ngx_string!("wcs_token_auth_revoked"),
        ANY_LEVEL | NGX_CONF_TAKE1,
        (set_revoked, 0),
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
        let value = value.escape_ascii();
        self.emerg(
            0,
            &format!("invalid value \"{value}\" in {}, {why}", self.in_name()),
        )
    }

    /// `"NAME" directive`, as messages name it.
    fn in_name(&self) -> String {
        format!("\"{}\" directive", self.name.escape_ascii())
    }

    /// Logs `msg` (nginx appends the system error `err`, if any, and the file and line) and
    /// fails the configuration.
    fn emerg(&self, err: ngx_err_t, msg: &str) -> *mut c_char {
        let msg = CString::new(msg).unwrap_or_default();
        // SAFETY: cf is the running setter's (see `new`); "%s" consumes exactly the one
        // NUL-terminated argument given.
        unsafe {
            ngx_conf_log_error(
                NGX_LOG_EMERG as _,
                self.cf,
                err,
                c"%s".as_ptr(),
                msg.as_ptr(),
            )
        };
        NGX_CONF_ERROR
    }

    /// `path` made absolute against nginx's prefix, or with `conf_prefix` against the
    /// configuration's; `Err` is the setter's result after the error is logged.
    fn full_path(&self, path: &[u8], conf_prefix: bool) -> Result<CString, *mut c_char> {
        let mut full = ngx_str_t {
            len: path.len(),
            data: path.as_ptr().cast_mut(),
        };
        // SAFETY: cf->cycle is valid while parsing; nginx reads `full` and, for a relative
        // path, points it at a prefixed copy in the cycle pool, never writing through the old
        // data.
        if unsafe { ngx_conf_full_name((*self.cf).cycle, &mut full, conf_prefix.into()) } != 0 {
            return Err(NGX_CONF_ERROR);
        }
        CString::new(full.as_bytes()).map_err(|_| self.invalid(path, "it contains a NUL byte"))
    }
}

/// `wcs_token_auth [DIR] [jwks=FILE] | off`: the directory gets its id in the http block's
/// cache, and the key set is read and checked now, once per file and configuration load.
///
/// # Safety
/// Only nginx calls it, as the setter of a command whose conf is this module's `LocConf`.
unsafe extern "C" fn set_token_auth(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: per this function's contract, conf is the LocConf of the block being parsed.
    let lcf = unsafe { &mut *conf.cast::<LocConf>() };
    if lcf.token_auth.is_some() {
        return IS_DUPLICATE;
    }
    // SAFETY: cf and cmd are what nginx passed to this setter, and d does not outlive it.
    let d = unsafe { Directive::new(cf, cmd) };
    let args: Vec<&[u8]> = d.args.iter().map(ngx_str_t::as_bytes).collect();
    let (dir, jwks) = match directive::token_auth(&args) {
        Ok(TokenAuth::Off) => {
            lcf.token_auth = Some(None);
            return NGX_CONF_OK;
        }
        Ok(TokenAuth::On { dir, jwks }) => (dir, jwks),
        Err((value, why)) => return d.invalid(value, why),
    };
    // SAFETY: cf is valid (per this function's contract) and its ctx is an http conf ctx in
    // every block this directive is allowed in.
    let Some(mcf) = Module::main_conf_mut(unsafe { &*cf }) else {
        return NGX_CONF_ERROR;
    };
    let dir = match dir.map(|dir| d.full_path(dir, false)).transpose() {
        Ok(dir) => dir.map(|path| TokenDir {
            id: intern(&mut mcf.dirs, &path) as u32,
            path,
        }),
        Err(rc) => return rc,
    };
    // Relative to the configuration, as nginx's own key and certificate files are.
    let keys = match jwks.map(|file| d.full_path(file, true)).transpose() {
        Ok(None) => None,
        Ok(Some(path)) => match key_set(&d, mcf, path) {
            Ok(keys) => Some(keys),
            Err(rc) => return rc,
        },
        Err(rc) => return rc,
    };
    lcf.token_auth = Some(Some(TokenAuthConf { dir, keys }));
    NGX_CONF_OK
}

/// The index of `path` in `paths`, added if new.
fn intern(paths: &mut Vec<CString>, path: &CString) -> usize {
    match paths.iter().position(|p| p == path) {
        Some(i) => i,
        None => {
            paths.push(path.clone());
            paths.len() - 1
        }
    }
}

/// The key set in file `path`, read and parsed unless this load has already done so; `Err`
/// is the setter's result after the emerg line naming the file and the reason.
fn key_set(d: &Directive<'_>, mcf: &mut MainConf, path: CString) -> Result<KeySetRef, *mut c_char> {
    if let Some(index) = mcf.key_sets.iter().position(|(p, _)| *p == path) {
        let keys = mcf.key_sets.get(index).map(|(_, k)| Rc::clone(k));
        return keys
            .map(|keys| KeySetRef { index, keys })
            .ok_or(NGX_CONF_ERROR);
    }
    let shown = path.to_bytes().escape_ascii();
    let json = std::fs::read(OsStr::from_bytes(path.to_bytes())).map_err(|e| {
        let err = e.raw_os_error().unwrap_or(0) as ngx_err_t;
        d.emerg(
            err,
            &format!("cannot read key set \"{shown}\" in {}", d.in_name()),
        )
    })?;
    let keys = KeySet::parse(&json).map_err(|why| {
        d.emerg(
            0,
            &format!("invalid key set \"{shown}\" in {}, {why}", d.in_name()),
        )
    })?;
    let keys = Rc::new(keys);
    mcf.key_sets.push((path, Rc::clone(&keys)));
    Ok(KeySetRef {
        index: mcf.key_sets.len() - 1,
        keys,
    })
}

/// `wcs_token_auth_revoked DIR | off`.
///
/// # Safety
/// Only nginx calls it, as the setter of a command whose conf is this module's `LocConf`.
unsafe extern "C" fn set_revoked(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: per this function's contract, conf is the LocConf of the block being parsed.
    let lcf = unsafe { &mut *conf.cast::<LocConf>() };
    if lcf.revoked.is_some() {
        return IS_DUPLICATE;
    }
    // SAFETY: cf and cmd are what nginx passed to this setter, and d does not outlive it.
    let d = unsafe { Directive::new(cf, cmd) };
    match directive::revoked_dir(d.arg()) {
        Ok(None) => lcf.revoked = Some(None),
        Ok(Some(dir)) => match d.full_path(dir, false) {
            Ok(path) => lcf.revoked = Some(Some(path)),
            Err(rc) => return rc,
        },
        Err(why) => return d.invalid(d.arg(), why),
    }
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

struct JwtLeeway;
impl Rule for JwtLeeway {
    type Value = u64;
    fn parse(arg: &[u8]) -> Result<u64, &'static str> {
        directive::jwt_leeway(arg)
    }
}

struct JwtClaimText;
impl Rule for JwtClaimText {
    type Value = String;
    fn parse(arg: &[u8]) -> Result<String, &'static str> {
        directive::jwt_claim_text(arg)
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

/// Merges a location's settings with its parent's, with the http block's conf at hand for
/// the signed rules' ids.
///
/// # Safety
/// Only nginx calls it, as this module's merge_loc_conf, with two `LocConf`s that
/// create_loc_conf allocated, while the http block's ctx is cf's.
pub unsafe extern "C" fn merge_loc_conf(
    cf: *mut ngx_conf_t,
    prev: *mut c_void,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: per this function's contract, prev and conf are distinct LocConfs, and cf is
    // valid with the http block's ctx, whose MainConf is a third allocation.
    let (prev, this, mcf) = unsafe {
        (
            &*prev.cast::<LocConf>(),
            &mut *conf.cast::<LocConf>(),
            Module::main_conf_mut(&*cf),
        )
    };
    let Some(mcf) = mcf else {
        return NGX_CONF_ERROR;
    };
    this.merge(prev, mcf);
    NGX_CONF_OK
}

impl LocConf {
    /// Inherits what this level does not set, writes the defaults, and builds [`Access`].
    fn merge(&mut self, prev: &LocConf, mcf: &mut MainConf) {
        fn merged<T: Clone>(
            this: &mut Option<T>,
            prev: &Option<T>,
            default: impl FnOnce() -> T,
        ) -> T {
            this.get_or_insert_with(|| prev.clone().unwrap_or_else(default))
                .clone()
        }
        /// For a setting without a default.
        fn inherited<T: Clone>(this: &mut Option<T>, prev: &Option<T>) -> Option<T> {
            if this.is_none() {
                this.clone_from(prev);
            }
            this.clone()
        }
        let token_auth = merged(&mut self.token_auth, &prev.token_auth, || None);
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
        let leeway_secs = merged(&mut self.jwt_leeway_secs, &prev.jwt_leeway_secs, || 0);
        let issuer = inherited(&mut self.jwt_issuer, &prev.jwt_issuer);
        let audience = inherited(&mut self.jwt_audience, &prev.jwt_audience);
        let revoked = merged(&mut self.revoked, &prev.revoked, || None);
        if self.require_origin == NGX_CONF_UNSET as ngx_flag_t {
            self.require_origin = match prev.require_origin {
                p if p == NGX_CONF_UNSET as ngx_flag_t => 0,
                p => p,
            };
        }
        let Some(auth) = token_auth else {
            self.access = None;
            return;
        };
        let signed = auth.keys.map(|keys| {
            let id = mcf.rules_id(RulesKey {
                key_set: keys.index,
                leeway_secs,
                issuer: issuer.clone(),
                audience: audience.clone(),
                revoked: revoked.clone(),
            });
            let rules = SignedRules {
                keys: keys.keys,
                leeway_secs,
                issuer,
                audience,
                revoked,
            };
            SignedPolicy { rules, id }
        });
        self.access = Some(Access {
            policy: Policy {
                dir_id: auth.dir.as_ref().map_or(0, |d| d.id),
                dir: auth.dir.map(|d| d.path),
                signed,
                cookie_name,
                origins,
                require_origin: self.require_origin == 1,
                max_age_secs,
            },
            client_ip_header,
            session_check_ms,
        });
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
