package app

import rego.v1

default allow := false

allow if input.user == "alice"

limit := 10
