# time and units builtins.
package conformance.time_units

import rego.v1

ts := time.parse_rfc3339_ns(input.timestamp)

parts := {
	"date": time.date(ts),
	"clock": time.clock(ts),
	"weekday": time.weekday(ts),
}

later := time.add_date(ts, 0, 1, 1)

diff := time.diff(ts, 1700000000000000000)

duration := time.parse_duration_ns(input.duration)

within_hour if duration <= 3600000000000

parsed_layout := time.parse_ns("2006-01-02", input.day)

formatted := time.format(ts)

size := units.parse_bytes(input.size)

quantity := units.parse(input.quantity)

big_enough if size >= 1048576
