# regex and glob builtins.
package conformance.regex_glob

import rego.v1

email_ok if regex.match(`^[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}$`, input.email)

digits := regex.find_n(`[0-9]+`, input.text, -1)

parts := regex.split(`[,;]\s*`, input.text)

replaced := regex.replace(input.text, `[aeiou]`, "*")

valid_pattern := regex.is_valid(input.pattern)

user_pattern_match if regex.match(input.pattern, input.text)

submatches := regex.find_all_string_submatch_n(`([a-z]+)=([0-9]+)`, input.text, -1)

templated if regex.template_match("urn:foo:{.*}", input.urn, "{", "}")

glob_path if glob.match("/api/*/items/**", ["/"], input.path)

glob_host if glob.match("*.example.com", ["."], input.host)

glob_default if glob.match("api.*", [], input.host)
