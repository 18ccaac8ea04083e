//! Making the client-address header unspoofable: every copy the client sent is unlinked from
//! `r->headers_in.headers`, then one entry holding the address nginx sees is added.
//!
//! Elements are never moved, because other `headers_in` fields point into the list. A part is
//! shortened, advanced past its first element, or split in two around the removed one. Once a
//! part's start has moved its spare capacity no longer lines up with `ngx_list_push`'s idea of
//! it, so in that case the new entry goes into a fresh last part of full size.

use core::mem::size_of;
use core::ptr;

use ngx::ffi::{
    ngx_http_request_t, ngx_list_part_t, ngx_list_push, ngx_list_t, ngx_palloc, ngx_pool_t,
    ngx_table_elt_t,
};

use crate::conf::HeaderName;
use crate::headers;

#[derive(Debug)]
pub struct NoMemory;

/// Replaces all `header` entries of the request with one holding the client address.
///
/// # Safety
/// `r` must be a valid request in a phase handler, its header list not being iterated.
pub unsafe fn replace(r: *mut ngx_http_request_t, header: &HeaderName) -> Result<(), NoMemory> {
    // SAFETY: r is valid; the list and pool belong to it.
    unsafe {
        let list = &mut (*r).headers_in.headers;
        let pool = (*r).pool;
        let fresh_part_needed = remove_all(list, pool, &header.name)?;
        let elt = if fresh_part_needed {
            append_part(list, pool)?
        } else {
            ngx_list_push(list).cast::<ngx_table_elt_t>()
        };
        if elt.is_null() {
            return Err(NoMemory);
        }
        // The name and lowercase key live in the configuration, which outlives the request;
        // the value is the connection's address text, which does too.
        ptr::write(
            elt,
            ngx_table_elt_t {
                hash: header.hash,
                key: ngx::ffi::ngx_str_t {
                    len: header.name.len(),
                    data: header.name.as_ptr().cast_mut(),
                },
                value: (*(*r).connection).addr_text,
                lowcase_key: header.lowcase.as_ptr().cast_mut(),
                #[cfg(nginx1_23)]
                next: ptr::null_mut(),
            },
        );
    }
    Ok(())
}

/// Unlinks every entry named `name`. Returns whether the last part no longer has room
/// that `ngx_list_push` could safely use.
///
/// # Safety
/// `list` must be a valid `ngx_table_elt_t` list allocated from `pool`.
unsafe fn remove_all(
    list: &mut ngx_list_t,
    pool: *mut ngx_pool_t,
    name: &[u8],
) -> Result<bool, NoMemory> {
    let head: *mut ngx_list_part_t = &mut list.part;
    let mut fresh_part_needed = false;
    let mut prev: *mut ngx_list_part_t = ptr::null_mut();
    let mut part = head;
    // SAFETY: parts form a NULL-terminated chain; `elts` holds `nelts` elements.
    unsafe {
        while !part.is_null() {
            let mut i = 0;
            while i < (*part).nelts {
                let elts = (*part).elts.cast::<ngx_table_elt_t>();
                if !headers::is_named(&*elts.add(i), name) {
                    i += 1;
                    continue;
                }
                let n = (*part).nelts;
                if i + 1 == n {
                    (*part).nelts -= 1;
                } else if i == 0 {
                    (*part).elts = elts.add(1).cast();
                    (*part).nelts -= 1;
                    fresh_part_needed |= part == list.last;
                } else {
                    let tail =
                        ngx_palloc(pool, size_of::<ngx_list_part_t>()).cast::<ngx_list_part_t>();
                    if tail.is_null() {
                        return Err(NoMemory);
                    }
                    ptr::write(
                        tail,
                        ngx_list_part_t {
                            elts: elts.add(i + 1).cast(),
                            nelts: n - i - 1,
                            next: (*part).next,
                        },
                    );
                    (*part).nelts = i;
                    (*part).next = tail;
                    if part == list.last {
                        list.last = tail;
                        fresh_part_needed = true;
                    }
                    break; // the rest is scanned as the next part
                }
            }
            // An empty part other than the head is unlinked: nginx's own loops step over at
            // most one empty part at a time.
            if (*part).nelts == 0 && !prev.is_null() {
                (*prev).next = (*part).next;
                if part == list.last {
                    list.last = prev;
                    fresh_part_needed = true;
                }
                part = (*prev).next;
                continue;
            }
            prev = part;
            part = (*part).next;
        }
    }
    Ok(fresh_part_needed)
}

/// Links a new last part with the list's usual capacity and returns its first element.
///
/// # Safety
/// `list` must be a valid list allocated from `pool`.
unsafe fn append_part(
    list: &mut ngx_list_t,
    pool: *mut ngx_pool_t,
) -> Result<*mut ngx_table_elt_t, NoMemory> {
    // SAFETY: allocations come from the request pool and are written before use.
    unsafe {
        let capacity = list.nalloc.max(1);
        let elts = ngx_palloc(pool, capacity * list.size);
        let part = ngx_palloc(pool, size_of::<ngx_list_part_t>()).cast::<ngx_list_part_t>();
        if elts.is_null() || part.is_null() {
            return Err(NoMemory);
        }
        ptr::write(
            part,
            ngx_list_part_t {
                elts,
                nelts: 1,
                next: ptr::null_mut(),
            },
        );
        (*list.last).next = part;
        list.last = part;
        Ok(elts.cast())
    }
}
