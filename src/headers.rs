//! Reading request headers out of nginx's `ngx_list_t` as plain byte slices.

use core::slice;

use ngx::ffi::{
    ngx_http_request_t, ngx_list_part_t, ngx_list_t, ngx_table_elt_t, NGX_HTTP_VERSION_20,
};
use wcs_token_auth_core::auth::RequestHeaders;
use wcs_token_auth_core::origin::{OriginHeader, ServedHost};

/// What the access decision reads from the request: `Origin`, the host nginx serves it for,
/// and the `Cookie` values.
///
/// # Safety
/// `r` must be a main request whose headers have been read, and its header list must not
/// change while the result is in use.
pub unsafe fn request_headers(
    r: &ngx_http_request_t,
) -> RequestHeaders<'_, impl Iterator<Item = &[u8]>> {
    let hin = &r.headers_in;
    // SAFETY: hin.headers is a list of ngx_table_elt_t that nginx initialised (HTTP/1.0 and
    // later) or left all zero (HTTP/0.9: one empty part, no next), unchanged per this
    // function's contract.
    let (origin, cookies) = origin_and_cookies(unsafe { iter(&hin.headers) });
    // SAFETY: r is a main request whose headers have been read (this function's contract).
    let host = unsafe { served_host(r) };
    RequestHeaders {
        origin,
        host,
        cookies,
    }
}

/// The host nginx serves `r` for (`r->headers_in.server`, which nginx validated and chose the
/// server block by) and the authority it took it from, for the port: the request line's in
/// absolute form (RFC 9112, 3.2.2), HTTP/2's `:authority` where nginx 1.25 and later keep it
/// there, else the `Host` header (which also carries `:authority` in older nginx).
///
/// # Safety
/// `r` must be a main request whose headers have been read.
unsafe fn served_host(r: &ngx_http_request_t) -> Option<ServedHost<'_>> {
    let name = r.headers_in.server.as_bytes();
    if name.is_empty() {
        return None; // HTTP/1.0 without Host, HTTP/0.9: the client named no host
    }
    let (start, end) = (r.host_start as usize, r.host_end as usize);
    let from_line_or_pseudo = if start == 0 || start > end {
        None
    } else if r.http_version >= NGX_HTTP_VERSION_20 as usize {
        // HTTP/2 and /3: host_start..host_end is the whole `:authority` value.
        // SAFETY: for these versions nginx points both at one pseudo-header value it decoded
        // into the stream's pool (HTTP/2: h2c->state.pool kept as stream->pool; HTTP/3: the
        // stream connection's pool), which nginx frees only after the request.
        Some(unsafe { slice::from_raw_parts(r.host_start, end - start) })
    } else {
        let line = r.request_line.as_bytes();
        let line_start = line.as_ptr() as usize;
        match (start.checked_sub(line_start), end.checked_sub(line_start)) {
            // HTTP/1 absolute form: nginx's host ends before the port, which follows in the line.
            (Some(from), Some(to)) if to <= line.len() => {
                let rest = line.get(to..).unwrap_or_default();
                let port = match rest {
                    [b':', digits @ ..] => {
                        1 + digits.iter().take_while(|b| b.is_ascii_digit()).count()
                    }
                    _ => 0,
                };
                line.get(from..to + port)
            }
            // Not in the line: nginx sets it nowhere else for HTTP/1, so do not read it.
            _ => None,
        }
    };
    let authority = match from_line_or_pseudo {
        Some(authority) => authority,
        // SAFETY: headers_in.host is NULL or points to an element of the request's list.
        None => unsafe { r.headers_in.host.as_ref() }.map_or(&[][..], |h| h.value.as_bytes()),
    };
    Some(ServedHost { name, authority })
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

/// Is `h` called `name` (ASCII case-insensitive)?
#[inline]
fn is_named(h: &ngx_table_elt_t, name: &[u8]) -> bool {
    // The length test first: most headers differ in length from the names looked for.
    h.key.len == name.len() && h.key.as_bytes().eq_ignore_ascii_case(name)
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
