# Logging rules: what the audit log keeps of each decision (docs/policy.md, "Logging rules").
# They are policy like any other: reviewed, versioned in every entry's policy version, and each
# change to them is itself an entry of the log.
package system.log

import rego.v1

# A request's network address is personal data: the sealed entry keeps a salted commitment in
# its place, which proves the address to whoever holds it and its salt, and to no one else.
mask contains "/input/context/ip" if input.input.context.ip

# Liveness probes are noise: not logged one by one, but counted in signed tally entries.
drop if input.path == "health/live"

# Denials are evidence and are kept for a year; everything else for 90 days.
default retention := "90d"

retention := "8760h" if input.result == false
