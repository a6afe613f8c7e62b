//! docket's one rule for JSON text (docs/log-format.md §4.4, "JSON text"): RFC 8259 (I-JSON,
//! RFC 7493) with limits. Every JSON text docket decides on, masks, seals or verifies passes
//! [`check`] first, so the bytes mean one thing to every reader: the policy engine, the masker,
//! the sealer, the verifier and any other tool.
//!
//! A text is refused when
//! - an object has two members with the same name (compared after unescaping): readers disagree
//!   on which one counts, so a value could be decided on and another sealed or masked;
//! - it nests arrays and objects more than [`MAX_DEPTH`] deep;
//! - a string holds a lone UTF-16 surrogate escape (`"\ud800"`), which no UTF-8 reader can
//!   represent;
//! - a number does not fit an IEEE 754 double (`1e400`), which readers round differently.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// How deeply arrays and objects may nest (a top-level scalar is depth 0, `[]` is depth 1).
pub const MAX_DEPTH: usize = 100;

/// Why a JSON text was refused, in a sentence that says where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError(pub String);

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for JsonError {}

/// Checks `text` against docket's JSON rule (the module documentation).
pub fn check(text: &str) -> Result<(), JsonError> {
    check_bytes(text.as_bytes())
}

/// [`check`] for bytes, which must also be UTF-8.
pub fn check_bytes(bytes: &[u8]) -> Result<(), JsonError> {
    let mut state = State {
        depth: 0,
        refusal: None,
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let outcome = Node { state: &mut state }
        .deserialize(&mut de)
        .and_then(|()| de.end());
    match (outcome, state.refusal) {
        (Ok(()), _) => Ok(()),
        (Err(_), Some(refusal)) => Err(JsonError(refusal.message())),
        (Err(e), None) if e.to_string().starts_with("number out of range") => {
            Err(JsonError(format!(
                "the number at line {} column {} does not fit a 64-bit float; write it as a string",
                e.line(),
                e.column()
            )))
        }
        (Err(e), None) => Err(JsonError(format!("not valid JSON: {e}"))),
    }
}

/// What a check refused, and where: the path is collected only on the way out of a refusal
/// (innermost segment first), so a text that passes costs no allocation per member.
struct Refusal {
    why: Why,
    path_reversed: Vec<String>,
}

enum Why {
    Duplicate(String),
    TooDeep,
    NotFinite,
}

impl Refusal {
    fn message(&self) -> String {
        // JSON Pointer (RFC 6901): `/context/ip`; "the top" for the whole text.
        let pointer: String = self
            .path_reversed
            .iter()
            .rev()
            .map(|p| format!("/{}", p.replace('~', "~0").replace('/', "~1")))
            .collect();
        let at = if pointer.is_empty() {
            "the top".to_string()
        } else {
            pointer
        };
        match &self.why {
            Why::Duplicate(name) => format!(
                "the object at {at} has the name {name:?} twice; every name in an object must \
                 be unique (readers disagree on which one counts)"
            ),
            Why::TooDeep => {
                format!("the value at {at} nests arrays and objects more than {MAX_DEPTH} deep")
            }
            Why::NotFinite => {
                format!("the number at {at} does not fit a 64-bit float; write it as a string")
            }
        }
    }
}

struct State {
    /// Arrays and objects open around the current value.
    depth: usize,
    /// The refusal a check made (serde's own error carries only a position).
    refusal: Option<Refusal>,
}

impl State {
    fn refuse<E: de::Error>(&mut self, why: Why) -> E {
        self.refusal = Some(Refusal {
            why,
            path_reversed: Vec::new(),
        });
        E::custom("refused by docket's JSON rule")
    }

    /// On the way out of a refused child: name the segment it was at.
    fn locate(&mut self, segment: impl FnOnce() -> String) {
        if let Some(refusal) = &mut self.refusal {
            refusal.path_reversed.push(segment());
        }
    }
}

/// One JSON value.
struct Node<'s> {
    state: &'s mut State,
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        if v.is_finite() {
            return Ok(());
        }
        Err(self.state.refuse(Why::NotFinite))
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let state = self.state;
        if state.depth >= MAX_DEPTH {
            return Err(state.refuse(Why::TooDeep));
        }
        state.depth += 1;
        let mut index = 0usize;
        loop {
            match seq.next_element_seed(Node { state: &mut *state }) {
                Ok(Some(())) => index += 1,
                Ok(None) => break,
                Err(e) => {
                    state.locate(|| index.to_string());
                    return Err(e);
                }
            }
        }
        state.depth -= 1;
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let state = self.state;
        if state.depth >= MAX_DEPTH {
            return Err(state.refuse(Why::TooDeep));
        }
        state.depth += 1;
        // Objects are small: a linear scan beats hashing up to a few dozen names.
        let mut names: Vec<Cow<'de, str>> = Vec::with_capacity(8);
        let mut set: Option<std::collections::HashSet<Cow<'de, str>>> = None;
        while let Some(name) = map.next_key_seed(Name)? {
            let seen = match &mut set {
                Some(set) => !set.insert(name.clone()),
                None => {
                    let seen = names.contains(&name);
                    names.push(name.clone());
                    if names.len() > 32 {
                        set = Some(names.drain(..).collect());
                    }
                    seen
                }
            };
            if seen {
                return Err(state.refuse(Why::Duplicate(name.into_owned())));
            }
            if let Err(e) = map.next_value_seed(Node { state: &mut *state }) {
                state.locate(|| name.into_owned());
                return Err(e);
            }
        }
        state.depth -= 1;
        Ok(())
    }
}

