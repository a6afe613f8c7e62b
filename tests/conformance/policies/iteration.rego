# some, every, some-in with keys, negation over collections.
package conformance.iteration

import rego.v1

all_positive if {
	every x in input.numbers {
		x > 0
	}
}

all_small if {
	every i, x in input.numbers {
		x < 100 + i
	}
}

has_negative if {
	some x in input.numbers
	x < 0
}

index_of_max := i if {
	some i, x in input.numbers
	every y in input.numbers {
		x >= y
	}
}

no_zero if not 0 in input.numbers

pairs contains [i, j] if {
	some i, x in input.numbers
	some j, y in input.numbers
	i < j
	x == y
}

old_style if {
	some i
	input.numbers[i] == 7
}
