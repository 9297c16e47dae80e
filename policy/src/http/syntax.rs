//! The regex dialect of HTTP rules, one configuration for validation, the reference matcher
//! and the DFAs: byte regexes with Unicode disabled (`.` is any byte but `\n`, classes and case
//! folding are ASCII, non-ASCII literals match their UTF-8 bytes), matched against the whole
//! value (`^(?:re)$`).

use std::cell::RefCell;
use std::collections::HashMap;

use regex_syntax::hir::{self, Class, Hir, HirKind, Look};

/// The whole-value form of a rule regex.
pub(crate) fn anchored(pattern: &str) -> String {
    format!("^(?:{pattern})$")
}

/// The syntax configuration of the DFAs (the same as the reference matcher's).
pub(crate) fn automata_syntax() -> regex_automata::util::syntax::Config {
    regex_automata::util::syntax::Config::new()
        .unicode(false)
        .utf8(false)
}

fn last_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("invalid")
        .trim_start_matches("error: ")
        .to_string()
}

/// Checks a rule regex; the error is a sentence about `pattern` (the caller names the field).
pub(crate) fn check_regex(pattern: &str) -> Result<(), String> {
    let needs_unicode = || {
        format!(
            "`{pattern}` needs Unicode, but HTTP rules are byte regexes with Unicode disabled: \
             use ASCII classes such as `[A-Za-z]` instead of `\\pL`, `\\w` under `(?u)` or \
             Unicode case folding"
        )
    };
    let parsed = regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .build()
        .parse(pattern);
    let hir = match parsed {
        Ok(hir) => hir,
        Err(regex_syntax::Error::Translate(e))
            if *e.kind() == hir::ErrorKind::UnicodeNotAllowed =>
        {
            return Err(needs_unicode());
        }
        Err(e) => {
            return Err(format!(
                "`{pattern}` is not a valid regular expression: {}",
                last_line(&e.to_string())
            ));
        }
    };
    if uses_unicode(&hir) {
        return Err(needs_unicode());
    }
    if let Err(e) = build_reference(pattern) {
        let detail = last_line(&e.to_string());
        return Err(
            if pattern.contains('#') && detail.contains("unclosed group") {
                format!(
                    "`{pattern}` cannot be matched as a whole value: a `(?x)` comment runs to its \
                 end; end the comment with a newline"
                )
            } else {
                format!("`{pattern}` is not a valid regular expression: {detail}")
            },
        );
    }
    Ok(())
}

fn uses_unicode(hir: &Hir) -> bool {
    match hir.kind() {
        HirKind::Empty | HirKind::Literal(_) => false,
        HirKind::Class(Class::Unicode(_)) => true,
        HirKind::Class(Class::Bytes(_)) => false,
        HirKind::Look(look) => matches!(
            look,
            Look::WordUnicode
                | Look::WordUnicodeNegate
                | Look::WordStartUnicode
                | Look::WordEndUnicode
                | Look::WordStartHalfUnicode
                | Look::WordEndHalfUnicode
        ),
        HirKind::Repetition(rep) => uses_unicode(&rep.sub),
        HirKind::Capture(cap) => uses_unicode(&cap.sub),
        HirKind::Concat(subs) | HirKind::Alternation(subs) => subs.iter().any(uses_unicode),
    }
}

fn build_reference(pattern: &str) -> Result<regex::bytes::Regex, regex::Error> {
    regex::bytes::RegexBuilder::new(&anchored(pattern))
        .unicode(false)
        .build()
}

/// Compiled reference regexes, per thread (bounded: cleared when full).
const CACHE_LIMIT: usize = 4096;

thread_local! {
    static CACHE: RefCell<HashMap<String, Option<regex::bytes::Regex>>> =
        RefCell::new(HashMap::new());
}

/// Whether `pattern` matches the whole of `value` (an invalid pattern matches nothing).
pub(crate) fn reference_match(pattern: &str, value: &[u8]) -> bool {
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if !cache.contains_key(pattern) {
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
            let re = check_regex(pattern)
                .ok()
                .and_then(|()| build_reference(pattern).ok());
            cache.insert(pattern.to_string(), re);
        }
        cache[pattern].as_ref().is_some_and(|re| re.is_match(value))
    })
}
