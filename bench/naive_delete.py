#!/usr/bin/env python3
"""The plain script zdel is compared with: what the API docs' samples do.

One DELETE of 100 IDs at a time, a naive retry (once, at once) when a call
fails, no rate limiting, no record of what happened beyond this run's
memory. It prints one JSON line: IDs whose outcome it knows, and IDs it lost
(their call failed twice: deleted or not, nobody knows).

usage: naive_delete.py BASE_URL MODULE IDS_FILE
"""
import json
import sys
import urllib.error
import urllib.parse
import urllib.request


def token(base):
    form = urllib.parse.urlencode({
        "grant_type": "refresh_token",
        "client_id": "sandbox-client",
        "client_secret": "sandbox-secret",
        "refresh_token": "sandbox-refresh-token",
    }).encode()
    with urllib.request.urlopen(base + "/oauth/v2/token", data=form, timeout=30) as r:
        return json.load(r)["access_token"]


def delete(base, tok, module, ids):
    url = "%s/crm/v8/%s?ids=%s&wf_trigger=true" % (base, module, ",".join(ids))
    req = urllib.request.Request(url, method="DELETE", headers={"Authorization": "Zoho-oauthtoken " + tok})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        if e.code >= 500:
            raise
        return json.load(e)


def main():
    base, module, path = sys.argv[1], sys.argv[2], sys.argv[3]
    ids = [line.strip() for line in open(path) if line.strip()]
    tok = token(base)
    known, lost = 0, 0
    for i in range(0, len(ids), 100):
        batch = ids[i:i + 100]
        answer = None
        for _ in range(2):  # the naive retry: try again once, at once
            try:
                answer = delete(base, tok, module, batch)
                break
            except Exception:
                continue
        if answer is None:
            lost += len(batch)
        else:
            known += len(answer.get("data", []))
    print(json.dumps({"known": known, "lost": lost}))


if __name__ == "__main__":
    main()
