//! `src/header_list.rs` against a model of nginx's pool and `ngx_list_push` that checks every
//! slot it hands out lies inside an allocation, and a model of nginx's own loop over a header
//! list (which steps over at most one empty part). The module file is compiled in directly:
//! it calls no nginx function, so this test needs no nginx.

#[allow(dead_code)]
#[path = "../../src/header_list.rs"]
mod src_header_list;

use std::ffi::c_void;
use std::mem::size_of;
use std::ptr;

use nginx_sys::{ngx_list_part_t, ngx_list_t, ngx_str_t, ngx_table_elt_t};
use src_header_list::{copy_replacing, replace_all, NoMemory};

const NALLOC: usize = 20; // what nginx uses for r->headers_in.headers

/// A pool that remembers every allocation's bounds, and can be told to fail.
#[derive(Default)]
struct Pool {
    blocks: Vec<Box<[u64]>>,
    fail_after: Option<usize>,
}

impl Pool {
    fn alloc(&mut self, size: usize) -> *mut c_void {
        if let Some(n) = self.fail_after.as_mut() {
            if *n == 0 {
                return ptr::null_mut();
            }
            *n -= 1;
        }
        let mut b = vec![0u64; size.div_ceil(8).max(1)].into_boxed_slice();
        let p = b.as_mut_ptr().cast();
        self.blocks.push(b);
        p
    }

    fn contains(&self, p: *const u8, len: usize) -> bool {
        self.blocks.iter().any(|b| {
            let start = b.as_ptr() as usize;
            let end = start + b.len() * 8;
            (p as usize) >= start && (p as usize) + len <= end
        })
    }

    /// nginx's ngx_list_push, plus the bounds check.
    ///
    /// # Safety
    /// `list` must be a valid list whose parts were allocated from this pool.
    unsafe fn list_push(&mut self, list: &mut ngx_list_t) -> *mut c_void {
        // SAFETY: per this function's contract `last` is a valid part; the new part and its
        // elements are fresh allocations of the right sizes; the slot is bounds-checked.
        unsafe {
            if (*list.last).nelts == list.nalloc {
                let elts = self.alloc(list.nalloc * list.size);
                let part = self
                    .alloc(size_of::<ngx_list_part_t>())
                    .cast::<ngx_list_part_t>();
                ptr::write(
                    part,
                    ngx_list_part_t {
                        elts,
                        nelts: 0,
                        next: ptr::null_mut(),
                    },
                );
                (*list.last).next = part;
                list.last = part;
            }
            let last = list.last;
            let slot = (*last).elts.cast::<u8>().add(list.size * (*last).nelts);
            assert!(
                self.contains(slot, list.size),
                "ngx_list_push would write out of bounds"
            );
            (*last).nelts += 1;
            slot.cast()
        }
    }
}

/// Owns the strings the elements point to.
struct Headers {
    pool: Pool,
    list: Box<ngx_list_t>,
    strings: Vec<Vec<u8>>,
}

impl Headers {
    fn new() -> Headers {
        let mut pool = Pool::default();
        let elts = pool.alloc(NALLOC * size_of::<ngx_table_elt_t>());
        let mut list = Box::new(ngx_list_t {
            last: ptr::null_mut(),
            part: ngx_list_part_t {
                elts,
                nelts: 0,
                next: ptr::null_mut(),
            },
            size: size_of::<ngx_table_elt_t>(),
            nalloc: NALLOC,
            pool: ptr::null_mut(),
        });
        list.last = &mut list.part;
        Headers {
            pool,
            list,
            strings: Vec::new(),
        }
    }

    fn elt(&mut self, key: &str, value: &str) -> ngx_table_elt_t {
        let mut str_of = |s: &str| {
            self.strings.push(s.as_bytes().to_vec());
            let v = self.strings.last_mut().unwrap();
            ngx_str_t {
                len: v.len(),
                data: v.as_mut_ptr(),
            }
        };
        // SAFETY: ngx_table_elt_t is plain data; all-zero is a valid (empty) value.
        let mut e: ngx_table_elt_t = unsafe { std::mem::zeroed() };
        e.key = str_of(key);
        e.value = str_of(value);
        e
    }

