//! JSON text read into a policy value with its numbers as OPA holds them.
//!
//! OPA keeps each number of its input and data as the decimal it is written as: an integer of
//! any size stays exact (`18446744073709551617`, `1e20` is the integer 10^20), and arithmetic on
//! integers is exact. regorus's JSON reader goes through `serde_json`, which turns an integer
//! beyond 64 bits, and every number written with an exponent, into an `f64`: `1e20 + 1` was
//! `1e20`, `18446744073709551617 % 10` the error `modulo on floating-point number`.
//!
//! So a text whose numbers an `f64`, `i64` or `u64` holds exactly as written (no exponent, at
//! most 15 significant digits, the case of nearly every request) is read by regorus as before;
//! any other is read here, every number through regorus's own exact reading of a numeric
//! string (`Value::from_numeric_string`: integers as big integers, fractions as `f64`). The
//! text has passed `docket_ledger::json::check` first, so every number fits an `f64`'s range
//! and the exponents, which would otherwise ask for integers of any length, are bounded.

use regorus::Value;
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// `text` (checked JSON) as a policy value, its numbers exact.
pub fn read(text: &str) -> anyhow::Result<Value> {
    if every_number_fits_f64_as_written(text) {
        return Value::from_json_str(text);
    }
    exact(text)
}

/// Whether no number literal in `text` has an exponent or more than 15 significant digits.
fn every_number_fits_f64_as_written(text: &str) -> bool {
    docket_ledger::json::number_literals(text).all(|literal| {
        let significant = literal
            .bytes()
            .filter(u8::is_ascii_digit)
            .skip_while(|&d| d == b'0')
            .count();
        !literal.contains(['e', 'E']) && significant <= 15
    })
}

fn exact(text: &str) -> anyhow::Result<Value> {
    let text = text.trim();
    Ok(match text.as_bytes().first() {
        Some(b'{') => {
            let members: BTreeMap<String, &RawValue> = serde_json::from_str(text)?;
            let mut object = BTreeMap::new();
            for (name, member) in members {
                object.insert(Value::from(name), exact(member.get())?);
            }
            Value::from(object)
        }
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(text)?;
            let items: anyhow::Result<Vec<Value>> = items.iter().map(|v| exact(v.get())).collect();
            Value::from(items?)
        }
        Some(b'-' | b'0'..=b'9') => number(text)?,
        _ => Value::from_json_str(text)?,
    })
}

/// A number literal: an integer written with an exponent that an `f64` holds exactly
/// (`1e+21`, as JavaScript and Python write large numbers) stays an `f64`, so that it prints
/// as OPA prints the literal (`1e+21`) while it still counts as the integer it is; any other
/// integer is exact, a fraction the nearest `f64`.
fn number(text: &str) -> anyhow::Result<Value> {
    if text.contains(['e', 'E']) {
        let Some(digits) = integer_digits(text) else {
            return Value::from_numeric_string(text);
        };
        if digits == "0" {
            return Ok(Value::from(0_u64));
        }
        if let Ok(v) = text.parse::<f64>()
            && v.is_finite()
            && format!("{:.0}", v.abs()) == digits
        {
            return Ok(Value::from(v));
        }
    }
    Value::from_numeric_string(text)
}

/// The decimal digits of the magnitude of an integral number literal; `None` for a fraction.
/// The text has passed docket's JSON check, so its value fits an `f64` and the digits are few.
fn integer_digits(text: &str) -> Option<String> {
    let text = text.strip_prefix('-').unwrap_or(text);
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(i) => (&text[..i], text[i + 1..].parse::<i64>().ok()?),
        None => (text, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{int}{frac}");
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Some("0".to_string());
    }
    let shift = exponent.checked_sub(i64::try_from(frac.len()).ok()?)?;
    if shift >= 0 {
        let zeros = usize::try_from(shift).ok()?;
        // A nonzero value beyond an f64 was refused before this reading.
        (digits.len() + zeros <= 400).then(|| format!("{digits}{}", "0".repeat(zeros)))
    } else {
        let cut = usize::try_from(-shift).ok()?;
        let keep = digits.len().checked_sub(cut)?;
        let (whole, dropped) = digits.split_at(keep);
        dropped
            .bytes()
            .all(|d| d == b'0')
            .then(|| whole.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_an_f64_holds_as_written_take_regorus_s_reader() {
        for fits in [
            r#"{"a": 1, "b": [2.5, -3], "c": "1e400 12345678901234567890"}"#,
            "123456789012345",
            r#""\"1e5""#,
            "0.000000000000001",
        ] {
            assert!(every_number_fits_f64_as_written(fits), "{fits}");
        }
        for exact in [
            "1e3",
            r#"{"n": 18446744073709551617}"#,
            "[1, 2.0E-3]",
            "1234567890123456",
        ] {
            assert!(!every_number_fits_f64_as_written(exact), "{exact}");
        }
    }

    #[test]
    fn big_integers_and_exponents_stay_exact() {
        let value =
            read(r#"{"n": 18446744073709551617, "e": 1e20, "f": [0.5, "x", null, true]}"#).unwrap();
        assert_eq!(
            value
                .to_json_str()
                .unwrap()
                .split_whitespace()
                .collect::<String>(),
            r#"{"e":1e+20,"f":[0.5,"x",null,true],"n":18446744073709551617}"#
        );
    }

    #[test]
    fn an_integer_an_f64_holds_keeps_its_exponent_spelling() {
        for (literal, exact) in [
            ("1e+21", Some("1000000000000000000000")),
            ("2.5E3", Some("2500")),
            ("1.5e-3", None),
            ("120e-1", Some("12")),
            ("125e-1", None),
            ("-0.0e5", Some("0")),
        ] {
            assert_eq!(integer_digits(literal).as_deref(), exact, "{literal}");
        }
        // An f64 holds 10^21 exactly: it stays a float (and prints as one); 10^23 it does not.
        assert_eq!(read("1e+21").unwrap().to_json_str().unwrap(), "1e+21");
        assert_eq!(
            read("1e+23").unwrap().to_json_str().unwrap(),
            "100000000000000000000000"
        );
    }

    #[test]
    fn a_zero_with_a_huge_exponent_is_zero_at_once() {
        // A 14-byte text that once asked for the integer 10^999999999.
        for zero in ["0e999999999", "-0.000E+999999999", "[0e999999999]"] {
            let value = read(zero).unwrap();
            let text = value.to_json_str().unwrap();
            assert!(text.contains('0') && !text.contains('1'), "{zero}: {text}");
        }
    }
}
