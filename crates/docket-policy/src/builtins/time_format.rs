//! `time.format` as OPA computes it: Go's `time.Time.Format` over a zone from the IANA
//! database, ported from Go's `time/format.go` (`nextStdChunk`, `AppendFormat`).
//!
//! regorus translated Go layouts into chrono's format items on a fixed offset, which loses the
//! zone's abbreviation (`MST` wrote `+02:00` where OPA writes `CEST`), pads `.999` fractions
//! (`17.500Z` where Go drops the zeros: `17.5Z`), and misreads layouts such as `3:4:5 PM .000`.

use anyhow::{Result, anyhow, bail};
use chrono::{DateTime, Datelike, Offset, TimeZone, Timelike, Utc};
use chrono_tz::{OffsetName, Tz};
use regorus::Value;

/// The layouts OPA names (`acceptedTimeFormats`); any other text is a layout itself.
fn named_layout(name: &str) -> Option<&'static str> {
    Some(match name {
        "ANSIC" => "Mon Jan _2 15:04:05 2006",
        "UnixDate" => "Mon Jan _2 15:04:05 MST 2006",
        "RubyDate" => "Mon Jan 02 15:04:05 -0700 2006",
        "RFC822" => "02 Jan 06 15:04 MST",
        "RFC822Z" => "02 Jan 06 15:04 -0700",
        "RFC850" => "Monday, 02-Jan-06 15:04:05 MST",
        "RFC1123" => "Mon, 02 Jan 2006 15:04:05 MST",
        "RFC1123Z" => "Mon, 02 Jan 2006 15:04:05 -0700",
        "RFC3339" => "2006-01-02T15:04:05Z07:00",
        "RFC3339Nano" => "2006-01-02T15:04:05.999999999Z07:00",
        _ => return None,
    })
}

pub(super) fn time_format(args: &[Value]) -> Result<Value> {
    let type_error = || {
        anyhow!(
            "time.format: operand 1 must be either number (ns) or [number (ns), string (tz)] \
             but got {}",
            super::type_name(&args[0])
        )
    };
    let (ns, zone, layout) = match &args[0] {
        Value::Number(_) => (&args[0], "", ""),
        Value::Array(items) => {
            let ns = items.first().ok_or_else(type_error)?;
            let string = |i: usize| match items.get(i) {
                None => Ok(""),
                Some(Value::String(s)) => Ok(s.as_ref()),
                Some(other) => Err(anyhow!(
                    "time.format: operand 1 must be string but got {}",
                    super::type_name(other)
                )),
            };
            (ns, string(1)?, string(2)?)
        }
        _ => return Err(type_error()),
    };
    let ns = match ns {
        Value::Number(n) => match (n.is_integer(), n.as_i64()) {
            (true, Some(ns)) => ns,
            _ => bail!("time.format: timestamp too big"),
        },
        other => bail!(
            "time.format: operand 1 must be number but got {}",
            super::type_name(other)
        ),
    };
    let layout = match layout {
        "" => "2006-01-02T15:04:05.999999999Z07:00",
        name => named_layout(name).unwrap_or(name),
    };
    let at = Utc.timestamp_nanos(ns);
    let text = match zone {
        // Go's `time.Local` is the host's zone; docket's decisions must not depend on the host,
        // so it is UTC here, as in OPA wherever the host's zone is UTC.
        "" | "UTC" | "Local" => format(&at.with_timezone(&Tz::UTC), layout),
        name => {
            let tz: Tz = name
                .parse()
                .map_err(|_| anyhow!("time.format: unknown time zone {name}"))?;
            format(&at.with_timezone(&tz), layout)
        }
    };
    Ok(Value::from(text))
}

/// One element of a Go layout (`nextStdChunk`'s `std` codes).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Std {
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    PM,
    Pm,
    Tz,
    Iso8601Tz,
    Iso8601SecondsTz,
    Iso8601ShortTz,
    Iso8601ColonTz,
    Iso8601ColonSecondsTz,
    NumTz,
    NumSecondsTz,
    NumShortTz,
    NumColonTz,
    NumColonSecondsTz,
    /// A fraction of a second: separator, digits, whether trailing zeros are dropped (`.999`).
    Fraction(u8, usize, bool),
}