    fn push(&mut self, key: &str, value: &str) {
        let e = self.elt(key, value);
        // SAFETY: the list is valid and its parts come from `self.pool`; the slot is fresh.
        unsafe {
            let slot = self
                .pool
                .list_push(&mut self.list)
                .cast::<ngx_table_elt_t>();
            ptr::write(slot, e);
        }
    }

    fn replace(&mut self, value: &str) -> Result<(), NoMemory> {
        let e = self.elt("X-Client-IP", value);
        let pool: *mut Pool = &mut self.pool;
        // SAFETY: the list is valid and its parts come from `pool`.
        unsafe {
            replace_all(
                &mut self.list,
                b"x-client-ip",
                e,
                &mut |size| (*pool).alloc(size),
                &mut |list| (*pool).list_push(list),
            )
        }
    }

    /// The list as nginx's own loops see it.
    fn walk(&self) -> Vec<(String, String)> {
        walk(&self.pool, &self.list)
    }
}

/// `list` as nginx's own loops see it, every element checked to lie inside `pool`.
fn walk(pool: &Pool, list: &ngx_list_t) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut part: &ngx_list_part_t = &list.part;
    let mut i = 0;
    loop {
        if i >= part.nelts {
            if part.next.is_null() {
                break;
            }
            // SAFETY: a non-null `next` points to a part written by list_push or replace_all.
            part = unsafe { &*part.next };
            i = 0;
            assert!(
                part.nelts > 0,
                "nginx's loop would read an element of an empty part"
            );
        }
        let p = part.elts.cast::<ngx_table_elt_t>().wrapping_add(i);
        assert!(pool.contains(p.cast(), size_of::<ngx_table_elt_t>()));
        // SAFETY: just checked to lie inside one pool allocation, written as an element.
        let h = unsafe { &*p };
        let s = |v: &ngx_str_t| String::from_utf8_lossy(v.as_bytes()).into_owned();
        out.push((s(&h.key), s(&h.value)));
        i += 1;
    }
    let mut last: *const ngx_list_part_t = &list.part;
    loop {
        // SAFETY: every part in the chain was written by list_push or replace_all.
        let next = unsafe { (*last).next };
        if next.is_null() {
            break;
        }
        last = next;
    }
    assert_eq!(last, list.last.cast_const(), "list.last is the last part");
    out
}

/// Builds `n` headers with spoofed copies at `spoofed`, replaces `rounds` times, pushes
/// `extra` more, and checks what nginx would see.
fn check(n: usize, spoofed: &[usize], rounds: usize, extra: usize) {
    let mut h = Headers::new();
    for i in 0..n {
        if spoofed.contains(&i) {
            let name = if i % 2 == 0 {
                "X-Client-IP"
            } else {
                "x-CLIENT-ip"
            };
            h.push(name, "6.6.6.6");
        } else {
            h.push(&format!("H{i}"), &format!("v{i}"));
        }
    }
    for r in 0..rounds {
        h.replace(&format!("real{r}")).expect("allocation");
    }
    for j in 0..extra {
        h.push(&format!("E{j}"), "e");
    }
    let mut want: Vec<(String, String)> = (0..n)
        .filter(|i| !spoofed.contains(i))
        .map(|i| (format!("H{i}"), format!("v{i}")))
        .collect();
    if rounds > 0 {
        want.push(("X-Client-IP".into(), format!("real{}", rounds - 1)));
    }
    want.extend((0..extra).map(|j| (format!("E{j}"), "e".into())));
    assert_eq!(
        h.walk(),
        want,
        "n={n} spoofed={spoofed:?} rounds={rounds} extra={extra}"
    );
}

