package conformance.modules.lib

import rego.v1

normalize(s) := lower(trim_space(s))

is_known(user) if data.conformance_data.users[normalize(user)]

allowed_actions := {"read", "list", "watch"}

users := data.conformance_data.users
