# Object builtins.
package conformance.objects

import rego.v1

o := input.attrs

results := {
	"get": object.get(o, "team", "none"),
	"get_path": object.get(o, ["meta", "region"], "unknown"),
	"keys": object.keys(o),
	"remove": object.remove(o, ["secret"]),
	"filter": object.filter(o, ["team", "level"]),
	"union": object.union(o, {"extra": true}),
	"union_n": object.union_n([o, {"team": "override"}]),
	"subset": object.subset(o, {"team": "blue"}),
}

json_filtered := json.filter(o, ["meta/region", "team"])

json_removed := json.remove(o, ["meta"])

walked := [p | walk(o, [p, v]); is_string(v)]

has_team if o.team

team_or_default := object.get(o, "team", "default")
