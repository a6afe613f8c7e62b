//! `net.cidr_intersects`, `net.cidr_contains_matches` and `net.cidr_merge`, which regorus lacks,
//! as OPA computes them (`topdown/cidr.go` and `internal/cidr/merge`, over Go's `net` package).
//!
//! Addresses are held as Go holds them for comparison: 16 bytes, an IPv4 address as its
//! IPv4-mapped IPv6 form (`::ffff:a.b.c.d`), here a `u128`.

use anyhow::{Result, anyhow, bail};
use regorus::Value;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `::ffff:0:0/96`, where IPv4 addresses live in the 16-byte form.
const V4_MAPPED: u128 = 0xffff_u128 << 32;

/// A network as Go's `net.ParseCIDR` gives it: masked address, prefix within its family.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Net {
    v4: bool,
    /// The 16-byte form of the network's first address.
    first: u128,
    prefix: u32,
}

impl Net {
    fn bits(self) -> u32 {
        if self.v4 { 32 } else { 128 }
    }

    /// The network's last address, 16-byte form.
    fn last(self) -> u128 {
        let host_bits = self.bits() - self.prefix;
        let host = if host_bits == 128 {
            u128::MAX
        } else {
            (1_u128 << host_bits) - 1
        };
        self.first | host
    }

    /// Go's `IPNet.Contains`: an address of the other family is never contained.
    fn contains(self, (v4, addr): (bool, u128)) -> bool {
        v4 == self.v4 && addr >= self.first && addr <= self.last()
    }
}

/// Go's `net.ParseIP` (no zone): `(is IPv4, 16-byte form)`. An IPv4-mapped IPv6 address is
/// IPv4, as Go's `To4` makes it.
fn parse_ip(text: &str) -> Option<(bool, u128)> {
    match text.parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) => Some((true, V4_MAPPED | u128::from(u32::from(v4)))),
        IpAddr::V6(v6) => {
            let n = u128::from(v6);
            Some((n >> 32 == 0xffff, n))
        }
    }
}

/// Go's `net.ParseCIDR`: an address, `/`, and a prefix of decimal digits within its family.
fn parse_cidr(text: &str) -> Option<Net> {
    let (ip, prefix) = text.split_once('/')?;
    if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let prefix: u32 = prefix.parse().ok()?;
    let (v4, addr) = match ip.parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) => (true, V4_MAPPED | u128::from(u32::from(v4))),
        IpAddr::V6(v6) => (false, u128::from(v6)),
    };
    let bits = if v4 { 32 } else { 128 };
    if prefix > bits {
        return None;
    }
    let host_bits = bits - prefix;
    let mask = if host_bits == 128 {
        0
    } else {
        !((1_u128 << host_bits) - 1)
    };
    let first = addr & mask;
    if !v4 && prefix >= 96 && first >> 32 == 0xffff {
        // Go reads an IPv4-mapped network (`::ffff:10.0.0.0/104`) as the IPv4 network it maps
        // (`10.0.0.0/8`): `To4` of its address, the last four bytes of its mask.
        return Some(Net {
            v4: true,
            first,
            prefix: prefix - 96,
        });
    }
    Some(Net { v4, first, prefix })
}

fn string_operand<'a>(name: &str, pos: usize, v: &'a Value) -> Result<&'a str> {
    match v {
        Value::String(s) => Ok(s),
        other => bail!(
            "{name}: operand {pos} must be string but got {}",
            super::type_name(other)
        ),
    }
}

fn net_operand(name: &str, pos: usize, v: &Value) -> Result<Net> {
    let text = string_operand(name, pos, v)?;
    parse_cidr(text).ok_or_else(|| anyhow!("{name}: invalid CIDR address: {text}"))
}

pub(super) fn cidr_intersects(args: &[Value]) -> Result<Value> {
    let name = "net.cidr_intersects";
    let a = net_operand(name, 1, &args[0])?;
    let b = net_operand(name, 2, &args[1])?;
    Ok(Value::from(
        a.contains((b.v4, b.first)) || b.contains((a.v4, a.first)),
    ))
}

/// OPA's `net.cidr_contains`: `b` an address, else a network wholly inside `a`.
fn cidr_contains(name: &str, a: &Value, b: &Value) -> Result<bool> {
    let net = net_operand(name, 1, a)?;
    let text = string_operand(name, 1, b)?;
    if let Some(ip) = parse_ip(text) {
        return Ok(net.contains(ip));
    }
    let inner = parse_cidr(text).ok_or_else(|| {
        anyhow!("{name}: not a valid textual representation of an IP address or CIDR: {text}")
    })?;
    Ok(net.contains((inner.v4, inner.first)) && net.contains((inner.v4, inner.last())))
}

/// The (network, key) pairs of one operand of `net.cidr_contains_matches`: a string is its
/// own key; an array's elements are keyed by index, a set's by themselves, an object's values
/// by their keys; an element is a string or a non-empty array whose first element is used.
fn matches_operand(pos: usize, v: &Value) -> Result<Vec<(Value, Value)>> {
    let element = |x: &Value| match x {
        Value::String(_) => Ok(x.clone()),
        Value::Array(a) if !a.is_empty() => Ok(a[0].clone()),
        _ => Err(anyhow!(
            "net.cidr_contains_matches: operand {pos}: element must be string or non-empty array"
        )),
    };
    Ok(match v {
        Value::String(_) => vec![(v.clone(), v.clone())],
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, x)| Ok((element(x)?, Value::from(i))))
            .collect::<Result<_>>()?,
        Value::Set(items) => items
            .iter()
            .map(|x| Ok((element(x)?, x.clone())))
            .collect::<Result<_>>()?,
        Value::Object(fields) => fields
            .iter()
            .map(|(k, x)| Ok((element(x)?, k.clone())))
            .collect::<Result<_>>()?,
        // OPA iterates nothing over any other value.
        _ => Vec::new(),
    })
}

