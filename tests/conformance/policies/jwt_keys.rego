# JSON Web Tokens signed by public keys: RSA (PKCS#1 v1.5 and PSS), ECDSA, EdDSA, with keys as
# PEM public keys, X.509 certificates, JWKs and JWK sets.
package conformance.jwt_keys

import rego.v1

rs256 := io.jwt.verify_rs256(input.token, input.cert)

rs512 := io.jwt.verify_rs512(input.token, input.cert)

ps256 := io.jwt.verify_ps256(input.token, input.cert)

es256 := io.jwt.verify_es256(input.token, input.cert)

es384 := io.jwt.verify_es384(input.token, input.cert)

es512 := io.jwt.verify_es512(input.token, input.cert)

eddsa := io.jwt.verify_eddsa(input.token, input.cert)

verified := io.jwt.decode_verify(input.token, {"cert": input.cert, "aud": "api", "time": 1800000000000000000})
