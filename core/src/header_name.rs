//! Request header names as nginx's `$http_` variables and CGI-style consumers see them.

/// Do `a` and `b` name the same header once `-` and `_` are the same and letter case is
/// ignored? `$http_x_client_ip` and every CGI-style consumer (`fastcgi_pass`, `scgi_pass`,
/// `uwsgi_pass`, PHP/WSGI/Rack behind `proxy_pass`, as `HTTP_X_CLIENT_IP`) read `X_Client_IP`
/// as `X-Client-IP`; nginx lets such names through with `underscores_in_headers on`.
#[inline]
pub fn same_cgi_name(a: &[u8], b: &[u8]) -> bool {
    // The length test first: most headers differ in length from the names looked for.
    a.len() == b.len() && a.iter().zip(b).all(|(&x, &y)| fold(x) == fold(y))
}

/// `name` as [`same_cgi_name`] compares it: lower case, `_` written as `-`. For configuration
/// checks, which compare against names spelled with `-`.
pub fn cgi_name(name: &[u8]) -> Vec<u8> {
    name.iter().map(|&b| fold(b)).collect()
}

fn fold(b: u8) -> u8 {
    if b == b'_' {
        b'-'
    } else {
        b.to_ascii_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dash_and_underscore_and_case_fold_together() {
        for name in [
            "X-Client-IP",
            "x-client-ip",
            "X_Client_IP",
            "x-client_ip",
            "X_CLIENT-ip",
        ] {
            assert!(same_cgi_name(name.as_bytes(), b"X-Client-IP"), "{name}");
        }
        for name in [
            "X-Client-IPs",
            "X-Client-I",
            "XClient-IP",
            "X.Client.IP",
            "X Client IP",
        ] {
            assert!(!same_cgi_name(name.as_bytes(), b"X-Client-IP"), "{name}");
        }
        assert!(same_cgi_name(b"", b""));
        assert_eq!(cgi_name(b"X_Forwarded-FOR"), b"x-forwarded-for");
        assert_eq!(cgi_name(b"\xc0_A"), b"\xc0-a");
        assert!(
            !same_cgi_name(b"\xc0-a", b"\xe0-a"),
            "only ASCII letters fold"
        );
    }
}
