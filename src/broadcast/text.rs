//! Short text kept inline: channel ids, channel and application names. A
//! broadcast keeps a few of them for its whole life, and a `String` for each
//! would cost an allocation and a free per call; Asterisk bounds the usual
//! ones (a unique id is under 150 bytes), so they fit in place. Longer text
//! still works, on the heap.

use std::ffi::CStr;
use std::fmt;

/// Text of up to `N` bytes stored in place, longer text on the heap.
#[derive(Clone)]
pub enum InlineText<const N: usize> {
    Inline { len: usize, bytes: [u8; N] },
    Heap(Box<str>),
}

impl<const N: usize> InlineText<N> {
    pub fn new(text: &str) -> Self {
        let len = text.len();
        if len > N {
            return InlineText::Heap(text.into());
        }
        let mut bytes = [0; N];
        bytes[..len].copy_from_slice(text.as_bytes());
        InlineText::Inline { len, bytes }
    }

    /// The text's bytes (what the registry compares and hashes: no UTF-8 check).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            InlineText::Inline { len, bytes } => &bytes[..*len],
            InlineText::Heap(text) => text.as_bytes(),
        }
    }

    /// The text (checked again as UTF-8: for the CLI and logs, not hot paths).
    pub fn as_str(&self) -> &str {
        match self {
            // Made from a &str, so the check cannot fail.
            InlineText::Inline { len, bytes } => std::str::from_utf8(&bytes[..*len]).unwrap_or(""),
            InlineText::Heap(text) => text,
        }
    }

    #[cfg(test)]
    pub fn is_inline(&self) -> bool {
        matches!(self, InlineText::Inline { .. })
    }
}

impl<const N: usize> PartialEq for InlineText<N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl<const N: usize> Eq for InlineText<N> {}

impl<const N: usize> fmt::Debug for InlineText<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl<const N: usize> fmt::Display for InlineText<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> From<&str> for InlineText<N> {
    fn from(text: &str) -> Self {
        InlineText::new(text)
    }
}

/// A line of text (a log message) put together from pieces without
/// `core::fmt`: in a buffer on the stack while it is short, on the heap
/// beyond. Its pieces hold no NUL (fixed text, C text, numbers), so C can
/// take it as it is.
pub struct LineText {
    buffer: [u8; LINE_ON_STACK],
    used: usize,
    /// The whole line, once it outgrew the buffer.
    long: Vec<u8>,
}

const LINE_ON_STACK: usize = 160;

impl LineText {
    pub fn new() -> LineText {
        LineText { buffer: [0; LINE_ON_STACK], used: 0, long: Vec::new() }
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.long.is_empty() && self.used + bytes.len() <= LINE_ON_STACK {
            self.buffer[self.used..self.used + bytes.len()].copy_from_slice(bytes);
            self.used += bytes.len();
            return;
        }
        if self.long.is_empty() {
            self.long.extend_from_slice(&self.buffer[..self.used]);
        }
        self.long.extend_from_slice(bytes);
    }

    /// Fixed text of the program's (it holds no NUL).
    pub fn text(mut self, text: &'static str) -> LineText {
        debug_assert!(!text.contains('\0'));
        self.push(text.as_bytes());
        self
    }

    /// C text: a channel's name, an application's.
    pub fn c_text(mut self, text: &CStr) -> LineText {
        self.push(text.to_bytes());
        self
    }

    pub fn number(mut self, value: u64) -> LineText {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut rest = value;
        loop {
            at -= 1;
            digits[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        self.push(&digits[at..]);
        self
    }

    pub fn as_bytes(&self) -> &[u8] {
        if self.long.is_empty() { &self.buffer[..self.used] } else { &self.long }
    }
}

impl Default for LineText {
    fn default() -> Self {
        LineText::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_stays_inline_and_long_text_goes_to_the_heap() {
        let short = InlineText::<8>::new("12345678");
        assert!(short.is_inline());
        assert_eq!(short.as_str(), "12345678");
        let long = InlineText::<8>::new("123456789");
        assert!(!long.is_inline());
        assert_eq!(long.as_str(), "123456789");
        assert_eq!(InlineText::<4>::new("").as_str(), "");
        assert_eq!(InlineText::<4>::new("é").as_bytes(), "é".as_bytes());
    }

    #[test]
    fn equal_text_is_equal_whichever_the_storage() {
        assert_eq!(InlineText::<4>::new("abcdef"), InlineText::<4>::Heap("abcdef".into()));
        assert_ne!(InlineText::<8>::new("a"), InlineText::<8>::new("b"));
    }

    #[test]
    fn a_line_is_its_pieces_in_order_on_the_stack_or_beyond() {
        let line = LineText::new().text("Channel ").c_text(c"PJSIP/a-1").text(": ").number(0).text(" ").number(u64::MAX);
        assert_eq!(line.as_bytes(), b"Channel PJSIP/a-1: 0 18446744073709551615");
        let long = std::ffi::CString::new("x".repeat(300)).unwrap();
        let line = LineText::new().text("a").c_text(&long).number(42);
        assert_eq!(line.as_bytes(), format!("a{}42", "x".repeat(300)).as_bytes());
        let full = LineText::new().c_text(&std::ffi::CString::new("y".repeat(LINE_ON_STACK)).unwrap());
        assert_eq!(full.as_bytes().len(), LINE_ON_STACK);
        assert_eq!(full.text("z").as_bytes().len(), LINE_ON_STACK + 1);
    }
}
