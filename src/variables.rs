//! `$wcs_token_auth_status`: the decision, for `log_format`.
//!
//! The handler stores the value straight into `r->variables[index]`, which, unlike module
//! contexts, survives the internal redirect that `error_page 403` makes, so the access log
//! still shows why the request was refused.

use ngx::core::Status;
use ngx::ffi::{
    ngx_conf_t, ngx_http_add_variable, ngx_http_get_variable_index, ngx_http_request_t, ngx_int_t,
    ngx_str_t, ngx_uint_t, ngx_variable_value_t,
};
use ngx::http::HttpModuleMainConf;
use ngx::ngx_string;
use wcs_token_auth_core::auth;

use crate::Module;

/// Declares the variable and remembers its index.
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