/// An object member's name, borrowed when it has no escapes.
struct Name;

impl<'de> DeserializeSeed<'de> for Name {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Name {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object member name")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_string()))
    }
}

/// The number literals of `text` (checked JSON), as written, in order; strings are skipped.
pub fn number_literals(text: &str) -> impl Iterator<Item = &str> {
    let bytes = text.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while let Some(&b) = bytes.get(i) {
            match b {
                b'"' => {
                    i += 1;
                    while let Some(&c) = bytes.get(i) {
                        i += if c == b'\\' { 2 } else { 1 };
                        if c == b'"' {
                            break;
                        }
                    }
                }
                b'-' | b'0'..=b'9' => {
                    let start = i;
                    while bytes.get(i).is_some_and(|c| {
                        matches!(c, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                    }) {
                        i += 1;
                    }
                    return text.get(start..i);
                }
                _ => i += 1,
            }
        }
        None
    })
}

/// The first integer literal in `text` (checked JSON) that no 64-bit integer holds
/// (`18446744073709551617`), for a reader that keeps numbers as 64-bit integers or doubles and
/// must refuse what it would round rather than change it.
pub fn integer_beyond_64_bits(text: &str) -> Option<&str> {
    number_literals(text).find(|literal| {
        !literal.contains(['.', 'e', 'E'])
            && literal.parse::<i64>().is_err()
            && literal.parse::<u64>().is_err()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> String {
        check(text).expect_err(text).0
    }

    #[test]
    fn duplicate_names_are_refused_at_every_depth_naming_the_path() {
        assert!(refused(r#"{"a":1,"a":2}"#).contains("the top has the name \"a\" twice"));
        let deep = refused(r#"{"context":{"ip":"10.1.1.1","ip":"203.0.113.77"}}"#);
        assert!(
            deep.contains("/context has the name \"ip\" twice"),
            "{deep}"
        );
        let in_array = refused(r#"{"xs":[{},{"b":1,"b":1}]}"#);
        assert!(in_array.contains("/xs/1 has the name"), "{in_array}");
        // Compared after unescaping.
        assert!(refused(r#"{"ip":1,"\u0069p":2}"#).contains("twice"));
        // Many names: the hashed path.
        let many: Vec<String> = (0..40).map(|i| format!("\"k{i}\":{i}")).collect();
        assert!(check(&format!("{{{}}}", many.join(","))).is_ok());
        assert!(refused(&format!("{{{},\"k3\":0}}", many.join(","))).contains("\"k3\" twice"));
        assert!(check(r#"{"a":{"a":{"a":1}},"b":[{"a":1},{"a":2}]}"#).is_ok());
    }

    #[test]
    fn depth_surrogates_and_numbers_have_limits() {
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(check(&ok).is_ok());
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert!(refused(&deep).contains("more than 100 deep"));
        let million = "[".repeat(1_000_000);
        assert!(check(&million).is_err());
        assert!(check(r#"{"s":"\ud800"}"#).is_err());
        assert!(check(r#"{"s":"\ud83d\ude00"}"#).is_ok());
        assert!(refused("[1e400]").contains("column 6 does not fit a 64-bit float"));
        assert!(check("[1e308, -0, 12345678901234567890]").is_ok());
        assert!(check("{} x").is_err());
        assert!(check_bytes(b"\"\xff\"").is_err());
    }

    #[test]
    fn integers_beyond_64_bits_are_found_outside_strings() {
        assert_eq!(
            integer_beyond_64_bits(r#"{"a": 18446744073709551615, "b": -9223372036854775808}"#),
            None
        );
        assert_eq!(
            integer_beyond_64_bits(
                r#"{"s": "18446744073709551616", "n": [1.5e300, 18446744073709551616]}"#
            ),
            Some("18446744073709551616")
        );
        assert_eq!(
            integer_beyond_64_bits(r#"{"\"": -9223372036854775809}"#),
            Some("-9223372036854775809")
        );
    }
}
