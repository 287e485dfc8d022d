//! Value parsers for command-line arguments, so that a bad value is refused
//! by the parser with a message naming the flag, before any log is opened.

/// Parses a non-negative integer (an index or a tree size).
///
/// Clap's own `u64` parser would say "invalid digit found in string" for
/// `-1`; this says what is wanted instead.
pub(crate) fn non_negative(text: &str) -> Result<u64, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err("must be a non-negative integer".into());
    }
    text.parse()
        .map_err(|_| format!("must be a non-negative integer no larger than {}", u64::MAX))
}

/// Parses a log origin: it doubles as the checkpoint key's name, so it must
/// be a valid signed-note key name.
pub(crate) fn origin(text: &str) -> Result<String, String> {
    xgate_ledger::checkpoint::check_name(text)
        .map(|()| text.to_owned())
        .map_err(|_| "must be non-empty, without spaces or '+'".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_negative_accepts_digits_only() {
        assert_eq!(non_negative("0"), Ok(0));
        assert_eq!(non_negative("18446744073709551615"), Ok(u64::MAX));
        for bad in ["", "-1", "+1", "1.5", "abc", " 1", "0x10"] {
            assert!(non_negative(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn non_negative_names_the_limit_on_overflow() {
        let msg = non_negative("18446744073709551616").expect_err("overflow accepted");
        assert!(msg.contains("no larger than"), "{msg}");
    }

    #[test]
    fn origin_refuses_names_a_key_cannot_carry() {
        assert_eq!(origin("example.org/log"), Ok("example.org/log".into()));
        for bad in ["", "a b", "a+b"] {
            assert!(origin(bad).is_err(), "{bad:?} accepted");
        }
    }
}
