//! Names from files, quoted safely in one-line messages.

/// `s` as it may appear in a one-line message: control characters and other non-printable
/// characters escaped, and at most `max` characters kept (a marker says how much was cut). A tensor
/// name or field made of raw bytes thus never floods a terminal.
pub fn shown(s: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i >= max {
            let rest = s.chars().count() - i;
            out.push_str(&format!("…(+{rest} chars)"));
            break;
        }
        if c.is_control() || c == '\u{fffd}' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A path as it may appear in a one-line message (see [`shown`]; at most 300 characters).
pub fn shown_path(p: &std::path::Path) -> String {
    shown(&p.display().to_string(), 300)
}

/// A message made one line: control characters escaped and at most 1,000 characters kept.
/// Messages quote file contents (a cell, a dtype, a key); this keeps a newline in them from
/// breaking the one-line error.
pub fn one_line(msg: &str) -> std::borrow::Cow<'_, str> {
    if msg.chars().count() <= 1000 && !msg.chars().any(char::is_control) {
        std::borrow::Cow::Borrowed(msg)
    } else {
        std::borrow::Cow::Owned(shown(msg, 1000))
    }
}

#[cfg(test)]
mod tests {
    use super::shown;

    #[test]
    fn raw_bytes_are_escaped_and_cut() {
        let s = "a\nb\u{0}c".repeat(100);
        let out = shown(&s, 10);
        assert!(!out.contains('\n'), "{out}");
        assert!(out.contains("\\n"), "{out}");
        assert!(out.ends_with("chars)"), "{out}");
        assert!(out.len() < 60, "{out}");
        assert_eq!(
            shown("blocks.3.hook_resid_post", 80),
            "blocks.3.hook_resid_post"
        );
    }
}
