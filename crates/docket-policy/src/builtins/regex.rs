//! OPA's regex builtins: Go's RE2 syntax (`regexp`), run on Rust's `regex` crate.
//!
//! The two engines share their syntax nearly everywhere, and their matching semantics
//! (leftmost-first, linear time; an empty match right after a match is skipped by both when
//! finding all), but they differ where a policy notices:
//!
//! - Go's Perl classes are ASCII: `\d` is `[0-9]`, `\w` is `[0-9A-Za-z_]`, `\s` is
//!   `[\t\n\f\r ]`, and `\b` is a boundary between ASCII word characters and the rest. Rust's
//!   are Unicode (`^\w+$` matched `"école"`, which OPA does not), and so large that regorus,
//!   which caps compiled size at 100 KiB, refused `^\w{3,16}$` with an error on every request.
//! - Inside a bracketed class Go reads `[`, `&&`, `--` and `~~` as literal characters, where
//!   Rust opens a nested class or a set operation.
//! - Go has `\Q…\E` (literal text); Rust has not.
//!
//! [`go_to_rust`] rewrites a Go pattern into the Rust pattern that matches the same strings, and
//! every regex builtin docket answers compiles through [`compile`]. The result functions follow
//! Go's `regexp` (`FindAllString`, `FindAllStringSubmatch`, `Split`, `ReplaceAllString`), which
//! OPA calls.

use anyhow::{Result, anyhow, bail};
use regex::{Regex, RegexBuilder};
use regorus::Value;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Largest compiled program accepted, in bytes. Go has no such cap; this one bounds what one
/// pattern (possibly from a request's input) may cost, while Unicode classes repeated a few
/// times (`^\p{L}{1,5}$`) still compile.
const SIZE_LIMIT: usize = 4 << 20;

/// Compiled patterns kept; past it the cache starts over (patterns in policies are few; a flood
/// of distinct patterns from inputs must not grow memory without bound).
const CACHE_ENTRIES: usize = 512;

const WORD: &str = "0-9A-Za-z_";
const DIGIT: &str = "0-9";
const SPACE: &str = r"\t\n\x0C\r\x20";

/// The Rust pattern matching what the Go (RE2) pattern `go` matches (see the module docs), or
/// why Go refuses it where Rust would not.
pub fn go_to_rust(go: &str) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(go.len() + 16);
    let mut chars = go.chars().peekable();
    // Inside a bracketed class: true once its first character (which may be a literal `]`) has
    // been read.
    let mut class: Option<bool> = None;
    while let Some(c) = chars.next() {
        match (c, class) {
            ('\\', _) => {
                let Some(e) = chars.next() else {
                    out.push('\\'); // a trailing backslash: an error in both engines
                    break;
                };
                if e == 'Q' {
                    // Literal text up to `\E` or the end.
                    let mut literal = String::new();
                    while let Some(l) = chars.next() {
                        if l == '\\' && chars.peek() == Some(&'E') {
                            chars.next();
                            break;
                        }
                        literal.push(l);
                    }
                    for l in literal.chars() {
                        push_literal(&mut out, l, class.is_some());
                    }
                } else if e.is_ascii_digit() {
                    // Go: octal `\0`, `\012`, `\123` (a lone `\1`..`\9` would be a
                    // backreference, which RE2 refuses); Rust has no octal escapes.
                    let mut digits = e.to_string();
                    while digits.len() < 3 && chars.peek().is_some_and(|d| ('0'..='7').contains(d))
                    {
                        digits.push(chars.next().expect("peeked"));
                    }
                    match u32::from_str_radix(&digits, 8) {
                        Ok(code) if e == '0' || digits.len() > 1 => {
                            let _ = write!(out, "\\x{{{code:X}}}");
                        }
                        _ => return Err(format!("invalid escape sequence: `\\{digits}`")),
                    }
                } else if e.is_ascii_punctuation() {
                    // Go: an escaped punctuation character is that character; Rust gives some
                    // of them meanings of their own (`\<` and `\>` are word boundaries).
                    push_literal(&mut out, e, class.is_some());
                } else if "afnrtvxpPzAbBdDsSwW".contains(e) {
                    push_escape(&mut out, e, class.is_some());
                } else {
                    // Rust's `\u`, `\U`, `\e`, … are not RE2's: refused as Go refuses them.
                    return Err(format!("invalid escape sequence: `\\{e}`"));
                }
                if let Some(first) = class.as_mut() {
                    *first = true;
                }
            }
            ('[', None) => {
                out.push('[');
                if chars.peek() == Some(&'^') {
                    chars.next();
                    out.push('^');
                }
                class = Some(false);
            }
            (']', Some(false)) => {
                out.push_str(r"\]");
                class = Some(true);
            }
            (']', Some(true)) => {
                out.push(']');
                class = None;
            }
            ('[', Some(_)) if chars.peek() == Some(&':') => {
                // A POSIX class `[:alpha:]`, ASCII in both engines: copied through `:]`.
                out.push('[');
                for p in chars.by_ref() {
                    out.push(p);
                    if p == ']' {
                        break;
                    }
                }
                class = Some(true);
            }
            ('[' | '&' | '~', Some(_)) => {
                out.push('\\');
                out.push(c);
                class = Some(true);
            }
            ('-', Some(_)) if chars.peek() == Some(&'-') => {
                // Go: a range ending at `-` or a literal `-`; never Rust's class difference.
                out.push_str(r"\-");
                class = Some(true);
            }
            (c, Some(_)) => {
                out.push(c);
                class = Some(true);
            }
            ('{', None) => {
                // A repeat count: Go refuses one over 1,000; Rust would compile it.
                let rest: String = chars.clone().take_while(|&c| c != '}').collect();
                let counts: Vec<&str> = rest.split(',').collect();
                let is_count = matches!(counts.len(), 1 | 2)
                    && !counts[0].is_empty()
                    && counts.iter().all(|n| n.bytes().all(|b| b.is_ascii_digit()));
                if is_count
                    && counts
                        .iter()
                        .any(|n| n.parse::<u32>().map_or(!n.is_empty(), |n| n > 1000))
                {
                    return Err(format!("invalid repeat count: `{{{rest}}}`"));
                }
                out.push('{');
            }
            (c, None) => out.push(c),
        }
    }
    Ok(out)
}

