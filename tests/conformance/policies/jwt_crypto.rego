# Hashes, HMACs and JSON Web Tokens signed with a shared secret.
package conformance.jwt_crypto

import rego.v1

decoded := io.jwt.decode(input.token)

hs256 := io.jwt.verify_hs256(input.token, input.secret)

hs512 := io.jwt.verify_hs512(input.token, input.secret)

verified := io.jwt.decode_verify(input.token, input.constraints)

hashes := [crypto.sha256(input.text), crypto.sha1(input.text), crypto.md5(input.text)]

macs := [
	crypto.hmac.sha256(input.text, input.secret),
	crypto.hmac.sha1(input.text, input.secret),
	crypto.hmac.sha512(input.text, input.secret),
	crypto.hmac.md5(input.text, input.secret),
]

same := crypto.hmac.equal(input.text, input.secret)

# An Envoy-style check: a bearer token whose claims grant the request.
allow if {
	[valid, _, claims] := io.jwt.decode_verify(input.token, {"secret": "s3cret", "aud": "api"})
	valid
	claims.role == "admin"
}
