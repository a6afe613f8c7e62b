package conformance.modules.b

import rego.v1

import data.conformance.modules.lib

count_actions := count(lib.allowed_actions)

ok if data.conformance.modules.a.allow
