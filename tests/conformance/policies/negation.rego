# not over rules, refs, calls and comparisons, including undefined operands.
package conformance.negation

import rego.v1

blocked if input.user in data.conformance_data.blocklist

allow if not blocked

not_admin if not input.role == "admin"

no_role if not input.role

not_prefixed if not startswith(input.user, "svc-")

outside if not net.cidr_contains("10.0.0.0/8", input.ip)

unknown_user if not data.conformance_data.users[input.user]

not_member if not input.role in {"admin", "editor"}
