//! What a token may look like before it gets anywhere near the filesystem.
//!
//! A token names a file in the token directory, so the alphabet is the portable file name
//! set minus anything that could navigate (`/`) or hide (a leading `.`, which also rules out
//! `.` and `..`).

/// Longest accepted token, the usual `NAME_MAX`.
pub const MAX_LEN: usize = 255;

/// A cookie value that passed [`parse`]: safe to use as one file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token<'a>(&'a [u8]);

impl<'a> Token<'a> {
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Missing or empty value.
    Empty,
    /// Too long, a byte outside `A-Z a-z 0-9 - _ .`, or a leading `.`.
    Malformed,
}

pub fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
}

pub fn parse(value: &[u8]) -> Result<Token<'_>, TokenError> {
    match value {
        [] => Err(TokenError::Empty),
        [b'.', ..] => Err(TokenError::Malformed),
        v if v.len() > MAX_LEN => Err(TokenError::Malformed),
        v if v.iter().all(|&b| is_token_byte(b)) => Ok(Token(v)),
        _ => Err(TokenError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_article_token_and_url_safe_base64() {
        assert!(parse(b"ABCDEF1234565789").is_ok());
        assert!(parse(b"a-b_c.d").is_ok());
        assert!(parse(b"x.").is_ok());
        assert_eq!(parse(b"Zz09").map(|t| t.as_bytes()), Ok(&b"Zz09"[..]));
    }

    #[test]
    fn empty_is_no_token() {
        assert_eq!(parse(b""), Err(TokenError::Empty));
    }

    #[test]
    fn traversal_and_hidden_names_are_malformed() {
        for bad in [
            &b"../../../../etc/passwd"[..],
            b"..",
            b".",
            b".hidden",
            b"a/b",
            b"/etc/passwd",
            b"a\\b",
            b"a%2Fb",
            b"a b",
            b"a\0b",
            b"\xff",
            b"tok;",
            b"\"tok\"",
        ] {
            assert_eq!(
                parse(bad),
                Err(TokenError::Malformed),
                "{:?}",
                bad.escape_ascii()
            );
        }
    }

    #[test]
    fn length_limit_is_255() {
        assert!(parse(&[b'a'; MAX_LEN]).is_ok());
        assert_eq!(parse(&[b'a'; MAX_LEN + 1]), Err(TokenError::Malformed));
    }
}
