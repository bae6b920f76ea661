//! Small value types parsed at load time, with error messages that say what was expected.

use serde::de::{self, Deserializer};
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

/// A duration written as `humantime` text (`"15m"`, `"30s"`, `"6h"`, `"1h 30m"`).
pub mod duration {
    use super::*;
    use std::time::Duration;

    /// Parses `"15m"` & co.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(|e| {
            de::Error::custom(format!(
                "invalid duration {s:?} ({e}); write e.g. \"30s\", \"15m\", \"6h\""
            ))
        })
    }

    /// Optional variant.
    pub mod option {
        use super::*;
        /// Parses an optional duration.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            super::deserialize(d).map(Some)
        }
    }
}

/// An IANA time zone name, checked against the tz database compiled into the binary.
pub mod timezone {
    use super::*;
    use chrono_tz::Tz;

    /// Parses `"Europe/Moscow"`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Tz, D::Error> {
        let s = String::deserialize(d)?;
        Tz::from_str(&s).map_err(|_| de::Error::custom(format!("unknown time zone {s:?}")))
    }
}

/// A mailbox address (`user@example.com`), validated with lettre's parser.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mailbox(pub lettre::Address);

impl Mailbox {
    /// The address as text.
    pub fn as_str(&self) -> &str {
        self.0.as_ref()
    }

    /// The domain part, lower-cased by the caller where compared.
    pub fn domain(&self) -> &str {
        self.0.domain()
    }
}

impl FromStr for Mailbox {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t.is_empty() {
            return Err("empty address".into());
        }
        t.parse::<lettre::Address>()
            .map(Mailbox)
            .map_err(|e| format!("invalid address {s:?}: {e}"))
    }
}

impl fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_str())
    }
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Mailbox {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

/// An address as written in an event, without surrounding blanks and one pair of angle
/// brackets (`<a@x>`); empty for the null sender.
pub fn bare_address(raw: &str) -> &str {
    let t = raw.trim();
    t.strip_prefix('<')
        .and_then(|x| x.strip_suffix('>'))
        .unwrap_or(t)
        .trim()
}

/// The identity of an address: [`bare_address`], then lower-cased as a whole, local part
/// included. RFC 5321 allows case-sensitive local parts but no mainstream MTA has them, while
/// `Bob@x` and `bob@x` each getting the same mail is a real failure. Used for every address
/// comparison (dedup, own addresses, loop protection).
/// Borrows when there is nothing to lower-case, so the common case allocates nothing.
pub fn address_key(raw: &str) -> Cow<'_, str> {
    let b = bare_address(raw);
    let unchanged = if b.is_ascii() {
        !b.bytes().any(|c| c.is_ascii_uppercase())
    } else {
        // Not `is_uppercase`: title-case letters (`ǅ`) change too.
        b.chars().all(|c| {
            let mut l = c.to_lowercase();
            l.next() == Some(c) && l.next().is_none()
        })
    };
    if unchanged {
        Cow::Borrowed(b)
    } else {
        Cow::Owned(b.to_lowercase())
    }
}

/// A secret (password) read from the environment or a file; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret value, for handing to the library that needs it; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}
