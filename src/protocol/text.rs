//! [`Text`]: a `string` decoded as a checked view of the message buffer, for services
//! generated with `StringType::Text` (no copy of the characters when decoding).

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use bytes::Bytes;

use super::ProtocolError;

/// Immutable UTF-8 text sharing its bytes (with the request buffer it was decoded
/// from, or with its clones). Derefs to `str`; cloning is a reference-count increment.
/// While it lives it keeps the whole buffer it was decoded from: keep a copy
/// (`String::from(&*text)`) of text that outlives its call.
/// Equality, order and hash are `str`'s, so a `HashMap<Text, _>` is searched by `&str`.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Text(Bytes);

impl Text {
    /// Text over a string literal (no allocation).
    pub const fn from_static(s: &'static str) -> Text {
        Text(Bytes::from_static(s.as_bytes()))
    }

    /// Text over `bytes`, checked to be UTF-8.
    #[inline]
    pub fn from_utf8(bytes: Bytes) -> Result<Text, ProtocolError> {
        super::check_utf8(&bytes)?;
        Ok(Text(bytes))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor checks or is given UTF-8, and the bytes are immutable.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    /// The bytes underneath, shared.
    pub fn shared(&self) -> &Bytes {
        &self.0
    }

    /// The bytes underneath.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

impl Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl Hash for Text {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Text {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<String> for Text {
    fn from(s: String) -> Text {
        Text(Bytes::from(s))
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Text {
        Text(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<Text> for String {
    fn from(t: Text) -> String {
        t.as_str().to_owned()
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_checked_where_the_bad_byte_is() {
        // Longer than a SIMD block, with multi-byte characters on both sides of it.
        let good = "é漢🦀a".repeat(40);
        assert_eq!(&*Text::from_utf8(Bytes::from(good.clone())).unwrap(), good);
        let mut bad = good.into_bytes();
        bad[101] = 0xff;
        let e = Text::from_utf8(Bytes::from(bad)).unwrap_err();
        assert!(e.to_string().contains("from index 100"), "{e}");
    }
}
