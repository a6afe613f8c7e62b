# default values, else chains, rule values and conflicts avoided by else.
package conformance.defaults_else

import rego.v1

default allow := false

allow if input.role == "admin"

allow if {
	input.role == "editor"
	input.action in {"read", "write"}
}

default level := "none"

level := "high" if {
	input.score >= 90
} else := "medium" if {
	input.score >= 50
} else := "low" if {
	input.score >= 0
}

# An else chain without a default: undefined when nothing matches.
bucket := "small" if input.size < 10
else := "large" if input.size >= 10

# A complete rule whose value depends on input; undefined when the body fails.
greeting := sprintf("hello %s", [input.user]) if is_string(input.user)
