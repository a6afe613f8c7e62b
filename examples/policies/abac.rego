# Attribute-based access: decisions from attributes of the subject, the resource and the
# request context (department, clearance, ownership, time of day, network).
package abac

import rego.v1

default allow := false

allow if {
	not denied
	permitted
}

# Owners may always read and write their own resources.
permitted if {
	input.action in {"read", "write"}
	input.resource.owner == input.subject.id
}

# Same department, sufficient clearance, working hours.
permitted if {
	input.subject.department == input.resource.department
	clearance[input.subject.clearance] >= clearance[input.resource.classification]
	input.action in data.abac_data.actions_by_level[input.resource.classification]
	working_hours
}

denied if input.subject.suspended == true

# Secret resources only from the office network; a request without an address is outside it.
denied if {
	input.resource.classification == "secret"
	not net.cidr_contains(data.abac_data.office_network, object.get(input, ["context", "ip"], "0.0.0.0"))
}

clearance := {"public": 0, "internal": 1, "confidential": 2, "secret": 3}

working_hours if {
	input.context.hour >= data.abac_data.hours.start
	input.context.hour < data.abac_data.hours.end
}
