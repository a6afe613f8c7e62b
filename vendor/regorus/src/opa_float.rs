// Copyright (c) Microsoft Corporation.
// Licensed under the MIT License.

//! docket patch: arithmetic on numbers that are not both integers, as OPA does it.
//!
//! OPA computes `+`, `-`, `*` and `/` on such numbers with Go's `big.Float` at 64 bits of
//! mantissa, rounding to nearest even, and keeps the result as the shortest decimal that reads
//! back to the same 64-bit value (`Text('g', -1)`), so `0.1 * 3` is `0.3`. regorus computed in
//! `f64`, where it is `0.30000000000000004`. Here each operand is read as the decimal it stands
//! for (an integer exactly; an `f64` as the shortest decimal that reads back to it, which for a
//! literal of up to 15 significant digits is the literal as written), the operation is done
//! exactly and rounded to 64 bits as Go rounds, the shortest decimal is found by Go's algorithm
//! (`roundShortest`, math/big/ftoa.go), and the answer is that decimal's text, which regorus
//! reads as OPA reads it: an integer exactly (`1e+20` is 10^20, and later operations on it are
//! exact), a fraction as its nearest `f64`.

use alloc::string::String;
use alloc::vec::Vec;
use core::cmp::Ordering;

use num_bigint::{BigInt, BigUint, Sign};
use num_traits::{One, Zero};

/// Go's `big.Float` precision for a number OPA parses (`SetString` with precision 0), and so
/// for the result of an operation on two of them.
const PREC: u64 = 64;

/// The precision of `big.NewFloat(1)`, OPA's accumulator in `product`.
const PRODUCT_PREC: u64 = 53;

/// Bits a quotient is computed to before it is rounded to `PREC` (two more: the rounding bit
/// and one to spare; a remainder is kept as the sticky bit).
const QUOTIENT_BITS: u64 = PREC + 2;

#[derive(Clone, Copy, Debug)]
pub enum Op {
    Add,
    Sub,
    Mul,
    Quo,
}

/// `(-1)^neg × digits × 10^exp10`: an operand as OPA holds it.
#[derive(Debug)]
pub struct Decimal {
    pub neg: bool,
    pub digits: BigUint,
    pub exp10: i64,
}

impl Decimal {
    /// The decimal OPA most likely holds for an `f64` (finite): the shortest decimal that reads
    /// back to it when that has at most 15 significant digits, which is the literal as written
    /// (`0.1`) or a result OPA also wrote that short; otherwise the `f64`'s exact value, since
    /// the `f64` is then the nearest one to a longer decimal of OPA's
    /// (`2 / 1.1` = `1.81818181818181818182`), which its exact value approximates better than
    /// its 17-digit shortest spelling.
    pub fn from_f64(value: f64) -> Option<Decimal> {
        // `{:e}` writes Rust's shortest round-trip digits: `1e-1`, `3.0000000000000004e-1`.
        let text = alloc::format!("{:e}", value.abs());
        let (mantissa, exponent) = text.split_once('e')?;
        let exponent: i64 = exponent.parse().ok()?;
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let neg = value.is_sign_negative();
        if int.len().checked_add(frac.len())? > 15 {
            return Some(Self::exact(neg, value.abs()));
        }
        let digits: BigUint = alloc::format!("{int}{frac}").parse().ok()?;
        let frac_len = i64::try_from(frac.len()).ok()?;
        Some(Decimal {
            neg,
            digits,
            exp10: exponent.checked_sub(frac_len)?,
        })
    }

    /// The exact value of a finite, non-negative `f64` as a decimal.
    fn exact(neg: bool, value: f64) -> Decimal {
        let bits = value.to_bits();
        let biased = i64::try_from((bits >> 52) & 0x7ff).unwrap_or(0);
        let fraction = bits & ((1_u64 << 52) - 1);
        // value = mant × 2^e
        let (mant, e) = if biased == 0 {
            (fraction, -1074_i64)
        } else {
            (fraction | (1_u64 << 52), biased - 1075)
        };
        let mant = BigUint::from(mant);
        if e >= 0 {
            Decimal {
                neg,
                digits: mant << u64::try_from(e).unwrap_or(0),
                exp10: 0,
            }
        } else {
            // m / 2^k = m × 5^k / 10^k
            let k = e.unsigned_abs();
            Decimal {
                neg,
                digits: mant * BigUint::from(5_u32).pow(u32::try_from(k).unwrap_or(0)),
                exp10: e,
            }
        }
    }

    pub fn from_integer(value: &BigInt) -> Decimal {
        Decimal {
            neg: value.sign() == Sign::Minus,
            digits: value.magnitude().clone(),
            exp10: 0,
        }
    }
}

/// `(-1)^neg × mant × 2^exp` with `mant` below `2^prec`: a `big.Float` of precision `prec`.
#[derive(Debug)]
struct Binary {
    neg: bool,
    mant: BigUint,
    exp: i64,
    prec: u64,
}

