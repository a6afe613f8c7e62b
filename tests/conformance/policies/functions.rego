# User-defined functions: several bodies, default-free partial functions, recursion-free helpers,
# functions calling functions, and functions with else.
package conformance.functions

import rego.v1

double(x) := x * 2

clamp(x, lo, hi) := lo if x < lo
else := hi if x > hi
else := x

label(n) := "negative" if n < 0

label(n) := "zero" if n == 0

label(n) := "positive" if n > 0

is_privileged(user) if user.role in {"admin", "root"}

is_privileged(user) if user.sudo == true

total(items) := sum([p | some item in items; p := item.price * item.qty])

scaled := double(input.amount)

clamped := clamp(input.amount, 0, 100)

kind := label(input.amount)

privileged if is_privileged(input.user)

order_total := total(input.items)
