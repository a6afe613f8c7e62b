# time.format over Go layouts and IANA zones (docket's own implementation, issue 23 class 6).
package conformance.time_format

import rego.v1

formatted := time.format([input.ns, input.zone, input.layout])

default_layout := time.format([input.ns, input.zone])

plain := time.format(input.ns)
