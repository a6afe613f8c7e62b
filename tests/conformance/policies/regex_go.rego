# Go's regular-expression syntax (RE2) on patterns a user supplies: ASCII classes, literal
# brackets in classes, \Q…\E, octal and escaped punctuation, empty matches.
package conformance.regex_go

import rego.v1

matched if regex.match(input.pattern, input.text)

found := regex.find_n(input.pattern, input.text, -1)

first_two := regex.find_n(input.pattern, input.text, 2)

groups := regex.find_all_string_submatch_n(input.pattern, input.text, -1)

split := regex.split(input.pattern, input.text)

replaced := regex.replace(input.text, input.pattern, "<$1>")

valid := regex.is_valid(input.pattern)
