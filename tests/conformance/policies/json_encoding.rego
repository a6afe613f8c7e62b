# json, base64, base64url, hex and urlquery builtins.
package conformance.json_encoding

import rego.v1

marshalled := json.marshal(input.payload)

round_trip := json.unmarshal(json.marshal(input.payload))

valid_json := json.is_valid(input.text)

parsed := json.unmarshal(input.text)

encodings := {
	"b64": base64.encode(input.text),
	"b64url": base64url.encode(input.text),
	"b64url_np": base64url.encode_no_pad(input.text),
	"hex": hex.encode(input.text),
	"url": urlquery.encode(input.text),
}

decoded := base64.decode(input.b64)

b64_valid := base64.is_valid(input.b64)

query_object := urlquery.encode_object({"q": input.text, "n": "1"})

patched := json.patch(input.payload, [{"op": "add", "path": "/added", "value": 1}])