fn starts_with_lower(s: &[u8]) -> bool {
    s.first().is_some_and(u8::is_ascii_lowercase)
}

/// Go's `nextStdChunk`: the literal text before the first element, the element, the rest.
fn next_chunk(layout: &str) -> (&str, Option<(Std, &str)>) {
    let b = layout.as_bytes();
    let at = |i: usize, s: &str| b.get(i..i + s.len()) == Some(s.as_bytes());
    for i in 0..b.len() {
        let chunk = |std: Std, len: usize| (&layout[..i], Some((std, &layout[i + len..])));
        match b[i] {
            b'J' if at(i, "Jan") => {
                if at(i, "January") {
                    return chunk(Std::LongMonth, 7);
                }
                if !starts_with_lower(&b[i + 3..]) {
                    return chunk(Std::Month, 3);
                }
            }
            b'M' if b.len() >= i + 3 => {
                if at(i, "Mon") {
                    if at(i, "Monday") {
                        return chunk(Std::LongWeekDay, 6);
                    }
                    if !starts_with_lower(&b[i + 3..]) {
                        return chunk(Std::WeekDay, 3);
                    }
                }
                if at(i, "MST") {
                    return chunk(Std::Tz, 3);
                }
            }
            b'0' => {
                if let Some(&d @ b'1'..=b'6') = b.get(i + 1) {
                    let std = [
                        Std::ZeroMonth,
                        Std::ZeroDay,
                        Std::ZeroHour12,
                        Std::ZeroMinute,
                        Std::ZeroSecond,
                        Std::Year,
                    ][usize::from(d - b'1')];
                    return chunk(std, 2);
                }
                if at(i + 1, "02") {
                    return chunk(Std::ZeroYearDay, 3);
                }
            }
            b'1' => {
                if b.get(i + 1) == Some(&b'5') {
                    return chunk(Std::Hour, 2);
                }
                return chunk(Std::NumMonth, 1);
            }
            b'2' => {
                if at(i, "2006") {
                    return chunk(Std::LongYear, 4);
                }
                return chunk(Std::Day, 1);
            }
            b'_' => {
                if b.get(i + 1) == Some(&b'2') {
                    if at(i + 1, "2006") {
                        // `_2006` is `_` and a long year.
                        return (&layout[..i + 1], Some((Std::LongYear, &layout[i + 5..])));
                    }
                    return chunk(Std::UnderDay, 2);
                }
                if at(i + 1, "_2") {
                    return chunk(Std::UnderYearDay, 3);
                }
            }
            b'3' => return chunk(Std::Hour12, 1),
            b'4' => return chunk(Std::Minute, 1),
            b'5' => return chunk(Std::Second, 1),
            b'P' if b.get(i + 1) == Some(&b'M') => return chunk(Std::PM, 2),
            b'p' if b.get(i + 1) == Some(&b'm') => return chunk(Std::Pm, 2),
            b'-' => {
                for (text, std) in [
                    ("-070000", Std::NumSecondsTz),
                    ("-07:00:00", Std::NumColonSecondsTz),
                    ("-0700", Std::NumTz),
                    ("-07:00", Std::NumColonTz),
                    ("-07", Std::NumShortTz),
                ] {
                    if at(i, text) {
                        return chunk(std, text.len());
                    }
                }
            }
            b'Z' => {
                for (text, std) in [
                    ("Z070000", Std::Iso8601SecondsTz),
                    ("Z07:00:00", Std::Iso8601ColonSecondsTz),
                    ("Z0700", Std::Iso8601Tz),
                    ("Z07:00", Std::Iso8601ColonTz),
                    ("Z07", Std::Iso8601ShortTz),
                ] {
                    if at(i, text) {
                        return chunk(std, text.len());
                    }
                }
            }
            sep @ (b'.' | b',') => {
                if let Some(&digit @ (b'0' | b'9')) = b.get(i + 1) {
                    let mut j = i + 1;
                    while b.get(j) == Some(&digit) {
                        j += 1;
                    }
                    if !b.get(j).is_some_and(u8::is_ascii_digit) {
                        let std = Std::Fraction(sep, j - (i + 1), digit == b'9');
                        return chunk(std, j - i);
                    }
                }
            }
            _ => {}
        }
    }
    (layout, None)
}