pub(super) fn cidr_contains_matches(args: &[Value]) -> Result<Value> {
    let name = "net.cidr_contains_matches";
    let mut result = BTreeSet::new();
    for (cidr, key) in matches_operand(1, &args[0])? {
        for (other, other_key) in matches_operand(2, &args[1])? {
            if cidr_contains(name, &cidr, &other)? {
                result.insert(Value::from(vec![key.clone(), other_key]));
            }
        }
    }
    Ok(Value::from(result))
}

/// One input of `net.cidr_merge`: its address range, and the text Go's `IPNet.String` gives
/// the network it was read as (kept when the range merges with no other).
struct Range {
    first: u128,
    last: u128,
    text: Option<String>,
}

fn merge_input(v: &Value) -> Result<Range> {
    let name = "net.cidr_merge";
    let Value::String(text) = v else {
        bail!("{name}: element must be string");
    };
    if let Some((v4, addr)) = parse_ip(text) {
        if !v4 {
            bail!("{name}: IPv6 invalid: needs prefix length");
        }
        // Go's `DefaultMask`: the address's class (A: /8, B: /16, C and above: /24), and
        // `IPNet.String` writes the address itself, unmasked (`10.1.2.3/8`).
        let octet = (addr >> 24) as u8;
        let prefix = match octet {
            0..0x80 => 8,
            0x80..0xc0 => 16,
            _ => 24,
        };
        let net = parse_cidr(&format!("{}/{prefix}", Ipv4Addr::from(addr as u32)))
            .ok_or_else(|| anyhow!("{name}: invalid CIDR address: {text}"))?;
        return Ok(Range {
            first: net.first,
            last: net.last(),
            text: Some(format!("{}/{prefix}", Ipv4Addr::from(addr as u32))),
        });
    }
    let net = parse_cidr(text).ok_or_else(|| anyhow!("{name}: invalid CIDR address: {text}"))?;
    Ok(Range {
        first: net.first,
        last: net.last(),
        text: Some(cidr_text(net.first, net.prefix, net.v4)),
    })
}

fn cidr_text(first: u128, prefix: u32, v4: bool) -> String {
    if v4 {
        format!("{}/{prefix}", Ipv4Addr::from(first as u32))
    } else {
        format!("{}/{prefix}", Ipv6Addr::from(first))
    }
}

/// Go's `GetPreviousIP`: one less, but never below the family's zero.
fn previous(ip: u128) -> u128 {
    if ip == 0 || ip == V4_MAPPED {
        ip
    } else {
        ip - 1
    }
}

/// The fewest networks that cover `first..=last` exactly (IPv4 when both ends are).
fn range_to_cidrs(mut first: u128, last: u128, out: &mut BTreeSet<Value>) {
    let v4 = first >> 32 == 0xffff && last >> 32 == 0xffff;
    let bits = if v4 { 32 } else { 128 };
    // The last address of the block of 2^size_bits addresses starting at `first`.
    let block_end = |first: u128, size_bits: u32| match size_bits {
        128 => (first == 0).then_some(u128::MAX),
        _ => first.checked_add((1_u128 << size_bits) - 1),
    };
    loop {
        // The largest block aligned at `first` that does not pass `last`.
        let mut size_bits = first.trailing_zeros().min(bits);
        while size_bits > 0 && block_end(first, size_bits).is_none_or(|end| end > last) {
            size_bits -= 1;
        }
        out.insert(Value::from(cidr_text(first, bits - size_bits, v4)));
        let end = block_end(first, size_bits).unwrap_or(u128::MAX);
        if end >= last {
            break;
        }
        first = end + 1;
    }
}

pub(super) fn cidr_merge(args: &[Value]) -> Result<Value> {
    let mut ranges: Vec<Range> = match &args[0] {
        Value::Array(items) => items.iter().map(merge_input).collect::<Result<_>>()?,
        Value::Set(items) => items.iter().map(merge_input).collect::<Result<_>>()?,
        _ => bail!("net.cidr_merge: operand must be an array"),
    };
    // As OPA: sorted by last address, then first; each merged into the one before it when it
    // starts at most one address after that one's end.
    ranges.sort_by_key(|r| (r.last, r.first));
    let mut i = ranges.len();
    while i > 1 {
        i -= 1;
        if previous(ranges[i].first) <= ranges[i - 1].last {
            let current = ranges.remove(i);
            let before = &mut ranges[i - 1];
            before.first = before.first.min(current.first);
            before.last = current.last;
            before.text = None;
        }
    }
    let mut out = BTreeSet::new();
    for r in ranges {
        match r.text {
            Some(text) => {
                out.insert(Value::from(text));
            }
            None => range_to_cidrs(r.first, r.last, &mut out),
        }
    }
    Ok(Value::from(out))
}