#[test]
fn copies_anywhere_in_full_and_partial_parts_are_replaced_and_later_pushes_stay_in_bounds() {
    for (n, spoofed) in [
        (1, vec![0]),
        (20, vec![0]),
        (20, vec![19]),
        (20, vec![7]),
        (40, vec![20]),
        (60, vec![40]),
        (60, vec![50]),
        (60, vec![59]),
        (60, vec![40, 41, 42]),
        (60, vec![0, 19, 20, 39, 40, 59]),
        (45, (20..40).collect()),
        (80, (0..80).step_by(3).collect()),
    ] {
        for rounds in 1..=3 {
            check(n, &spoofed, rounds, 45);
        }
    }
}

#[test]
fn randomised_layouts() {
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |m: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % m
    };
    for _ in 0..20_000 {
        let n = next(81) as usize;
        let spoofed: Vec<usize> = (0..n).filter(|_| next(6) == 0).collect();
        let rounds = 1 + next(3) as usize;
        let extra = next(45) as usize;
        check(n, &spoofed, rounds, extra);
        // A subrequest's copy, of a parent list as the client sent it or as the main
        // request's replacement left it.
        let parent_rounds = next(3) as usize;
        let parent_extra = next(25) as usize;
        let extra = next(45) as usize;
        check_copy(n, &spoofed, parent_rounds, parent_extra, extra);
    }
}

#[test]
fn a_failed_allocation_leaves_the_list_untouched() {
    for fail_after in 0..3 {
        let mut h = Headers::new();
        for i in 0..60 {
            if i == 45 {
                h.push("X-Client-IP", "6.6.6.6");
            } else {
                h.push(&format!("H{i}"), "v");
            }
        }
        let before = h.walk();
        h.pool.fail_after = Some(fail_after);
        assert_eq!(h.replace("real"), Err(NoMemory));
        h.pool.fail_after = None;
        assert_eq!(h.walk(), before);
        h.push("E", "e"); // still safe to push onto
    }
}

#[test]
fn underscored_spellings_are_copies_too() {
    let mut h = Headers::new();
    for (i, name) in ["X_Client_IP", "x-client_ip", "X-Client-IPs", "X_CLIENT-IP"]
        .iter()
        .enumerate()
    {
        h.push(name, &format!("{i}"));
    }
    h.replace("real").expect("allocation");
    assert_eq!(
        h.walk(),
        [
            ("X-Client-IPs".to_string(), "2".to_string()),
            ("X-Client-IP".to_string(), "real".to_string())
        ]
    );
}

#[test]
fn replacing_again_with_the_same_entry_changes_and_allocates_nothing() {
    let mut h = Headers::new();
    for i in 0..30 {
        h.push(
            if i % 7 == 0 { "X-Client-IP" } else { "H" },
            &format!("{i}"),
        );
    }
    let ours = h.elt("X-Client-IP", "real");
    let pool: *mut Pool = &mut h.pool;
    // SAFETY: the list is valid and its parts come from `pool`.
    let mut again = || unsafe {
        replace_all(
            &mut h.list,
            b"X-Client-IP",
            ours,
            &mut |size| (*pool).alloc(size),
            &mut |list| (*pool).list_push(list),
        )
    };
    again().expect("allocation");
    let (after, blocks) = (h.walk(), h.pool.blocks.len());
    h.pool.fail_after = Some(0);
    // SAFETY: as above.
    let rc = unsafe {
        replace_all(
            &mut h.list,
            b"X-Client-IP",
            ours,
            &mut |size| (*pool).alloc(size),
            &mut |list| (*pool).list_push(list),
        )
    };
    assert_eq!(rc, Ok(()), "nothing to allocate");
    assert_eq!((h.walk(), h.pool.blocks.len()), (after, blocks));
}