/// `m × 2^e` (plus a nonzero remainder below the last bit of `m` when `sticky`), rounded to
/// `prec` bits, to nearest, ties to even.
fn round(neg: bool, m: BigUint, e: i64, sticky: bool, prec: u64) -> Option<Binary> {
    let bits = m.bits();
    if bits <= prec {
        // Exact (every caller with a remainder computed more bits than prec).
        return Some(Binary {
            neg,
            mant: m,
            exp: e,
            prec,
        });
    }
    let shift = bits.checked_sub(prec)?;
    let keep = &m >> shift;
    let dropped = &m - (&keep << shift);
    let half = BigUint::one() << shift.checked_sub(1)?;
    let up = match dropped.cmp(&half) {
        Ordering::Greater => true,
        Ordering::Less => false,
        Ordering::Equal => sticky || keep.bit(0),
    };
    let mut mant = keep;
    let mut exp = e.checked_add(i64::try_from(shift).ok()?)?;
    if up {
        mant += 1_u32;
        if mant.bits() > prec {
            mant >>= 1_u32;
            exp = exp.checked_add(1)?;
        }
    }
    Some(Binary {
        neg,
        mant,
        exp,
        prec,
    })
}

/// The decimal, rounded to 64 bits as `big.Float.SetString` rounds it.
fn to_binary(d: &Decimal) -> Option<Binary> {
    if d.digits.is_zero() {
        return Some(Binary {
            neg: d.neg,
            mant: BigUint::zero(),
            exp: 0,
            prec: PREC,
        });
    }
    if d.exp10 >= 0 {
        let m = &d.digits * BigUint::from(10_u32).pow(u32::try_from(d.exp10).ok()?);
        return round(d.neg, m, 0, false, PREC);
    }
    // digits / 10^j = digits / 5^j × 2^-j
    let j = d.exp10.checked_neg()?;
    let den = BigUint::from(5_u32).pow(u32::try_from(j).ok()?);
    let (q, r, s) = quotient(&d.digits, &den)?;
    round(d.neg, q, j.checked_add(s)?.checked_neg()?, !r.is_zero(), PREC)
}

/// `num / den` to at least `QUOTIENT_BITS` bits: `(q, r, s)` with `num × 2^s = q × den + r`.
fn quotient(num: &BigUint, den: &BigUint) -> Option<(BigUint, BigUint, i64)> {
    let s = QUOTIENT_BITS
        .checked_add(den.bits())?
        .saturating_sub(num.bits());
    let shifted = num << s;
    let q = &shifted / den;
    let r = shifted - &q * den;
    Some((q, r, i64::try_from(s).ok()?))
}

fn signed(b: &Binary) -> BigInt {
    BigInt::from_biguint(if b.neg { Sign::Minus } else { Sign::Plus }, b.mant.clone())
}

/// `a op b` rounded to `prec` bits; `None` for a zero divisor.
fn apply(op: Op, a: &Binary, b: &Binary, prec: u64) -> Option<Binary> {
    Some(match op {
        Op::Add | Op::Sub => {
            let e = a.exp.min(b.exp);
            let x = signed(a) << u64::try_from(a.exp.checked_sub(e)?).ok()?;
            let y = signed(b) << u64::try_from(b.exp.checked_sub(e)?).ok()?;
            let sum = match op {
                Op::Sub => x - y,
                _ => x + y,
            };
            let neg = sum.sign() == Sign::Minus;
            round(neg, sum.magnitude().clone(), e, false, prec)?
        }
        Op::Mul => round(
            a.neg != b.neg,
            &a.mant * &b.mant,
            a.exp.checked_add(b.exp)?,
            false,
            prec,
        )?,
        Op::Quo => {
            if b.mant.is_zero() {
                return None;
            }
            let (q, r, s) = quotient(&a.mant, &b.mant)?;
            round(
                a.neg != b.neg,
                q,
                a.exp.checked_sub(b.exp)?.checked_sub(s)?,
                !r.is_zero(),
                prec,
            )?
        }
    })
}

/// Go's `decimal`: digits without trailing zeros, the value being `0.mant × 10^exp`.
#[derive(Debug)]
struct GoDecimal {
    mant: Vec<u8>,
    exp: i64,
}

impl GoDecimal {
    /// `m × 2^shift`, exactly (math/big/decimal.go `init`).
    fn new(m: &BigUint, shift: i64) -> Option<GoDecimal> {
        if m.is_zero() {
            return Some(GoDecimal {
                mant: Vec::new(),
                exp: 0,
            });
        }
        let (n, point) = if shift >= 0 {
            (m << u64::try_from(shift).ok()?, 0_i64)
        } else {
            // m / 2^k = m × 5^k / 10^k
            let k = shift.checked_neg()?;
            (m * BigUint::from(5_u32).pow(u32::try_from(k).ok()?), k)
        };
        let mut mant = n.to_str_radix(10).into_bytes();
        let exp = i64::try_from(mant.len()).ok()?.checked_sub(point)?;
        while mant.last() == Some(&b'0') {
            mant.pop();
        }
        Some(GoDecimal { mant, exp })
    }

    fn at(&self, i: usize) -> u8 {
        self.mant.get(i).copied().unwrap_or(b'0')
    }

