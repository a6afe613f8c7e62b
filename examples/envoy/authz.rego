# Edge authorization for the Envoy example: public reads for everyone, the admin API for callers
# whose bearer JWT carries the admin role, nothing else. `input` is what the docket filter builds
# (docs/envoy.md): OPA-Envoy's request shape plus the JWT's (unverified) header and claims.
package envoy.authz

import rego.v1

default decision := {"allowed": false, "http_status": 403, "body": "denied by policy: not a public read and not an admin\n"}

http := input.attributes.request.http

decision := {"allowed": true} if public_read

decision := {"allowed": true} if {
	not public_read
	admin
}

public_read if {
	http.method in {"GET", "HEAD"}
	input.parsed_path[0] == "public"
}

admin if "admin" in object.get(input, ["jwt", "claims", "roles"], [])
