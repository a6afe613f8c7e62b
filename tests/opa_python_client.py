#!/usr/bin/env python3
"""docket serve driven by a real OPA client library (PyPI opa-python-client), as an OPA user's
scripts drive OPA: connection check, health, status, the policy list, uploading and deleting a policy,
writing and reading data, querying rules. Each call must answer as it does against OPA, and the
log must verify and hold what was sealed. Run by tests/run: python3 tests/opa_python_client.py DOCKET
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import requests
from opa_client import OpaClient

sys.path.insert(0, str(Path(__file__).parent))
from opa_oracle import start_server  # noqa: E402  (the same way of starting the server)


def main():
    docket = sys.argv[1]
    with tempfile.TemporaryDirectory(prefix="docket-opa-client-") as tmp:
        work = Path(tmp)
        proc, base = start_server(docket, work / "data", work / "serve.log")
        try:
            port = int(base.rsplit(":", 1)[1])
            token = (work / "data" / "token").read_text().strip()
            client = OpaClient(host="127.0.0.1", port=port, token=token, timeout=30)
            assert client.check_connection() is True, "check_connection"
            assert client.check_health() is True, "check_health"
            # The status API, in the shape of OPA's status plugin.
            status = client.get_status()["result"]
            assert status["labels"]["product"] == "docket", status
            assert status["plugins"]["decision_logs"]["state"] == "OK", status
            # Ad-hoc queries are not served yet: OPA's error shape says so and what to use.
            try:
                client.ad_hoc_query("data.rbac.allow")
                raise AssertionError("an ad-hoc query was answered")
            except requests.HTTPError as refused:
                assert refused.response.status_code == 501, refused.response.text
                error = refused.response.json()
                assert error["code"] == "not_implemented", error
                assert "Data API" in error["message"], error
            listed = client.get_policies_list()
            assert "rbac.rego" in listed, f"the examples are listed: {listed}"

            source = 'package client.test\n\nimport rego.v1\n\nallow if input.user == "alice"\n'
            assert client.update_policy_from_string(source, "client_test") is True
            assert "client_test" in client.get_policies_list()
            allowed = client.query_rule({"user": "alice"}, "client.test", "allow")
            assert allowed.get("result") is True, f"alice: {allowed}"
            assert allowed.get("decision_id"), f"a sealed decision has its id: {allowed}"
            denied = client.query_rule({"user": "bob"}, "client.test", "allow")
            assert "result" not in denied, f"bob: undefined, as in OPA: {denied}"

            assert client.update_or_create_data({"tier": "gold"}, "client_data") is True
            assert client.get_data("client_data")["result"] == {"tier": "gold"}
            assert client.delete_policy("client_test") is True
            assert "client_test" not in client.get_policies_list()
            client.close_connection()
        finally:
            proc.terminate()
            proc.wait(timeout=60)
        # Everything the client did that changes a decision is in the log, which verifies.
        verify = subprocess.run(
            [docket, "verify", str(work / "data" / "log"), "--pub", str(work / "data" / "docket.pub"), "--json"],
            capture_output=True, text=True)
        report = json.loads(verify.stdout)
        assert report["ok"], report
        # start's policy load, the upload, the data write, the deletion; the two queries and
        # the data read (a GET of /v1/data is a decision, as OPA logs it).
        assert report["kinds"]["policy-change"] == 4, report["kinds"]
        assert report["kinds"]["decision"] == 3, report["kinds"]
        print(f"opa-python-client: connection, health, policies, data and queries as against OPA; "
              f"log verified ({report['entries']} entries)")


if __name__ == "__main__":
    main()
