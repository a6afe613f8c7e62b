# Several modules and packages: imports, aliases, cross-package rule and function references.
package conformance.modules.a

import rego.v1

import data.conformance.modules.lib
import data.conformance.modules.lib.normalize as norm

allow if {
	lib.is_known(input.user)
	norm(input.action) in lib.allowed_actions
}

user_info := lib.users[norm(input.user)]

doc := data.conformance.modules.b
