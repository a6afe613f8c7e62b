# Arithmetic and number builtins, on integers, fractions, large and negative numbers.
package conformance.numbers

import rego.v1

n := input.n

m := input.m

arithmetic := {
	"sum": n + m,
	"diff": n - m,
	"product": n * m,
	"negated": 0 - n,
}

quotient := n / m

remainder := n % m

rounding := [round(n), ceil(n), floor(n), abs(n)]

comparisons := [n < m, n <= m, n == m, n != m, n > m, n >= m]

# Bounded: a range up to 2^53 would exhaust memory in any engine.
range := numbers.range(0, m) if m < 64

stepped := numbers.range_step(0, 20, 5)

bitwise := [bits.and(n, m), bits.or(n, m), bits.xor(n, m), bits.lsh(n, 2), bits.rsh(n, 1), bits.negate(n)]

big := n * 1000000000

tenth := (n * 0.1) + 0.2
