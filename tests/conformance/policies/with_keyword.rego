# with: replacing input, data and functions.
package conformance.with_keyword

import rego.v1

allow if input.user == "alice"

allow_as_alice if allow with input.user as "alice"

allow_as_input if allow with input as {"user": input.other}

threshold := data.conformance_data.limits.max

over_limit if input.amount > threshold

over_small_limit if over_limit with data.conformance_data.limits.max as 5

fake_upper(s) := "FAKE"

shout := s if {
	s := upper(input.user) with upper as fake_upper
}

now_is_fixed := t if {
	t := time.now_ns() with time.now_ns as 1700000000000000000
}
