# Partial set and object rules, multi-value rules, and reading them back.
package conformance.partial_sets

import rego.v1

violations contains msg if {
	some item in input.items
	item.qty > 10
	msg := sprintf("too many %v", [item.name])
}

violations contains msg if {
	some item in input.items
	not item.price
	msg := sprintf("no price for %v", [item.name])
}

violations contains "no user" if not input.user

prices[name] := price if {
	some item in input.items
	name := item.name
	price := item.price
}

by_qty[item.qty] contains item.name if some item in input.items

allow if count(violations) == 0

names := {n | some n, _ in prices}
