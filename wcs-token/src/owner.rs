//! `--owner USER[:GROUP]`, resolved like chown(1): names through the system's user database
//! (NSS), or numeric ids.

use nix::unistd::{Group, User};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

pub fn resolve(spec: &str) -> Result<Owner, String> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let uid = match user {
        "" => None,
        u => Some(match u.parse::<u32>() {
            Ok(id) => id,
            Err(_) => User::from_name(u)
                .map_err(|e| format!("cannot look up user \"{u}\": {e}"))?
                .ok_or_else(|| format!("no such user \"{u}\""))?
                .uid
                .as_raw(),
        }),
    };
    let gid = match group {
        None | Some("") => None,
        Some(g) => Some(match g.parse::<u32>() {
            Ok(id) => id,
            Err(_) => Group::from_name(g)
                .map_err(|e| format!("cannot look up group \"{g}\": {e}"))?
                .ok_or_else(|| format!("no such group \"{g}\""))?
                .gid
                .as_raw(),
        }),
    };
    if uid.is_none() && gid.is_none() {
        return Err(format!(
            "invalid --owner \"{spec}\": USER, USER:GROUP or :GROUP"
        ));
    }
    Ok(Owner { uid, gid })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(
            resolve("root").unwrap(),
            Owner {
                uid: Some(0),
                gid: None
            }
        );
        assert_eq!(
            resolve("root:root").unwrap(),
            Owner {
                uid: Some(0),
                gid: Some(0)
            }
        );
        assert_eq!(
            resolve("123:456").unwrap(),
            Owner {
                uid: Some(123),
                gid: Some(456)
            }
        );
        assert_eq!(
            resolve(":0").unwrap(),
            Owner {
                uid: None,
                gid: Some(0)
            }
        );
    }

    #[test]
    fn unknown_names_are_errors() {
        assert!(resolve("no-such-user-wcs")
            .unwrap_err()
            .contains("no such user"));
        assert!(resolve("root:no-such-group-wcs")
            .unwrap_err()
            .contains("no such group"));
        assert!(resolve(":").is_err());
    }
}
