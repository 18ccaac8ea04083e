//! Reading request headers out of nginx's `ngx_list_t` as plain byte slices.

use core::slice;

use ngx::ffi::{ngx_http_request_t, ngx_list_part_t, ngx_list_t, ngx_table_elt_t};
use wcs_token_auth_core::auth::RequestHeaders;
use wcs_token_auth_core::origin::OriginHeader;

use crate::header_list::is_named;

/// What the access decision reads from the request: `Origin`, `Host` and the `Cookie` values.
///
/// # Safety
/// `r` must be a request whose headers have been read, and its header list must not change
/// while the result is in use.
pub unsafe fn request_headers(
    r: &ngx_http_request_t,
) -> RequestHeaders<'_, impl Iterator<Item = &[u8]>> {
    let hin = &r.headers_in;
    // SAFETY: hin.headers is a list of ngx_table_elt_t that nginx initialised (HTTP/1.0 and
    // later) or left all zero (HTTP/0.9: one empty part, no next), unchanged per this
    // function's contract.
    let (origin, cookies) = origin_and_cookies(unsafe { iter(&hin.headers) });
    // SAFETY: hin.host is NULL or points to an element of that list.
    let host = unsafe { hin.host.as_ref() }.map(|h| h.value.as_bytes());
    RequestHeaders {
        origin,
        host,
        cookies,
    }
}

/// Iterates over the elements of a header list, part by part, skipping empty parts.
#[derive(Clone)]
pub struct Headers<'a> {
    part: Option<&'a ngx_list_part_t>,
    elts: &'a [ngx_table_elt_t],
}

/// # Safety
/// `list` must be an initialised (or, for HTTP/0.9, all-zero) list of `ngx_table_elt_t` that
/// outlives the iterator and is not modified while it is in use.
unsafe fn iter(list: &ngx_list_t) -> Headers<'_> {
    Headers {
        part: Some(&list.part),
        elts: &[],
    }
}

impl<'a> Iterator for Headers<'a> {
    type Item = &'a ngx_table_elt_t;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((first, rest)) = self.elts.split_first() {
                self.elts = rest;
                return Some(first);
            }
            let part = self.part?;
            self.elts = if part.nelts == 0 {
                &[]
            } else {
                // SAFETY: a list part holds `nelts` initialised elements at `elts`.
                unsafe { slice::from_raw_parts(part.elts.cast(), part.nelts) }
            };
            // SAFETY: `next` is NULL or points to the next part of the same list.
            self.part = unsafe { part.next.as_ref() };
        }
    }
}

/// The values of every header called `name` (case-insensitive), in order.
fn values<'a>(headers: Headers<'a>, name: &'a [u8]) -> impl Iterator<Item = &'a [u8]> {
    headers
        .filter(move |h| is_named(h, name))
        .map(|h| h.value.as_bytes())
}

/// The `Origin` header(s), distinguishing none, one and several, and the values of the
/// `Cookie` headers in order, in one walk over the list (the cookies are then read from the
/// first `Cookie` header on).
fn origin_and_cookies(mut headers: Headers<'_>) -> (OriginHeader<'_>, impl Iterator<Item = &[u8]>) {
    let mut origin = OriginHeader::Absent;
    let mut first_cookie = None;
    loop {
        let here = headers.clone();
        let Some(h) = headers.next() else {
            break;
        };
        if is_named(h, b"origin") {
            origin = match origin {
                OriginHeader::Absent => OriginHeader::One(h.value.as_bytes()),
                _ => OriginHeader::Several,
            };
        } else if first_cookie.is_none() && is_named(h, b"cookie") {
            first_cookie = Some(here);
        }
    }
    let none = Headers {
        part: None,
        elts: &[],
    };
    (origin, values(first_cookie.unwrap_or(none), b"cookie"))
}
