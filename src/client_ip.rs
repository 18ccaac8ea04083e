//! Making the client-address header unspoofable: every copy the client sent is dropped from
//! `r->headers_in.headers` and one entry holding the address nginx sees takes their place. A
//! subrequest shares its parent's list parts, so it gets parts of its own instead.

use ngx::ffi::{ngx_http_request_t, ngx_list_push, ngx_palloc, ngx_str_t, ngx_table_elt_t};

use crate::conf::HeaderName;
use crate::header_list::{self, NoMemory};

/// Replaces all `header` entries of the request with one holding the client address; does
/// nothing when that is already so.
///
/// # Safety
/// `r` must be a valid request whose headers have been read (any phase handler), and no
/// reference into or iterator over `r->headers_in.headers` may be alive during the call.
pub unsafe fn replace(r: *mut ngx_http_request_t, header: &HeaderName) -> Result<(), NoMemory> {
    // SAFETY: r is valid for the call (this function's contract).
    if unsafe { (*r).headers_in.headers.size } == 0 {
        // An HTTP/0.9 request: nginx leaves its header list zeroed, as the client can send no
        // headers, so there is no copy to drop and no list to add ours to.
        return Ok(());
    }
    // SAFETY: r, its connection and its pool are valid for the call. The contracts of
    // replace_all and copy_replacing hold: for HTTP/1.0 and later, /2 and /3 nginx
    // initialises the main request's r->headers_in.headers from r->pool (the HTTP/0.9 list,
    // all zero, returned above), and a subrequest shares that pool and copies the list by
    // value, so ngx_palloc(r->pool) and ngx_list_push allocate from the list's own pool; a
    // subrequest's ngx_list_t is its own to change, its parts are not (copy_replacing only
    // reads them); and per this function's contract nothing else is looking at the list.
    unsafe {
        let pool = (*r).pool;
        // The name and lowercase key live in the configuration and the value in the
        // connection, both of which outlive the request.
        let elt = ngx_table_elt_t {
            hash: header.hash,
            key: ngx_str_t {
                len: header.name.len(),
                data: header.name.as_ptr().cast_mut(),
            },
            value: (*(*r).connection).addr_text,
            lowcase_key: header.lowcase.as_ptr().cast_mut(),
            #[cfg(nginx1_23)]
            next: core::ptr::null_mut(),
        };
        let list = &mut (*r).headers_in.headers;
        if (*r).main != r {
            return header_list::copy_replacing(list, &header.name, elt, &mut |size| {
                ngx_palloc(pool, size)
            });
        }
        header_list::replace_all(
            list,
            &header.name,
            elt,
            &mut |size| ngx_palloc(pool, size),
            &mut |list| ngx_list_push(list),
        )
    }
}
