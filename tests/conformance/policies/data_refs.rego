# References into data: nested lookups, iteration over data, virtual and base documents mixed.
package conformance.data_refs

import rego.v1

user := data.conformance_data.users[input.user]

roles := user.roles

can if {
	some role in roles
	some grant in data.conformance_data.grants[role]
	grant == input.action
}

managers := {name | some name, u in data.conformance_data.users; "manager" in u.roles}

team_size := count([n | some n, u in data.conformance_data.users; u.team == user.team])

dynamic := data.conformance_data[input.key]
