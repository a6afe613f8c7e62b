# Type checks, net.cidr, semver, uuid.
package conformance.types_net_semver

import rego.v1

types := [type_name(input.value), is_string(input.value), is_number(input.value), is_boolean(input.value), is_array(input.value), is_object(input.value), is_null(input.value), is_set(input.value)]

in_office if net.cidr_contains("10.1.0.0/16", input.ip)

valid_cidr := net.cidr_is_valid(input.cidr)

cidr_contains_cidr := net.cidr_contains(input.cidr, "10.1.2.0/24")

version_cmp := semver.compare(input.version, "1.2.3")

version_ok := semver.is_valid(input.version)

uuid_parsed := uuid.parse(input.uuid)
