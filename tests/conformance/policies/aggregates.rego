# Aggregates over arrays and sets.
package conformance.aggregates

import rego.v1

xs := input.numbers

stats := {
	"count": count(xs),
	"sum": sum(xs),
	"product": product(xs),
	"max": max(xs),
	"min": min(xs),
	"sorted": sort(xs),
}

set_stats := [count({x | some x in xs}), sum({x | some x in xs})]

names_sorted := sort([i.name | some i in input.items])

any_big if max(xs) > 50

average := sum(xs) / count(xs)
