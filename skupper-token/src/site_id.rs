//! What a site id may be.
//!
//! A linking site names itself by its id twice: in the `skupper-site-name`
//! header when it redeems a claim (the id becomes the common name of the
//! certificate it is issued), and in the hello of every link it dials (the
//! listener checks that a claim's certificate is presented by the site it
//! was issued to). [`check`] is the one rule for both, so a certificate is
//! never issued to a name that a listener would then refuse.
//!
//! The rule: 1 to [`MAX_LEN`] characters, each printable ASCII (`!` to `~`:
//! letters, digits and punctuation; no spaces, control characters or
//! non-ASCII text). Real Skupper site ids are UUIDs (36 characters of hex
//! digits and `-`), and so are this project's, so every one of them passes.
//! 64 is the X.509 upper bound of a common name (RFC 5280,
//! `ub-common-name`); printable ASCII keeps ids readable as one word in
//! logs, tables and YAML.

/// The most characters a site id may have: the X.509 upper bound of a
/// certificate's common name (RFC 5280, `ub-common-name`).
pub const MAX_LEN: usize = 64;

/// Why a text is not a usable site id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SiteIdError {
    /// The id is empty.
    #[error("the site id is empty")]
    Empty,
    /// The id is longer than [`MAX_LEN`] characters.
    #[error("the site id is {len} characters long; a site id is at most {max} (the longest common name a certificate may have)", max = MAX_LEN)]
    TooLong {
        /// Its length, in characters.
        len: usize,
    },
    /// The id has a character other than printable ASCII.
    #[error("the site id has {character:?} at position {position}; a site id is printable ASCII: letters, digits and punctuation, no spaces or control characters")]
    BadCharacter {
        /// The first such character (shown escaped).
        character: char,
        /// Its position, counting characters from 1.
        position: usize,
    },
}

/// Checks that `id` can be a site id: 1 to [`MAX_LEN`] printable ASCII
/// characters (see the module documentation).
pub fn check(id: &str) -> Result<(), SiteIdError> {
    if id.is_empty() {
        return Err(SiteIdError::Empty);
    }
    let len = id.chars().count();
    if len > MAX_LEN {
        return Err(SiteIdError::TooLong { len });
    }
    match id.chars().enumerate().find(|(_, c)| !c.is_ascii_graphic()) {
        Some((i, character)) => Err(SiteIdError::BadCharacter {
            character,
            position: i + 1,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_and_short_names_pass() {
        for id in [
            "67b7e59e-37aa-4179-8191-077b7a0d90d7",
            "6FE5599E-AE73-11EE-B75A-902E1655A5FE",
            "east",
            "site-?",
            &"a".repeat(MAX_LEN),
        ] {
            assert_eq!(check(id), Ok(()), "{id:?}");
        }
    }

    #[test]
    fn long_empty_and_unprintable_ids_are_refused() {
        assert_eq!(check(""), Err(SiteIdError::Empty));
        assert_eq!(
            check(&"a".repeat(10_000)),
            Err(SiteIdError::TooLong { len: 10_000 })
        );
        assert_eq!(
            check("east\u{7}"),
            Err(SiteIdError::BadCharacter {
                character: '\u{7}',
                position: 5
            })
        );
        assert_eq!(
            check("east west"),
            Err(SiteIdError::BadCharacter {
                character: ' ',
                position: 5
            })
        );
        assert_eq!(
            check("ést").unwrap_err().to_string(),
            "the site id has 'é' at position 1; a site id is printable ASCII: letters, digits and punctuation, no spaces or control characters"
        );
        assert_eq!(
            check("a\nb").unwrap_err().to_string(),
            "the site id has '\\n' at position 2; a site id is printable ASCII: letters, digits and punctuation, no spaces or control characters"
        );
    }
}
