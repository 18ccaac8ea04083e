//! Finding one cookie in the request's `Cookie` headers.
//!
//! Unlike nginx's `$cookie_NAME`, the name is matched exactly: cookie names are
//! case-sensitive (RFC 6265), so `auth=` must not be mistaken for `AUTH=`.
//!
//! Hand-written: the `cookie` crate parses UTF-8 strings one cookie at a time with all
//! attributes; this is a zero-copy byte search for one exact name across several headers.

/// The value of the first cookie called `name`, searching the headers in the order given.
///
/// `Some(b"")` means the cookie is present but empty. Pairs without `=` are skipped.
pub fn find<'a, I>(headers: I, name: &[u8]) -> Option<&'a [u8]>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    headers
        .into_iter()
        .find_map(|header| find_in_header(header, name))
}

fn find_in_header<'a>(header: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let mut rest = header;
    loop {
        // memchr: a signed token's hundreds of bytes are searched a word at a time.
        let end = memchr::memchr(b';', rest).unwrap_or(rest.len());
        let pair = &rest[..end];
        if let Some(eq) = memchr::memchr(b'=', pair) {
            if trim(&pair[..eq]) == name {
                return Some(trim(&pair[eq + 1..]));
            }
        }
        rest = rest.get(end + 1..)?;
    }
}

fn trim(s: &[u8]) -> &[u8] {
    let is_ws = |b: &u8| *b == b' ' || *b == b'\t';
    let start = s.iter().position(|b| !is_ws(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !is_ws(b)).map_or(start, |i| i + 1);
    &s[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(h: &[u8]) -> Option<&[u8]> {
        find([h], b"AUTH")
    }

    #[test]
    fn finds_the_cookie_among_others() {
        assert_eq!(one(b"AUTH=abc"), Some(&b"abc"[..]));
        assert_eq!(one(b"a=1; AUTH=abc; b=2"), Some(&b"abc"[..]));
        assert_eq!(one(b"a=1;AUTH=abc"), Some(&b"abc"[..]));
        assert_eq!(one(b" AUTH = abc \t; x=y"), Some(&b"abc"[..]));
    }

    #[test]
    fn name_is_case_sensitive_and_exact() {
        assert_eq!(one(b"auth=abc"), None);
        assert_eq!(one(b"XAUTH=abc; AUTHX=def"), None);
        assert_eq!(one(b"auth=evil; AUTH=good"), Some(&b"good"[..]));
    }

    #[test]
    fn first_occurrence_decides_even_when_empty() {
        assert_eq!(one(b"AUTH=; AUTH=abc"), Some(&b""[..]));
        assert_eq!(one(b"AUTH=one; AUTH=two"), Some(&b"one"[..]));
    }

    #[test]
    fn value_keeps_everything_after_the_first_equals() {
        assert_eq!(one(b"AUTH=a=b"), Some(&b"a=b"[..]));
        assert_eq!(
            one(b"AUTH=../../etc/passwd"),
            Some(&b"../../etc/passwd"[..])
        );
    }

    #[test]
    fn searches_later_headers_in_order() {
        let headers: [&[u8]; 3] = [b"a=1", b"b=2; AUTH=second", b"AUTH=third"];
        assert_eq!(find(headers, b"AUTH"), Some(&b"second"[..]));
        assert_eq!(find(Vec::<&[u8]>::new(), b"AUTH"), None);
    }

    #[test]
    fn garbage_is_not_a_cookie() {
        assert_eq!(one(b""), None);
        assert_eq!(one(b";;;"), None);
        assert_eq!(one(b"AUTH"), None);
        assert_eq!(one(b"\xff\x00AUTH"), None);
        assert_eq!(one(b"AUTH\0=x"), None);
    }
}
