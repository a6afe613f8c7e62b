package app_test

import rego.v1

import data.app

test_alice_allowed if app.allow with input as {"user": "alice"}

test_bob_denied if not app.allow with input as {"user": "bob"}

test_wrong if app.allow with input as {"user": "bob"}

test_limit if app.limit == 10

test_error if count(input.n) > 0 with input as {"n": 5}

test_value := 7

todo_test_later if false

helper(x) := x + 1

test_uses_helper if helper(1) == 2
