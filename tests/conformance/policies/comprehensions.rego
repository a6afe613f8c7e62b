# Array, set and object comprehensions, nested, over input and data.
package conformance.comprehensions

import rego.v1

squares := [sq | some x in input.numbers; sq := x * x]

evens := {x | some x in input.numbers; x % 2 == 0}

index := {item.name: item.qty | some item in input.items}

nested := [[x, y] | some x in input.numbers; x > 2; some y in {"a", "b"}]

count_big := count([x | some x in input.numbers; x > 10])

grouped := {k: names |
	some item in input.items
	k := item.category
	names := [i.name | some i in input.items; i.category == k]
}
