//! `$wcs_token_auth_status`: the decision, for `log_format`; `$wcs_token_auth_claim_NAME`:
//! a claim of the signed token that granted the request, for `proxy_set_header`.
//!
//! The handler stores the status straight into `r->variables[index]`, which, unlike module
//! contexts, survives the internal redirect that `error_page 403` makes, so the access log
//! still shows why the request was refused. The granting signed token is kept in the module
//! context of the request and of its main request.

use core::{ptr, slice};

use ngx::core::Status;
use ngx::ffi::{
    ngx_conf_t, ngx_http_add_variable, ngx_http_get_variable_index, ngx_http_request_t, ngx_int_t,
    ngx_pcalloc, ngx_pnalloc, ngx_str_t, ngx_uint_t, ngx_variable_value_t,
    NGX_HTTP_VAR_NOCACHEABLE, NGX_HTTP_VAR_PREFIX,
};
use ngx::http::{HttpModule, HttpModuleMainConf};
use ngx::ngx_string;
use wcs_token_auth_core::{auth, signed};

use crate::Module;

/// The prefix of the claim variables; what follows it names the claim.
const CLAIM_PREFIX: &[u8] = b"wcs_token_auth_claim_";

/// The module's request context: the signed token that granted the request, for the claim
/// variables. Lives in the main request's pool, as does the token it points at: a copy, not
/// the `Cookie` header's bytes, which nginx overwrites with the client's next bytes once the
/// connection is upgraded (the header buffer becomes the client-to-upstream buffer).
#[repr(C)]
struct RequestCtx {
    token: *const u8,
    /// 0: no signed token granted this request.
    len: usize,
}

/// Declares the variables and remembers the status variable's index.
///
/// # Safety
/// `cf` must be the conf nginx passes to `preconfiguration` of an http module: its `ctx` is
/// the http block's, whose main confs `create_main_conf` has already allocated.
pub unsafe fn register(cf: *mut ngx_conf_t) -> ngx_int_t {
    let mut name: ngx_str_t = ngx_string!("wcs_token_auth_status");
    // SAFETY: cf is valid per this function's contract; both calls copy `name` into cf->pool
    // (lowercased) and keep no pointer to it.
    let var = unsafe { ngx_http_add_variable(cf, &mut name, 0) };
    if var.is_null() {
        return Status::NGX_ERROR.into();
    }
    // SAFETY: a non-null result is the variable's entry, which nginx keeps in cf->pool.
    unsafe { (*var).get_handler = Some(get_unset) };
    // SAFETY: as for ngx_http_add_variable above.
    let index = unsafe { ngx_http_get_variable_index(cf, &mut name) };
    if index < 0 {
        return Status::NGX_ERROR.into();
    }
    // SAFETY: cf is valid, and ngx_http_block runs every create_main_conf before any
    // preconfiguration, so this module's MainConf slot in cf->ctx is already filled.
    let Some(mcf) = Module::main_conf_mut(unsafe { &*cf }) else {
        return Status::NGX_ERROR.into();
    };
    mcf.status_var = index;

    // Not cacheable: a claim read before the access phase decided must not stick.
    let mut prefix: ngx_str_t = ngx_string!("wcs_token_auth_claim_");
    let flags = (NGX_HTTP_VAR_PREFIX | NGX_HTTP_VAR_NOCACHEABLE) as ngx_uint_t;
    // SAFETY: as for ngx_http_add_variable above.
    let var = unsafe { ngx_http_add_variable(cf, &mut prefix, flags) };
    if var.is_null() {
        return Status::NGX_ERROR.into();
    }
    // SAFETY: a non-null result is the variable's entry, which nginx keeps in cf->pool.
    unsafe { (*var).get_handler = Some(get_claim) };
    Status::NGX_OK.into()
}

/// Remembers a copy of the signed token that granted `r` (and so its main request too), or,
/// given `None`, that `r` was not granted with one. `Err` only when nginx is out of memory.
///
/// # Safety
/// `r` must be a valid request.
pub unsafe fn set_granted_token(
    r: *mut ngx_http_request_t,
    token: Option<&[u8]>,
) -> Result<(), ()> {
    let index = Module::module().ctx_index;
    // SAFETY: r is valid (this function's contract), and so is its main request.
    let main = unsafe { (*r).main };
    let Some(token) = token else {
        // SAFETY: r->ctx has a slot per http module; ours is null or a RequestCtx.
        if let Some(ctx) = unsafe { (*(*r).ctx.add(index)).cast::<RequestCtx>().as_mut() } {
            ctx.len = 0;
        }
        return Ok(());
    };
    // The verified bytes, copied: the token borrows the Cookie header's buffer, which the
    // client may write over later (see RequestCtx). A signed token is at most 4,096 bytes.
    // Subrequests decide with the main request's Cookie, so each one would copy the same
    // token again: the main request's copy serves them all.
    // SAFETY: main is valid; its ctx slot is null or a RequestCtx this function wrote.
    let copy = match unsafe { granted_token(main) } {
        Some(kept) if kept == token => kept.as_ptr().cast_mut(),
        _ => {
            // SAFETY: main is valid; its pool lives until the main request is freed, after
            // its last log line and after every subrequest, whose pool is this same pool.
            let copy = unsafe { ngx_pnalloc((*main).pool, token.len()) }.cast::<u8>();
            if copy.is_null() {
                return Err(());
            }
            // SAFETY: copy has room for token.len() bytes and, fresh from the pool,
            // overlaps nothing.
            unsafe { ptr::copy_nonoverlapping(token.as_ptr(), copy, token.len()) };
            copy
        }
    };
    for q in [Some(r), (main != r).then_some(main)].into_iter().flatten() {
        // SAFETY: q is r or its main request, both valid; r->ctx has a slot per http module,
        // ours null or a RequestCtx that this function allocated.
        let slot = unsafe { &mut *(*q).ctx.add(index) };
        if slot.is_null() {
            // SAFETY: q's pool is the main request's pool (a subrequest shares it), freed
            // with the main request and so after every read of this context.
            *slot = unsafe { ngx_pcalloc((*q).pool, size_of::<RequestCtx>()) };
        }
        // SAFETY: the slot is null (out of memory) or a RequestCtx in pool memory, aligned
        // for any type.
        let Some(ctx) = (unsafe { (*slot).cast::<RequestCtx>().as_mut() }) else {
            return Err(());
        };
        ctx.token = copy;
        ctx.len = token.len();
    }
    Ok(())
}

