//! Replacing every entry of one name in an nginx header list by a single new entry at its end,
//! without moving any other element: other `r->headers_in` fields point into the list. Names
//! match as `$http_` variables and CGI read them: letter case ignored, `-` and `_` the same.
//!
//! A subrequest's list is a copy of its parent's `ngx_list_t` whose parts are the parent's:
//! [`copy_replacing`] gives it parts of its own instead of editing them.
//!
//! A matching element is dropped by shortening its part, advancing the part's start past it,
//! or splitting the part in two around it. Moving a part's start breaks the spare capacity
//! that `ngx_list_push` assumes for the last part, so whenever something was removed the new
//! entry goes into a fresh last part of full size. Empty parts after the first are unlinked:
//! nginx's own loops step over at most one empty part at a time.
//!
//! Everything needed is allocated before the list is touched, so a failed allocation leaves it
//! as it was. This file calls no nginx function (allocation and `ngx_list_push` are passed
//! in), which lets `tests/e2e/header_list.rs` run it against a bounds-checking model of nginx's
//! pool and list.

use core::ffi::c_void;
use core::mem::size_of;
use core::ptr;

use nginx_sys::{ngx_list_part_t, ngx_list_t, ngx_str_t, ngx_table_elt_t};
use wcs_token_auth_core::header_name::same_cgi_name;

#[derive(Debug, PartialEq, Eq)]
pub struct NoMemory;

/// Removes every element called `name` (see the file's header) and appends `elt`, unless the
/// list already ends with `elt` as its only such element: running again changes nothing.
///
/// `alloc(size)` must return pool memory aligned for list parts and elements, or NULL; `push`
/// must be `ngx_list_push`.
///
/// # Safety
/// `list` must be a valid, initialised list of `ngx_table_elt_t` whose parts were allocated
/// from the same pool as `alloc`'s, and nothing may iterate it during the call.
pub unsafe fn replace_all(
    list: &mut ngx_list_t,
    name: &[u8],
    elt: ngx_table_elt_t,
    alloc: &mut dyn FnMut(usize) -> *mut c_void,
    push: &mut dyn FnMut(&mut ngx_list_t) -> *mut c_void,
) -> Result<(), NoMemory> {
    if list.size != size_of::<ngx_table_elt_t>() {
        return Err(NoMemory);
    }
    // SAFETY: per this function's contract; every pointer written below is either an element
    // slot inside a part's `nelts`, or memory just returned by `alloc`/`push` for that type.
    unsafe {
        if is_done(list, name, &elt) {
            return Ok(());
        }
        let (_, matches) = count(list, name);
        if matches == 0 {
            let slot = push(list).cast::<ngx_table_elt_t>();
            if slot.is_null() {
                return Err(NoMemory);
            }
            ptr::write(slot, elt);
            return Ok(());
        }

        let fresh_elts = alloc(list.nalloc.max(1) * list.size).cast::<ngx_table_elt_t>();
        let fresh = alloc(size_of::<ngx_list_part_t>()).cast::<ngx_list_part_t>();
        // At most one split per removed element.
        let spare = alloc(matches * size_of::<ngx_list_part_t>()).cast::<ngx_list_part_t>();
        if fresh_elts.is_null() || fresh.is_null() || spare.is_null() {
            return Err(NoMemory);
        }

        unlink_all(list, name, spare);

        ptr::write(fresh_elts, elt);
        ptr::write(
            fresh,
            ngx_list_part_t {
                elts: fresh_elts.cast(),
                nelts: 1,
                next: ptr::null_mut(),
            },
        );
        (*list.last).next = fresh;
        list.last = fresh;
    }
    Ok(())
}