fn push_literal(out: &mut String, c: char, in_class: bool) {
    if in_class {
        if matches!(c, '\\' | ']' | '[' | '^' | '-' | '&' | '~') {
            out.push('\\');
        }
        out.push(c);
    } else {
        out.push_str(&regex::escape(&c.to_string()));
    }
}

fn push_escape(out: &mut String, e: char, in_class: bool) {
    let class = |set: &str, negated: bool| format!("[{}{set}]", if negated { "^" } else { "" });
    match (e, in_class) {
        ('d', false) => out.push_str(&class(DIGIT, false)),
        ('D', _) => out.push_str(&class(DIGIT, true)),
        ('w', false) => out.push_str(&class(WORD, false)),
        ('W', _) => out.push_str(&class(WORD, true)),
        ('s', false) => out.push_str(&class(SPACE, false)),
        ('S', _) => out.push_str(&class(SPACE, true)),
        // Inside a class the positive sets are spliced in; the negated ones above are nested
        // classes, which Rust unites with the rest.
        ('d', true) => out.push_str(DIGIT),
        ('w', true) => out.push_str(WORD),
        ('s', true) => out.push_str(SPACE),
        ('b', false) => out.push_str(r"(?-u:\b)"),
        ('B', false) => out.push_str(r"(?-u:\B)"),
        (e, _) => {
            out.push('\\');
            out.push(e);
        }
    }
}

/// Compiles a Go pattern (cached). The error says whether the pattern is invalid or too large.
pub fn compile(pattern: &str) -> Result<Regex> {
    static CACHE: Mutex<Option<HashMap<String, Regex>>> = Mutex::new(None);
    if let Some(re) = CACHE
        .lock()
        .map_err(|_| anyhow!("regex cache poisoned"))?
        .as_ref()
        .and_then(|cache| cache.get(pattern))
    {
        return Ok(re.clone());
    }
    let rust =
        go_to_rust(pattern).map_err(|e| anyhow!("error parsing regexp: {e}: `{pattern}`"))?;
    let re = RegexBuilder::new(&rust)
        .size_limit(SIZE_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(_) => anyhow!(
                "the regular expression {pattern:?} is too large to compile (over {} MiB); \
                 simplify it",
                SIZE_LIMIT >> 20
            ),
            _ => anyhow!("error parsing regexp {pattern:?}: {e}"),
        })?;
    let mut cache = CACHE.lock().map_err(|_| anyhow!("regex cache poisoned"))?;
    let cache = cache.get_or_insert_with(HashMap::new);
    if cache.len() >= CACHE_ENTRIES {
        cache.clear();
    }
    cache.insert(pattern.to_string(), re.clone());
    Ok(re)
}

use super::string_arg as string;

/// `n` as Go's `FindAll*` take it: negative is every match.
fn count(name: &str, v: &Value) -> Result<usize> {
    let Value::Number(n) = v else {
        bail!(
            "{name}: operand 3 must be number but got {}",
            super::type_name(v)
        );
    };
    match n.as_i64() {
        Some(n) if n < 0 => Ok(usize::MAX),
        Some(n) => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
        None if n.is_integer() => Ok(usize::MAX),
        None => bail!("{name}: operand 3 must be an integer"),
    }
}

