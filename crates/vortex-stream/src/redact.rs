//! Passwords out of URLs before they reach an error message.

/// The URL with any password replaced by `***`, for errors and logs.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://app:s3cret@db.internal:5432/shop"),
            "postgres://app:***@db.internal:5432/shop"
        );
        assert_eq!(
            redact("postgres://app@localhost/shop"),
            "postgres://app@localhost/shop"
        );
        assert_eq!(redact("sqlite://data/a.db"), "sqlite://data/a.db");
        assert_eq!(
            redact("postgres://u:p@h?sslmode=disable"),
            "postgres://u:***@h?sslmode=disable"
        );
    }
}
