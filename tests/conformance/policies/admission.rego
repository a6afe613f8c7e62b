# A Kubernetes-style admission policy over a pod spec.
package conformance.admission

import rego.v1

containers := input.spec.containers

deny contains msg if {
	some c in containers
	not startswith(c.image, "registry.example.com/")
	msg := sprintf("container %q uses an image from an untrusted registry", [c.name])
}

deny contains msg if {
	some c in containers
	c.securityContext.privileged
	msg := sprintf("container %q is privileged", [c.name])
}

deny contains msg if {
	some c in containers
	endswith(c.image, ":latest")
	msg := sprintf("container %q uses the latest tag", [c.name])
}

deny contains "missing team label" if not input.metadata.labels.team

memory_limits := {c.name: units.parse_bytes(c.resources.limits.memory) | some c in containers}

allowed if count(deny) == 0