/// Go's `appendInt`: `x` in decimal, zero-padded to `width` digits.
fn push_int(out: &mut String, x: i64, width: usize) {
    if x < 0 {
        out.push('-');
    }
    let digits = x.unsigned_abs().to_string();
    for _ in digits.len()..width {
        out.push('0');
    }
    out.push_str(&digits);
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// Go's `Time.AppendFormat` for a time in a zone of the IANA database.
fn format(t: &DateTime<Tz>, layout: &str) -> String {
    let mut out = String::with_capacity(layout.len() + 10);
    let offset = i64::from(t.offset().fix().local_minus_utc());
    let abbreviation = t.offset().abbreviation();
    let (year, month, day) = (i64::from(t.year()), t.month0() as usize, i64::from(t.day()));
    let (hour, minute, second) = (
        i64::from(t.hour()),
        i64::from(t.minute()),
        i64::from(t.second()),
    );
    let mut rest = layout;
    loop {
        let (prefix, next) = next_chunk(rest);
        out.push_str(prefix);
        let Some((std, suffix)) = next else { break };
        rest = suffix;
        match std {
            Std::Year => push_int(&mut out, year.abs() % 100, 2),
            Std::LongYear => push_int(&mut out, year, 4),
            Std::Month => out.push_str(&MONTHS[month][..3]),
            Std::LongMonth => out.push_str(MONTHS[month]),
            Std::NumMonth => push_int(&mut out, month as i64 + 1, 0),
            Std::ZeroMonth => push_int(&mut out, month as i64 + 1, 2),
            Std::WeekDay => {
                out.push_str(&DAYS[t.weekday().num_days_from_sunday() as usize][..3]);
            }
            Std::LongWeekDay => out.push_str(DAYS[t.weekday().num_days_from_sunday() as usize]),
            Std::Day => push_int(&mut out, day, 0),
            Std::UnderDay => {
                if day < 10 {
                    out.push(' ');
                }
                push_int(&mut out, day, 0);
            }
            Std::ZeroDay => push_int(&mut out, day, 2),
            Std::UnderYearDay => {
                let yday = i64::from(t.ordinal());
                if yday < 100 {
                    out.push(' ');
                    if yday < 10 {
                        out.push(' ');
                    }
                }
                push_int(&mut out, yday, 0);
            }
            Std::ZeroYearDay => push_int(&mut out, i64::from(t.ordinal()), 3),
            Std::Hour => push_int(&mut out, hour, 2),
            Std::Hour12 | Std::ZeroHour12 => {
                let hr = match hour % 12 {
                    0 => 12,
                    h => h,
                };
                push_int(&mut out, hr, if std == Std::Hour12 { 0 } else { 2 });
            }
            Std::Minute => push_int(&mut out, minute, 0),
            Std::ZeroMinute => push_int(&mut out, minute, 2),
            Std::Second => push_int(&mut out, second, 0),
            Std::ZeroSecond => push_int(&mut out, second, 2),
            Std::PM => out.push_str(if hour >= 12 { "PM" } else { "AM" }),
            Std::Pm => out.push_str(if hour >= 12 { "pm" } else { "am" }),
            Std::Tz => match abbreviation {
                Some(name) if !name.is_empty() => out.push_str(name),
                // The database names many zones by their offset (`-03`, `+0545`), which
                // chrono-tz gives as no abbreviation; Go reads the name from the database.
                _ => {
                    let zone = offset.abs();
                    out.push(if offset < 0 { '-' } else { '+' });
                    push_int(&mut out, zone / 3600, 2);
                    if zone % 3600 != 0 {
                        push_int(&mut out, zone % 3600 / 60, 2);
                    }
                    if zone % 60 != 0 {
                        push_int(&mut out, zone % 60, 2);
                    }
                }
            },
            Std::Fraction(sep, digits, trim) => {
                let nanos = format!("{:09}", t.nanosecond() % 1_000_000_000);
                let mut n = digits.min(9);
                if trim {
                    while n > 0 && nanos.as_bytes()[n - 1] == b'0' {
                        n -= 1;
                    }
                    if n == 0 {
                        continue;
                    }
                }
                out.push(char::from(sep));
                out.push_str(&nanos[..n]);
            }
            zone_std => push_zone(&mut out, zone_std, offset),
        }
    }
    out
}

/// The numeric zone elements (`-0700`, `Z07:00`, …) for an offset in seconds east of UTC.
fn push_zone(out: &mut String, std: Std, offset: i64) {
    use Std::*;
    let iso = matches!(
        std,
        Iso8601Tz | Iso8601ColonTz | Iso8601SecondsTz | Iso8601ShortTz | Iso8601ColonSecondsTz
    );
    if offset == 0 && iso {
        out.push('Z');
        return;
    }
    // As Go: the sign is the sign of the offset in whole minutes.
    let zone = offset / 60;
    out.push(if zone < 0 { '-' } else { '+' });
    let (zone, offset) = if zone < 0 {
        (-zone, -offset)
    } else {
        (zone, offset)
    };
    push_int(out, zone / 60, 2);
    if matches!(
        std,
        Iso8601ColonTz | NumColonTz | Iso8601ColonSecondsTz | NumColonSecondsTz
    ) {
        out.push(':');
    }
    if !matches!(std, NumShortTz | Iso8601ShortTz) {
        push_int(out, zone % 60, 2);
    }
    if matches!(
        std,
        Iso8601SecondsTz | NumSecondsTz | NumColonSecondsTz | Iso8601ColonSecondsTz
    ) {
        if matches!(std, NumColonSecondsTz | Iso8601ColonSecondsTz) {
            out.push(':');
        }
        push_int(out, offset % 60, 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format_at(ns: i64, zone: &str, layout: &str) -> String {
        let args = [Value::from(vec![
            Value::from(ns),
            Value::from(zone),
            Value::from(layout),
        ])];
        match time_format(&args).unwrap() {
            Value::String(s) => s.to_string(),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn layouts_and_zones_format_as_go_formats_them() {
        // Each expected text as OPA v1.20 printed it (2024-05-29T16:27:17.5Z).
        let ns = 1_717_000_037_500_000_000;
        for (zone, layout, expected) in [
            ("Europe/Paris", "MST", "CEST"),
            (
                "America/New_York",
                "Mon Jan 2 15:04:05 MST 2006",
                "Wed May 29 12:27:17 EDT 2024",
            ),
            ("Asia/Kathmandu", "-0700", "+0545"),
            (
                "UTC",
                "2006-01-02T15:04:05.000Z07:00",
                "2024-05-29T16:27:17.500Z",
            ),
            (
                "UTC",
                "2006-01-02T15:04:05.999Z07:00",
                "2024-05-29T16:27:17.5Z",
            ),
            ("Asia/Kathmandu", "Z07:00 -07 Z0700", "+05:45 +05 +0545"),
            (
                "UTC",
                "Monday January _2 3:4:5 PM .000000",
                "Wednesday May 29 4:27:17 PM .500000",
            ),
            ("", "", "2024-05-29T16:27:17.5Z"),
            ("Local", "MST", "UTC"),
        ] {
            assert_eq!(format_at(ns, zone, layout), expected, "{zone} {layout}");
        }
        let err = time_format(&[Value::from(vec![Value::from(0), Value::from("utc")])]);
        assert_eq!(
            err.unwrap_err().to_string(),
            "time.format: unknown time zone utc"
        );
    }
}