/// The signed token that granted `r`, if any.
///
/// # Safety
/// `r` must be a valid request.
unsafe fn granted_token<'r>(r: *mut ngx_http_request_t) -> Option<&'r [u8]> {
    let index = Module::module().ctx_index;
    // SAFETY: r->ctx has a slot per http module; ours is null or a RequestCtx that
    // set_granted_token wrote, pointing at its own copy in the main request's pool, which
    // nothing else writes and which is freed only with the main request.
    unsafe {
        let ctx = (*(*r).ctx.add(index)).cast::<RequestCtx>().as_ref()?;
        (ctx.len > 0).then(|| slice::from_raw_parts(ctx.token, ctx.len))
    }
}

/// `$wcs_token_auth_claim_NAME`: the claim as `signed::claim_value` gives it, copied into the
/// request's pool; empty when no signed token granted the request, or the claim has no value
/// fit for a header. nginx lower-cases variable names; `claim_value` ignores ASCII case.
///
/// # Safety
/// Only nginx calls it, as the get handler of the prefix variable, with `data` pointing at
/// the full variable name.
unsafe extern "C" fn get_claim(
    r: *mut ngx_http_request_t,
    v: *mut ngx_variable_value_t,
    data: usize,
) -> ngx_int_t {
    // SAFETY: nginx passes a prefix variable's full name as data (this function's contract).
    let name = unsafe { (*(data as *const ngx_str_t)).as_bytes() };
    let claim = name.get(CLAIM_PREFIX.len()..).unwrap_or_default();
    // SAFETY: r is the request nginx evaluates the variable for.
    let value = unsafe { granted_token(r) }.and_then(|t| signed::claim_value(t, claim));
    // SAFETY: v is a valid, exclusive slot per this function's contract.
    let v = unsafe { &mut *v };
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        set(v, b"");
        return Status::NGX_OK.into();
    };
    // SAFETY: r is valid; its pool outlives every use nginx makes of the value.
    let data = unsafe { ngx_pnalloc((*r).pool, value.len()) }.cast::<u8>();
    if data.is_null() {
        return Status::NGX_ERROR.into();
    }
    // SAFETY: data has room for value.len() bytes and does not overlap value.
    unsafe { ptr::copy_nonoverlapping(value.as_ptr(), data, value.len()) };
    v.set_len(value.len() as _);
    v.set_valid(1);
    v.set_no_cacheable(0);
    v.set_not_found(0);
    v.data = data;
    Status::NGX_OK.into()
}

/// Reached only when the handler did not run for this request: the module is off here.
///
/// # Safety
/// `v` must be the request's value slot for this variable, as nginx passes to get handlers.
unsafe extern "C" fn get_unset(
    _r: *mut ngx_http_request_t,
    v: *mut ngx_variable_value_t,
    _data: usize,
) -> ngx_int_t {
    // SAFETY: v is a valid, exclusive slot per this function's contract.
    unsafe { set(&mut *v, b"") };
    Status::NGX_OK.into()
}

/// Records the decision for this request.
///
/// # Safety
/// `r` must be a valid request and `index` the variable's index from [`register`].
pub unsafe fn set_status(r: *mut ngx_http_request_t, index: ngx_int_t, status: auth::Status) {
    let Ok(index) = ngx_uint_t::try_from(index) else {
        return;
    };
    // SAFETY: r->variables has one slot per variable indexed at configuration time, and index
    // is one of them per this function's contract.
    unsafe { set(&mut *(*r).variables.add(index), status.as_str().as_bytes()) };
}

fn set(v: &mut ngx_variable_value_t, value: &'static [u8]) {
    v.set_len(value.len() as _);
    v.set_valid(1);
    v.set_no_cacheable(0);
    v.set_not_found(0);
    // nginx never writes through a variable's data pointer.
    v.data = value.as_ptr().cast_mut();
}
