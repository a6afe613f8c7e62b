# String builtins.
package conformance.strings

import rego.v1

t := input.text

results := {
	"upper": upper(t),
	"lower": lower(t),
	"trimmed": trim_space(t),
	"trim": trim(t, " -"),
	"trim_left": trim_left(t, "a"),
	"trim_right": trim_right(t, "!"),
	"trim_prefix": trim_prefix(t, "pre"),
	"trim_suffix": trim_suffix(t, "fix"),
	"split": split(t, " "),
	"replace": replace(t, "a", "A"),
	"replace_n": strings.replace_n({"a": "1", "é": "e"}, t),
	"contains": contains(t, "an"),
	"startswith": startswith(t, "a"),
	"endswith": endswith(t, "!"),
	"indexof": indexof(t, "a"),
	"indexof_n": indexof_n(t, "a"),
	"count": count(t),
	"reverse": strings.reverse(t),
	"substring": substring(t, 1, 3),
	"concat": concat("/", [t, "x"]),
	"any_prefix": strings.any_prefix_match(t, ["a", "b"]),
	"any_suffix": strings.any_suffix_match(t, ["!", "?"]),
	"strings_count": strings.count(t, "a"),
}

formatted := sprintf("%s has %d chars", [input.text, count(input.text)])

formatted_values := sprintf("%v|%v|%v", [input.text, input.n, input.flag])

formatted_number := sprintf("%d|%.2f|%x", [input.n, input.n, input.n])

int_formats := [format_int(input.n, 10), format_int(input.n, 16), format_int(input.n, 2)]

as_number := to_number(input.numeric_text)

upper_text := upper(input.text)
