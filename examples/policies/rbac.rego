# Role-based access: users have roles, roles grant actions on resource types.
package rbac

import rego.v1

default allow := false

# Admins may do anything.
allow if "admin" in user_roles

# Otherwise some role of the user must grant the action on the resource type.
allow if {
	some role in user_roles
	some grant in data.rbac_data.role_grants[role]
	grant.action == input.action
	grant.type == input.resource.type
}

user_roles contains role if some role in data.rbac_data.user_roles[input.user]

# Why a request was denied, for the audit record.
# A request that names no user, or one without roles, comes from an unknown user. Written with
# object.get so a missing input.user is a plain value: OPA and regorus disagree on `not` over a
# reference whose key is undefined (docs/policy.md, "Known differences from OPA").
reasons contains "unknown user" if not data.rbac_data.user_roles[object.get(input, "user", null)]

reasons contains sprintf("no role of %s grants %s on %s", [input.user, input.action, input.resource.type]) if {
	data.rbac_data.user_roles[input.user]
	not allow
}
