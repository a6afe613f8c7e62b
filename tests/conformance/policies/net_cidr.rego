# net.cidr_intersects, net.cidr_contains_matches, net.cidr_merge (docket's own, issue 23).
package conformance.net_cidr

import rego.v1

intersects := net.cidr_intersects(input.a, input.b)

matches := net.cidr_contains_matches(input.x, input.y)

merged := net.cidr_merge(input.list)

merged_set := net.cidr_merge({c | some c in input.list})

allowed if {
	count(net.cidr_contains_matches(input.x, input.y)) > 0
}