    fn round_down(&mut self, n: usize) {
        if n >= self.mant.len() {
            return;
        }
        self.mant.truncate(n);
        while self.mant.last() == Some(&b'0') {
            self.mant.pop();
        }
        if self.mant.is_empty() {
            self.exp = 0;
        }
    }

    fn round_up(&mut self, n: usize) -> Option<()> {
        if n >= self.mant.len() {
            return Some(());
        }
        let mut n = n;
        while n > 0 && self.mant.get(n.checked_sub(1)?).is_some_and(|&d| d >= b'9') {
            n = n.checked_sub(1)?;
        }
        if n == 0 {
            self.mant.truncate(1);
            *self.mant.first_mut()? = b'1';
            self.exp = self.exp.checked_add(1)?;
            return Some(());
        }
        *self.mant.get_mut(n.checked_sub(1)?)? += 1;
        self.mant.truncate(n);
        Some(())
    }

    fn round(&mut self, n: usize) -> Option<()> {
        if n >= self.mant.len() {
            return Some(());
        }
        let digit = *self.mant.get(n)?;
        let up = if digit == b'5' && n.checked_add(1)? == self.mant.len() {
            // Exactly halfway: to even.
            n > 0 && self.mant.get(n.checked_sub(1)?).is_some_and(|d| (d - b'0') & 1 == 1)
        } else {
            digit >= b'5'
        };
        if up {
            self.round_up(n)
        } else {
            self.round_down(n);
            Some(())
        }
    }
}

/// The shortest decimal that reads back to `x` at its precision (math/big/ftoa.go
/// `roundShortest`).
fn shortest(x: &Binary) -> Option<GoDecimal> {
    let mut d = GoDecimal::new(&x.mant, x.exp)?;
    if d.mant.is_empty() {
        return Some(d);
    }
    // mant × 2^exp with PREC + 1 bits, its last bit half an ulp.
    let bits = i64::try_from(x.mant.bits()).ok()?;
    let s = bits.checked_sub(i64::try_from(x.prec.checked_add(1)?).ok()?)?;
    let mant = if s < 0 {
        &x.mant << u64::try_from(s.checked_neg()?).ok()?
    } else {
        &x.mant >> u64::try_from(s).ok()?
    };
    let exp = x.exp.checked_add(s)?;
    let lower = GoDecimal::new(&(&mant - 1_u32), exp)?;
    let upper = GoDecimal::new(&(&mant + 1_u32), exp)?;
    let inclusive = !mant.bit(1);
    for i in 0..d.mant.len() {
        let m = *d.mant.get(i)?;
        let l = lower.at(i);
        let u = upper.at(i);
        let last_of_lower = i.checked_add(1)? == lower.mant.len();
        let before_last_of_upper = i.checked_add(1)? < upper.mant.len();
        let ok_down = l != m || inclusive && last_of_lower;
        let ok_up = m != u && (inclusive || m.checked_add(1)? < u || before_last_of_upper);
        let n = i.checked_add(1)?;
        match (ok_down, ok_up) {
            (true, true) => return d.round(n).map(|_| d),
            (true, false) => {
                d.round_down(n);
                return Some(d);
            }
            (false, true) => return d.round_up(n).map(|_| d),
            (false, false) => {}
        }
    }
    Some(d)
}

/// `a op b` as OPA computes it: the text of OPA's decimal; `None` for a zero divisor.
pub fn arithmetic(op: Op, a: &Decimal, b: &Decimal) -> Option<String> {
    text(&apply(op, &to_binary(a)?, &to_binary(b)?, PREC)?)
}

/// OPA's `sum` of numbers that are not all integers: a `big.Float` accumulator of precision
/// 64 (`new(big.Float)` takes its operands' precision).
pub fn sum(items: &[Decimal]) -> Option<String> {
    accumulate(Op::Add, items, BigUint::zero(), PREC)
}

/// OPA's `product` of numbers that are not all integers: `big.NewFloat(1)`, whose precision
/// is 53, multiplied in place by each number read at 64 bits.
pub fn product(items: &[Decimal]) -> Option<String> {
    accumulate(Op::Mul, items, BigUint::one(), PRODUCT_PREC)
}

fn accumulate(op: Op, items: &[Decimal], start: BigUint, prec: u64) -> Option<String> {
    let mut acc = Binary {
        neg: false,
        mant: start,
        exp: 0,
        prec,
    };
    for item in items {
        acc = apply(op, &acc, &to_binary(item)?, prec)?;
    }
    text(&acc)
}

/// The shortest decimal of `x`, as `0.<digits>e<exponent>`.
fn text(x: &Binary) -> Option<String> {
    if x.mant.is_zero() {
        return Some(String::from("0"));
    }
    let d = shortest(x)?;
    let mut text = String::with_capacity(d.mant.len().checked_add(24)?);
    if x.neg {
        text.push('-');
    }
    text.push_str("0.");
    text.push_str(core::str::from_utf8(&d.mant).ok()?);
    text.push_str(&alloc::format!("e{}", d.exp));
    Some(text)
}
