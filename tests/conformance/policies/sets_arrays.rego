# Set operators and functions, array builtins.
package conformance.sets_arrays

import rego.v1

a := {x | some x in input.numbers}

b := {x | some x in input.other}

set_ops := {
	"union": a | b,
	"intersection": a & b,
	"difference": a - b,
	"union_fn": union({a, b}),
	"intersection_fn": intersection({a, b}),
}

arrays := {
	"concat": array.concat(input.numbers, input.other),
	"slice": array.slice(input.numbers, 1, 3),
	"reverse": array.reverse(input.numbers),
}

subset if a & b == b

first := input.numbers[0]

last := input.numbers[count(input.numbers) - 1]

flat := array.flatten([input.numbers, [input.other]])
