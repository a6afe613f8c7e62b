# A realistic HTTP API authorization policy: path parsing, methods, tokens' claims as input.
package conformance.http_api

import rego.v1

default allow := false

path := split(trim_prefix(input.path, "/"), "/")

allow if {
	input.method == "GET"
	path[0] == "public"
}

allow if {
	input.method in {"GET", "HEAD"}
	path == ["users", input.claims.sub]
}

allow if {
	"admin" in input.claims.groups
	not input.method == "DELETE"
}

allow if {
	input.method == "DELETE"
	"admin" in input.claims.groups
	input.claims.mfa == true
}

reasons contains "not authenticated" if not input.claims.sub

reasons contains "write outside own area" if {
	input.method in {"POST", "PUT", "PATCH"}
	path[0] == "users"
	path[1] != input.claims.sub
}

decision := {"allow": allow, "reasons": reasons}