/// A subrequest's list: nginx copies the parent's `ngx_list_t` by value, so both share the
/// parts (and, for a one-part list, `last` still points into the parent's struct). The parent
/// may have been through `replace_all` `parent_rounds` times (parts split, starts advanced,
/// spare capacity cut), then had `parent_extra` more headers pushed, before the copy: the
/// state an `auth_request`, `mirror` or SSI subrequest of a protected main request sees.
fn check_copy(
    n: usize,
    spoofed: &[usize],
    parent_rounds: usize,
    parent_extra: usize,
    extra: usize,
) {
    let mut h = Headers::new();
    let names = ["X-Client-IP", "x_client_ip", "X-CLIENT_IP"];
    for i in 0..n {
        if spoofed.contains(&i) {
            h.push(names[i % names.len()], "6.6.6.6");
        } else {
            h.push(&format!("H{i}"), &format!("v{i}"));
        }
    }
    for r in 0..parent_rounds {
        h.replace(&format!("main{r}")).expect("allocation");
    }
    for j in 0..parent_extra {
        h.push(&format!("P{j}"), "p");
    }
    let parent = h.walk();
    let mut sub = Box::new(*h.list);
    let ours = h.elt("X-Client-IP", "real");
    let pool: *mut Pool = &mut h.pool;
    // SAFETY: the shared parts come from `pool`; `sub` itself is ours to change.
    unsafe {
        copy_replacing(&mut sub, b"X-Client-IP", ours, &mut |size| {
            (*pool).alloc(size)
        })
    }
    .expect("allocation");
    for j in 0..extra {
        let e = h.elt(&format!("E{j}"), "e");
        // SAFETY: sub's parts come from the pool; the slot is fresh.
        unsafe {
            let slot = h.pool.list_push(&mut sub).cast::<ngx_table_elt_t>();
            ptr::write(slot, e);
        }
    }
    let mut want: Vec<(String, String)> = (0..n)
        .filter(|i| !spoofed.contains(i))
        .map(|i| (format!("H{i}"), format!("v{i}")))
        .collect();
    want.extend((0..parent_extra).map(|j| (format!("P{j}"), "p".into())));
    want.push(("X-Client-IP".into(), "real".into()));
    want.extend((0..extra).map(|j| (format!("E{j}"), "e".into())));
    let ctx = format!(
        "n={n} spoofed={spoofed:?} parent_rounds={parent_rounds} \
         parent_extra={parent_extra} extra={extra}"
    );
    assert_eq!(walk(&h.pool, &sub), want, "{ctx}");
    assert_eq!(h.walk(), parent, "the parent's list changed: {ctx}");
}

#[test]
fn a_subrequest_gets_its_own_parts_and_the_parent_list_stays_as_it_was() {
    for (n, spoofed) in [
        (0, vec![]),
        (1, vec![0]),
        (5, vec![]),
        (19, vec![3]),
        (20, vec![19]),
        (21, vec![0, 20]),
        (60, vec![0, 19, 20, 39, 40, 59]),
        (80, (0..80).step_by(3).collect()),
    ] {
        for extra in [0, 1, 25, 45] {
            check_copy(n, &spoofed, 0, 0, extra);
            check_copy(n, &spoofed, 1, 0, extra);
            check_copy(n, &spoofed, 2, 21, extra);
        }
    }
}

#[test]
fn a_failed_allocation_leaves_a_subrequest_list_as_it_was() {
    let mut h = Headers::new();
    for i in 0..45 {
        h.push(if i == 30 { "X-Client-IP" } else { "H" }, "v");
    }
    let before = h.walk();
    let mut sub = Box::new(*h.list);
    let ours = h.elt("X-Client-IP", "real");
    h.pool.fail_after = Some(0);
    let pool: *mut Pool = &mut h.pool;
    // SAFETY: as in check_copy.
    let rc = unsafe {
        copy_replacing(&mut sub, b"X-Client-IP", ours, &mut |size| {
            (*pool).alloc(size)
        })
    };
    assert_eq!(rc, Err(NoMemory));
    h.pool.fail_after = None;
    assert_eq!(walk(&h.pool, &sub), before);
    assert_eq!(h.walk(), before);
}