pub fn regex_match(args: &[Value]) -> Result<Value> {
    let name = "regex.match";
    let re = compile(string(name, 1, &args[0])?)?;
    Ok(Value::from(re.is_match(string(name, 2, &args[1])?)))
}

pub fn is_valid(args: &[Value]) -> Result<Value> {
    Ok(Value::from(match &args[0] {
        Value::String(s) => compile(s).is_ok(),
        _ => false,
    }))
}

pub fn find_n(args: &[Value]) -> Result<Value> {
    let name = "regex.find_n";
    let re = compile(string(name, 1, &args[0])?)?;
    let value = string(name, 2, &args[1])?;
    let n = count(name, &args[2])?;
    Ok(Value::from(
        re.find_iter(value)
            .take(n)
            .map(|m| Value::from(m.as_str()))
            .collect::<Vec<_>>(),
    ))
}

pub fn find_all_string_submatch_n(args: &[Value]) -> Result<Value> {
    let name = "regex.find_all_string_submatch_n";
    let re = compile(string(name, 1, &args[0])?)?;
    let value = string(name, 2, &args[1])?;
    let n = count(name, &args[2])?;
    Ok(Value::from(
        re.captures_iter(value)
            .take(n)
            .map(|groups| {
                Value::from(
                    groups
                        .iter()
                        .map(|g| Value::from(g.map_or("", |g| g.as_str())))
                        .collect::<Vec<_>>(),
                )
            })
            .collect::<Vec<_>>(),
    ))
}

/// Go's `ReplaceAllString`: `$1`, `${1}`, `$name`, `${name}` expand (the longest name wins),
/// `$$` is a `$`; Rust's replacement syntax is the same.
pub fn replace(args: &[Value]) -> Result<Value> {
    let name = "regex.replace";
    let s = string(name, 1, &args[0])?;
    let re = compile(string(name, 2, &args[1])?)?;
    let with = string(name, 3, &args[2])?;
    Ok(Value::from(re.replace_all(s, with).into_owned()))
}

/// Go's `Split(s, -1)`, which differs from Rust's `split` at empty matches.
pub fn split(args: &[Value]) -> Result<Value> {
    let name = "regex.split";
    let re = compile(string(name, 1, &args[0])?)?;
    let s = string(name, 2, &args[1])?;
    if !re.as_str().is_empty() && s.is_empty() {
        return Ok(Value::from(vec![Value::from("")]));
    }
    let mut parts = Vec::new();
    let (mut begin, mut end) = (0, 0);
    for m in re.find_iter(s) {
        end = m.start();
        if m.end() != 0 {
            parts.push(Value::from(&s[begin..end]));
        }
        begin = m.end();
    }
    if end != s.len() {
        parts.push(Value::from(&s[begin..]));
    }
    Ok(Value::from(parts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_classes_are_ascii_and_brackets_literal() {
        let cases = [
            (r"^\w{3,16}$", "abc_9", true),
            (r"^\w+$", "école", false),
            (r"^\d+$", "٣", false),
            (r"^a\sb$", "a\u{a0}b", false),
            (r"^a\sb$", "a\tb", true),
            (r"^[\w.-]+$", "a.b-c", true),
            (r"^[\w.-]+$", "é", false),
            (r"^[^\d]+$", "abc", true),
            (r"^[\W]+$", "é!", true),
            (r"^[a[]+$", "a[a", true),
            (r"^[a&&b]+$", "&", true),
            (r"^[a~~]+$", "~", true),
            (r"^[]a]+$", "]a", true),
            (r"^[[:alpha:]]+$", "abc", true),
            (r"\bé", "é", false),
            (r"\Qa.b\E$", "a.b", true),
            (r"\Qa.b\E$", "axb", false),
            (r"^\p{L}{1,5}$", "école", true),
            (r"^\<a\>$", "<a>", true),
            (r"^\101\0$", "A\0", true),
            (r"^\x41$", "A", true),
            (r"^a{2,}$", "aaa", true),
            (r"^a{1000}$", &"a".repeat(1000), true),
        ];
        for (pattern, text, want) in cases {
            let re = compile(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
            assert_eq!(re.is_match(text), want, "{pattern} on {text:?}");
        }
        for refused in [r"\u0041", r"\1", r"\e", r"\8", r"a{1001}", r"a{2,1001}"] {
            assert!(compile(refused).is_err(), "{refused}");
        }
    }
}