/// Gives `list` parts of its own, from `alloc`, holding its elements but those called `name`,
/// then `elt`; the parts it had (a parent request's) are only read. Nothing changes when the
/// list already ends with `elt` as its only such element.
///
/// # Safety
/// As for [`replace_all`]; `list` itself (not its parts) must be the caller's to change.
pub unsafe fn copy_replacing(
    list: &mut ngx_list_t,
    name: &[u8],
    elt: ngx_table_elt_t,
    alloc: &mut dyn FnMut(usize) -> *mut c_void,
) -> Result<(), NoMemory> {
    if list.size != size_of::<ngx_table_elt_t>() {
        return Err(NoMemory);
    }
    // SAFETY: per this function's contract the chain is valid and only read; every write goes
    // to `elts`, fresh memory with room for `nalloc` elements, of which at most `kept + 1`
    // are written.
    unsafe {
        if is_done(list, name, &elt) {
            return Ok(());
        }
        let (total, matches) = count(list, name);
        let kept = total - matches;
        // As large as nginx's own parts, so that a later ngx_list_push finds room as usual.
        let nalloc = list.nalloc.max(kept + 1);
        let elts = alloc(nalloc * list.size).cast::<ngx_table_elt_t>();
        if elts.is_null() {
            return Err(NoMemory);
        }
        let mut n = 0;
        let mut part: *const ngx_list_part_t = &list.part;
        while !part.is_null() {
            let from = (*part).elts.cast::<ngx_table_elt_t>();
            for i in 0..(*part).nelts {
                let h = from.add(i);
                if !is_named(&*h, name) && n < kept {
                    ptr::write(elts.add(n), ptr::read(h));
                    n += 1;
                }
            }
            part = (*part).next;
        }
        ptr::write(elts.add(n), elt);
        list.part = ngx_list_part_t {
            elts: elts.cast(),
            nelts: n + 1,
            next: ptr::null_mut(),
        };
        list.last = &mut list.part;
        list.nalloc = nalloc;
    }
    Ok(())
}

/// Is `h` called `name` (see the file's header)?
#[inline]
pub fn is_named(h: &ngx_table_elt_t, name: &[u8]) -> bool {
    same_cgi_name(h.key.as_bytes(), name)
}

/// Does the list end with `elt` (the same key and value memory), and hold no other element
/// called `name`?
///
/// # Safety
/// `list` must be a valid list of `ngx_table_elt_t`.
unsafe fn is_done(list: &ngx_list_t, name: &[u8], elt: &ngx_table_elt_t) -> bool {
    // SAFETY: `last` is a valid part whose `elts` holds `nelts` elements.
    let last = unsafe {
        let part = &*list.last;
        match part.nelts.checked_sub(1) {
            Some(i) => &*part.elts.cast::<ngx_table_elt_t>().add(i),
            None => return false,
        }
    };
    let same = |a: &ngx_str_t, b: &ngx_str_t| a.data == b.data && a.len == b.len;
    if !same(&last.key, &elt.key) || !same(&last.value, &elt.value) {
        return false;
    }
    // SAFETY: per this function's contract.
    let (_, matches) = unsafe { count(list, name) };
    matches == 1
}

/// The number of elements, and of those called `name`.
///
/// # Safety
/// `list` must be a valid list of `ngx_table_elt_t`.
unsafe fn count(list: &ngx_list_t, name: &[u8]) -> (usize, usize) {
    let (mut total, mut n) = (0, 0);
    let mut part: *const ngx_list_part_t = &list.part;
    // SAFETY: parts form a NULL-terminated chain; `elts` holds `nelts` elements.
    unsafe {
        while !part.is_null() {
            let elts = (*part).elts.cast::<ngx_table_elt_t>();
            total += (*part).nelts;
            n += (0..(*part).nelts)
                .filter(|&i| is_named(&*elts.add(i), name))
                .count();
            part = (*part).next;
        }
    }
    (total, n)
}

/// # Safety
/// As for [`replace_all`]; `spare` must have room for one part per matching element.
unsafe fn unlink_all(list: &mut ngx_list_t, name: &[u8], mut spare: *mut ngx_list_part_t) {
    let mut prev: *mut ngx_list_part_t = ptr::null_mut();
    let mut part: *mut ngx_list_part_t = &mut list.part;
    // SAFETY: parts form a NULL-terminated chain; `elts` holds `nelts` elements; `spare` has
    // room for every split, as each split consumes one matching element.
    unsafe {
        while !part.is_null() {
            let mut i = 0;
            while i < (*part).nelts {
                let elts = (*part).elts.cast::<ngx_table_elt_t>();
                if !is_named(&*elts.add(i), name) {
                    i += 1;
                    continue;
                }
                let n = (*part).nelts;
                if i + 1 == n {
                    (*part).nelts -= 1;
                } else if i == 0 {
                    (*part).elts = elts.add(1).cast();
                    (*part).nelts -= 1;
                } else {
                    let tail = spare;
                    spare = spare.add(1);
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
                    }
                    break; // the tail is scanned as the next part
                }
            }
            if (*part).nelts == 0 && !prev.is_null() {
                (*prev).next = (*part).next;
                if part == list.last {
                    list.last = prev;
                }
                part = (*prev).next;
                continue;
            }
            prev = part;
            part = (*part).next;
        }
    }
}
